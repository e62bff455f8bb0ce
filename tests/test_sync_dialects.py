"""Complete history on every dialect the simulator speaks, over accounts built to be hard.

Each account has a quiet gap longer than a 7-day window, bursts of fills sharing one
millisecond across page edges, fills on UTC midnights, a token traded and gone before the
first sync, canceled orders and (where the exchange has one) a funding account. Every test
ends with the database equal to the simulator's ground truth.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from lib import exchanges
from lib.access import SYSTEM
from lib.capabilities import DAY_MS, OVERRIDES, history_rules
from lib.db import session_scope
from lib.models import HistoryCoverage, LedgerEntry, OpeningBalance, Ticker
from lib.simulator import Simulator, SimulatorConfig
from lib.sync import markets, sync_connectors
from tests.sync_helpers import add_connectors, differences
from tests.test_sync_faults import _saved_minutes_ago, _worker

DIALECTS = ("binance", "okx", "cryptocom", "bybit", "bitmart")


@pytest.fixture(autouse=True)
def quick_throttle(monkeypatch: pytest.MonkeyPatch) -> None:
    """ccxt spaces crypto.com's get-trades one second apart (its documented rate); a loopback
    simulator needs no such pause, and the walks here make hundreds of requests."""
    original = exchanges._config

    def config(spec: exchanges.ConnectionSpec) -> dict[str, Any]:
        return {**original(spec), "rateLimit": 1}

    monkeypatch.setattr(exchanges, "_config", config)


def _sim(dialect: str, days: int = 45, fills: int = 150) -> Simulator:
    markets.forget()
    return Simulator(SimulatorConfig(seed=21, accounts=1, days=days, fills_per_account=fills,
                                     dialects=[dialect], scenarios=True)).start()


@pytest.fixture(params=DIALECTS)
def sim(request: pytest.FixtureRequest) -> Iterator[Simulator]:
    simulator = _sim(request.param)
    simulator.faults.timeout_s = 0.5
    yield simulator
    simulator.stop()


def _kept_since(sim: Simulator) -> int | None:
    """The oldest fill time the dialect's exchange still keeps, by the product's own rules."""
    account = sim.accounts[0]
    exchange = exchanges.build_exchange(exchanges.ConnectionSpec(account.dialect, account.credentials(),
                                                                 account.api_url))
    days = history_rules(exchange).streams["trades"].days_back
    return None if days is None else int(time.time() * 1000) - int(days * DAY_MS)


def test_first_and_incremental_sync_equal_the_ground_truth(database_url: str, sim: Simulator) -> None:
    ids = add_connectors(sim)
    account, connector = next(iter(ids.items()))
    first = sync_connectors(SYSTEM)
    assert first.successful == 1, [r.error for r in first.results]
    assert differences(sim, account, connector, _kept_since(sim), closed_orders=True) == []
    assert first.results[0].new_trades == len(sim.truth(account).fills)

    sim.add_fills(account, 7)
    second = sync_connectors(SYSTEM)
    assert second.successful == 1, [r.error for r in second.results]
    assert second.results[0].new_trades == 7
    assert differences(sim, account, connector, _kept_since(sim), closed_orders=True) == []
    # an incremental sync walks from the cursors, not from the exchange's look-back again
    assert second.results[0].requests < first.results[0].requests / 2

    with session_scope() as session:
        coverage = {c.stream: c for c in session.scalars(select(HistoryCoverage).where(
            HistoryCoverage.connector_id == connector))}
        ledger = set(session.scalars(select(LedgerEntry.currency).where(LedgerEntry.connector_id == connector)))
    if "ledger" in coverage:  # the account ledger names even the token traded and gone before the first sync
        assert "TKN" in ledger
    assert "balance:default" in coverage and any(k.startswith("trades") for k in coverage)
    for stream, row in coverage.items():
        assert row.failed_error is None, (stream, row.failed_error)
        assert row.complete_at is not None, stream


def test_thirty_percent_faults_still_end_equal_to_the_ground_truth(database_url: str, sim: Simulator) -> None:
    ids = add_connectors(sim)
    sim.faults.set(rate=0.3, kinds=("429", "5xx", "timeout", "drop", "malformed"))
    report = sync_connectors(SYSTEM, timeout_ms=400)
    sim.faults.clear()
    if not report.successful:  # a stream that met eight faults in a row resumes at its last window
        report = sync_connectors(SYSTEM)
    assert report.successful == 1, [r.error for r in report.results]
    account, connector = next(iter(ids.items()))
    assert differences(sim, account, connector, _kept_since(sim), closed_orders=True) == []


def test_history_older_than_the_exchange_keeps_is_told_not_fetched(database_url: str) -> None:
    """crypto.com keeps about 6 months of fills: a 200-day account loses its oldest fills to
    the exchange, and the sync books what they explain as opening balances, saying why."""
    simulator = _sim("cryptocom", days=200, fills=200)
    try:
        ids = add_connectors(simulator)
        account, connector = next(iter(ids.items()))
        report = sync_connectors(SYSTEM)
        assert report.successful == 1, [r.error for r in report.results]
        kept_since = _kept_since(simulator)
        assert kept_since is not None
        truth = simulator.truth(account)
        assert any(f["timestamp"] < kept_since for f in truth.fills)  # the case really happens
        assert differences(simulator, account, connector, kept_since, closed_orders=True) == []
        with session_scope() as session:
            trades = session.get(HistoryCoverage, (connector, "trades"))
            opening = list(session.scalars(select(OpeningBalance).where(OpeningBalance.connector_id == connector)))
        assert trades is not None and trades.oldest_available is not None
        assert abs(trades.oldest_available - kept_since) < DAY_MS
        assert "crypto.com" in trades.lookback_source
        assert opening  # the holdings the lost fills explained
    finally:
        simulator.stop()


@pytest.mark.parametrize("dialect", ("cryptocom", "bybit", "bitmart"))
def test_worker_killed_mid_walk_resumes_at_its_last_committed_window(database_url: str, dialect: str) -> None:
    """SIGKILL while the first walk is under way (the worker runs at the exchange's real
    rate limit); the next sync goes on from the committed windows and ends equal to the truth."""
    simulator = _sim(dialect)
    try:
        ids = add_connectors(simulator)
        account, connector = next(iter(ids.items()))
        _saved_minutes_ago(5)
        simulator.faults.set(rate=0.0, latency_ms=30)
        worker = _worker()
        try:
            deadline = time.monotonic() + 90
            while not _committed_windows(connector) and time.monotonic() < deadline:
                time.sleep(0.1)
            walked = _committed_windows(connector)
            assert walked, "the kill should land after some windows were committed"
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
        simulator.faults.clear()
        report = sync_connectors(SYSTEM)
        assert report.successful == 1, [r.error for r in report.results]
        assert differences(simulator, account, connector, _kept_since(simulator), closed_orders=True) == []
        with session_scope() as session:  # the resumed walk kept what the killed one had covered
            row = session.get(HistoryCoverage, (connector, "trades"))
            assert row is not None and row.fetched_from == walked[0]
    finally:
        simulator.stop()


def _committed_windows(connector_id: int) -> tuple[int, int] | None:
    """(fetched_from, fetched_to) of the trades stream once a window of it is committed."""
    with session_scope() as session:
        row = session.get(HistoryCoverage, (connector_id, "trades"))
        if row is None or row.fetched_from is None or row.fetched_to is None:
            return None
        return row.fetched_from, row.fetched_to


def test_a_refused_ticker_batch_falls_back_to_one_symbol_per_call(sqlite_url: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the override that says crypto.com takes one symbol per ticker call, the batch
    is refused; each symbol is then asked for alone and the sync still prices the holdings."""
    monkeypatch.delitem(OVERRIDES["cryptocom"], "tickers_per_call")
    simulator = _sim("cryptocom", fills=60)
    try:
        ids = add_connectors(simulator)
        report = sync_connectors(SYSTEM)
        assert report.successful == 1, [r.error for r in report.results]
        with session_scope() as session:
            priced = set(session.scalars(select(Ticker.symbol).where(Ticker.last.is_not(None))))
        held = {a for a, v in simulator.truth(next(iter(ids))).balances.items() if v["total"]} - {"USDT"}
        assert held and {f"{asset}/USDT" for asset in held} <= priced
    finally:
        simulator.stop()
