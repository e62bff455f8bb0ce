"""lib.exchanges.call_with_retry: which ccxt errors are retried, how long it waits, when it gives up."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import ccxt
import pytest

from lib.exchanges import (
    ConnectionSpec,
    RedirectRefused,
    RetryAfterTooLong,
    build_async_exchange,
    build_exchange,
    call_with_retry,
    call_with_retry_blocking,
    describe_error,
    http_status,
    needs_attention,
    retry_after_seconds,
)
from lib.simulator import Simulator, SimulatorConfig


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


# --- by HTTP status, against real ccxt classes ----------------------------------------------

#: an answer the test server gives: (status, JSON body or HTML text); CUT sends half a body
Answer = tuple[int, dict[str, Any] | str]
CUT: Answer = (200, "cut")
BALANCE = {"id": 1, "method": "private/user-balance", "code": 0, "result": {"data": [
    {"position_balances": [{"instrument_name": "BTC", "quantity": "1.5", "reserved_qty": "0"}]}]}}


class FakeCryptoCom:
    """crypto.com's REST API as far as ``fetch_balance`` needs it: the balance endpoint gives
    the scripted answers in turn, then a balance; other endpoints an empty success.

    crypto.com answers errors with a JSON body ``{"code": ..}`` whatever the HTTP status,
    and ccxt's ``cryptocom.handle_errors`` maps that code before the status is looked at.
    """

    def __init__(self, *script: Answer) -> None:
        self.script = list(script)
        self.balance_requests = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                self._answer()

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._answer()

            def _answer(self) -> None:
                status, body = fake.next(self.path)
                text = body if isinstance(body, str) else json.dumps(body)
                self.send_response(status)
                for name, value in fake.headers(status).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "text/html" if isinstance(body, str) else "application/json")
                self.send_header("Content-Length", str(len(text) * (2 if (status, body) == CUT else 1)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(text.encode())
                self.close_connection = True

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def headers(self, _status: int) -> dict[str, str]:
        return {}

    def next(self, path: str) -> Answer:
        if "user-balance" not in path:
            return 200, {"id": 1, "code": 0, "result": {"data": []}}
        self.balance_requests += 1
        return self.script.pop(0) if self.script else (200, BALANCE)

    @contextlib.contextmanager
    def serving(self) -> Iterator[ConnectionSpec]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield ConnectionSpec("cryptocom", {"apiKey": secrets.token_hex(8), "secret": secrets.token_hex(16)},
                                 self.url, timeout_ms=5_000)
        finally:
            self.server.shutdown()
            self.server.server_close()
            thread.join()


def fetch_balance(fake: FakeCryptoCom, asynchronous: bool, seen: list[Exception]) -> dict[str, Any]:
    """``fetch_balance`` through the retry loop of the sync (asynchronous) or of a key test,
    noting each error the exchange raised on the way."""
    nowait = FlakyCall()
    with fake.serving() as spec:
        if asynchronous:
            async def run_async() -> dict[str, Any]:
                exchange = build_async_exchange(spec)

                async def call() -> dict[str, Any]:
                    try:
                        return await exchange.fetch_balance()
                    except Exception as error:
                        seen.append(error)
                        raise
                try:
                    return await call_with_retry(call, attempts=4, sleep=nowait.sleep,
                                                 last_headers=lambda: exchange.last_response_headers)
                finally:
                    await exchange.close()
            return asyncio.run(run_async())
        exchange = build_exchange(spec)

        def call() -> dict[str, Any]:
            try:
                return exchange.fetch_balance()
            except Exception as error:
                seen.append(error)
                raise
        return call_with_retry_blocking(call, attempts=4, base_delay=0.25, max_delay=10.0,
                                        sleep=lambda _seconds: None,
                                        last_headers=lambda: exchange.last_response_headers)


@pytest.mark.parametrize("asynchronous", [True, False], ids=["sync-run", "key-test"])
@pytest.mark.parametrize("status", [500, 502, 503, 408, 425, 429])
def test_a_transient_status_is_retried_whatever_class_ccxt_maps_the_body_to(status: int, asynchronous: bool) -> None:
    fake = FakeCryptoCom((status, {"code": 99999, "message": "SYS_ERROR"}),
                         (status, {"code": 99999, "message": "SYS_ERROR"}))
    seen: list[Exception] = []
    balance = fetch_balance(fake, asynchronous, seen)
    assert balance["total"] == {"BTC": 1.5}
    assert [type(e) for e in seen] == [ccxt.ExchangeError, ccxt.ExchangeError]  # not a retryable class
    assert [http_status(e) for e in seen] == [status, status]
    assert fake.balance_requests == 3


@pytest.mark.parametrize("asynchronous", [True, False], ids=["sync-run", "key-test"])
@pytest.mark.parametrize(("status", "code", "error_class"), [
    (500, 40101, ccxt.AuthenticationError), (503, 10002, ccxt.PermissionDenied), (502, 40102, ccxt.InvalidNonce),
    (400, 99999, ccxt.ExchangeError), (404, 99999, ccxt.ExchangeError),
])
def test_key_and_clock_errors_are_final_even_on_a_5xx_and_a_4xx_error_is_final(
        status: int, code: int, error_class: type[Exception], asynchronous: bool) -> None:
    fake = FakeCryptoCom((status, {"code": code, "message": "refused"}))
    seen: list[Exception] = []
    with pytest.raises(error_class):
        fetch_balance(fake, asynchronous, seen)
    assert type(seen[0]) is error_class and http_status(seen[0]) == status
    assert fake.balance_requests == 1


def test_a_status_from_an_earlier_answer_does_not_make_a_later_error_retryable() -> None:
    """The second request's answer is cut short, so it has no status: the 500 before it must
    not count for it."""
    fake = FakeCryptoCom((500, {"code": 99999, "message": "SYS_ERROR"}), CUT)
    nowait = FlakyCall()

    async def run() -> None:
        exchange = build_async_exchange(spec)

        async def call() -> dict[str, Any]:
            with contextlib.suppress(ccxt.ExchangeError):
                await exchange.fetch_balance()
            return await exchange.fetch_balance()
        try:
            await call_with_retry(call, attempts=4, sleep=nowait.sleep)
        finally:
            await exchange.close()

    with fake.serving() as spec, pytest.raises(ccxt.ExchangeError) as caught:
        asyncio.run(run())
    assert type(caught.value) is ccxt.ExchangeError and http_status(caught.value) is None
    assert fake.balance_requests == 2 and nowait.slept == []


def test_an_html_503_from_the_load_balancer_is_still_retried() -> None:
    """The simulator's Binance answers an outage as its load balancer does: HTML, no JSON."""
    config = SimulatorConfig(seed=5, accounts=1, days=3, fills_per_account=5, dialects=["binance"])
    nowait = FlakyCall()
    seen: list[Exception] = []
    with Simulator(config) as sim:
        account = sim.accounts[0]
        sim.faults.set(rate=1.0, kinds=("5xx",), path="/api/v3/account", times=2)

        async def run() -> dict[str, Any]:
            exchange = build_async_exchange(ConnectionSpec("binance", account.credentials(), account.api_url))

            async def call() -> dict[str, Any]:
                try:
                    return await exchange.fetch_balance()
                except Exception as error:
                    seen.append(error)
                    raise
            try:
                return await call_with_retry(call, attempts=4, sleep=nowait.sleep)
            finally:
                await exchange.close()

        balance = asyncio.run(run())
        truth = sim.truth(account.id)
    assert {a: v for a, v in balance["total"].items() if v} == {
        a: pytest.approx(row["total"]) for a, row in truth.balances.items() if row["total"]}
    assert [(type(e), http_status(e)) for e in seen] == [(ccxt.ExchangeNotAvailable, 503)] * 2


