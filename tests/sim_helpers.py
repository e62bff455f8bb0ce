"""Shared helpers of the simulator tests: a real ccxt client for a simulated account."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lib.exchanges import ConnectionSpec, build_exchange
from lib.simulator import Simulator


def exchange(account: Any, **credentials: str) -> Any:
    """A real ccxt exchange for ``account`` (credentials overridable, e.g. a wrong secret).

    ccxt's client-side throttle is off to keep tests fast, and the last JSON answer is kept so
    tests can see rows in the order the exchange sent them.
    """
    creds = {**account.credentials(), **credentials}
    ex = build_exchange(ConnectionSpec(account.dialect, creds, api_url=account.api_url, timeout_ms=3000))
    ex.enableRateLimit = False
    ex.enableLastJsonResponse = True
    ex.options.setdefault("fetchOpenOrders", {})["warnWithoutSymbol"] = False
    return ex


def loaded(sim: Simulator, account_id: str) -> Any:
    """``exchange`` for one simulated account, with its markets loaded."""
    ex = exchange(sim.account(account_id))
    ex.load_markets()
    return ex


@pytest.fixture(autouse=True)
def no_faults(sim: Simulator) -> Iterator[None]:
    """Each test starts and ends without injected faults (import it into a module that has ``sim``)."""
    sim.faults.clear()
    yield
    sim.faults.clear()


def fill_view(trade: dict[str, Any]) -> tuple:
    """The fields of a ccxt trade that the ground truth pins down."""
    fee = trade["fee"] or {}
    return (trade["id"], trade["order"], trade["symbol"], trade["side"], trade["amount"], trade["price"],
            trade["cost"], fee.get("cost"), fee.get("currency"), trade["timestamp"], trade["takerOrMaker"])
