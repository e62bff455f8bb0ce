"""lib.exchanges.call_with_retry: which ccxt errors are retried, how long it waits, when it gives up."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime

import ccxt
import pytest

from lib.exchanges import (
    RetryAfterTooLong,
    call_with_retry,
    describe_error,
    needs_attention,
    retry_after_seconds,
)


class FlakyCall:
    """Raises the given errors in turn, then returns "ok"; records the waits asked of ``sleep``."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0
        self.slept: list[float] = []

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def run(flaky: FlakyCall, headers: Mapping[str, str] | None = None, attempts: int = 4, max_delay: float = 10.0):
    return asyncio.run(call_with_retry(flaky, attempts=attempts, base_delay=0.25, max_delay=max_delay,
                                       sleep=flaky.sleep, last_headers=lambda: headers))


@pytest.mark.parametrize("error", [ccxt.RequestTimeout("t"), ccxt.ExchangeNotAvailable("503"),
                                   ccxt.RateLimitExceeded("429"), ccxt.DDoSProtection("418"),
                                   ccxt.BadResponse("not json"), ccxt.OnMaintenance("m")])
def test_transient_errors_are_retried_with_bounded_backoff(error: Exception) -> None:
    flaky = FlakyCall(error, error)
    assert run(flaky) == "ok"
    assert flaky.calls == 3
    assert len(flaky.slept) == 2 and all(0 <= s <= 10.0 for s in flaky.slept)


def test_retry_after_is_waited_exactly() -> None:
    flaky = FlakyCall(ccxt.RateLimitExceeded("429"))
    assert run(flaky, headers={"Retry-After": "3"}) == "ok"
    assert flaky.slept == [3.0]


def test_a_retry_after_longer_than_the_cap_gives_up_at_once_instead_of_retrying_early() -> None:
    flaky = FlakyCall(ccxt.DDoSProtection("418"), ccxt.DDoSProtection("418"))
    with pytest.raises(RetryAfterTooLong) as caught:
        run(flaky, headers={"retry-after": "120"})
    assert flaky.calls == 1 and flaky.slept == []
    assert "rate limit" in describe_error(caught.value)
    assert not needs_attention(caught.value)


@pytest.mark.parametrize("error", [ccxt.AuthenticationError("bad key"), ccxt.PermissionDenied("ip"),
                                   ccxt.AccountSuspended("s")])
def test_key_problems_are_not_retried_and_need_attention(error: Exception) -> None:
    flaky = FlakyCall(error)
    with pytest.raises(type(error)):
        run(flaky)
    assert flaky.calls == 1 and flaky.slept == []
    assert needs_attention(error)


def test_clock_skew_is_not_retried_and_says_so_without_blaming_the_key() -> None:
    error = ccxt.InvalidNonce("Timestamp for this request is outside of the recvWindow")
    flaky = FlakyCall(error)
    with pytest.raises(ccxt.InvalidNonce):
        run(flaky)
    assert flaky.calls == 1
    assert "clock" in describe_error(error)
    assert not needs_attention(error)


def test_gives_up_after_the_last_attempt_with_the_exchanges_error() -> None:
    flaky = FlakyCall(*[ccxt.RequestTimeout("t")] * 5)
    with pytest.raises(ccxt.RequestTimeout):
        run(flaky, attempts=4)
    assert flaky.calls == 4 and len(flaky.slept) == 3


def test_other_errors_are_not_retried() -> None:
    flaky = FlakyCall(ccxt.BadSymbol("no such market"))
    with pytest.raises(ccxt.BadSymbol):
        run(flaky)
    assert flaky.calls == 1


def test_retry_after_forms() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds({"Retry-After": "7"}) == 7.0
    assert retry_after_seconds({"Retry-After": "Thu, 01 Jan 2026 12:00:30 GMT"}, now=now) == 30.0
    assert retry_after_seconds({"Retry-After": "Thu, 01 Jan 2026 11:00:00 GMT"}, now=now) == 0.0
    assert retry_after_seconds({"Retry-After": "soon"}) is None
    assert retry_after_seconds(None) is None