def test_errors_known_only_by_status_are_described_by_it() -> None:
    server_error, rate_limited = ccxt.ExchangeError("cryptocom {}"), ccxt.ExchangeError("cryptocom {}")
    server_error.http_status, rate_limited.http_status = 500, 429
    assert describe_error(server_error) == "The exchange answered with a temporary error (HTTP 500)."
    assert describe_error(rate_limited) == "The exchange is rate-limiting requests; it will be retried later."
    assert describe_error(rate_limited, retried_later=False) == "The exchange is rate-limiting requests."
    assert describe_error(ccxt.ExchangeError("x")) == "The exchange returned an error (ExchangeError)."


# --- redirects -------------------------------------------------------------------------------

class Elsewhere:
    """Another host (``localhost`` where the API is ``127.0.0.1``) that notes every request it gets."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        elsewhere = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                self._note()

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._note()

            def _note(self) -> None:
                elsewhere.requests.append((self.command, self.path, dict(self.headers)))
                text = json.dumps(BALANCE).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://localhost:{self.server.server_address[1]}"

    @contextlib.contextmanager
    def serving(self) -> Iterator[str]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self.url
        finally:
            self.server.shutdown()
            self.server.server_close()
            thread.join()


class Redirecting(FakeCryptoCom):
    """crypto.com whose balance endpoint (a signed POST) answers with a redirect to ``target``."""

    def __init__(self, status: int, target: str) -> None:
        super().__init__((status, "moved"))
        self.target = target

    def headers(self, status: int) -> dict[str, str]:
        return {"Location": self.target + "/v1/private/user-balance"} if 300 <= status < 400 else {}


@pytest.mark.parametrize("asynchronous", [True, False], ids=["sync-run", "key-test"])
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_to_another_host_is_not_followed(status: int, asynchronous: bool) -> None:
    """307 and 308 would resend the signed POST as it is, key header included."""
    elsewhere = Elsewhere()
    seen: list[Exception] = []
    with elsewhere.serving() as target:
        fake = Redirecting(status, target)
        with pytest.raises(RedirectRefused) as caught:
            fetch_balance(fake, asynchronous, seen)
    assert elsewhere.requests == []  # nothing reached the other host
    assert fake.balance_requests == 1 and len(seen) == 1  # not retried either
    assert caught.value.status == status and caught.value.target == "localhost"
    assert describe_error(caught.value) == (
        f"The exchange's API answered with a redirect (HTTP {status}) to localhost; it was not followed, so the key "
        "was not sent there. Check the connector's API URL.")
