"""The sync engine against the simulator: ground truth, incremental cursors, statuses, runs."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from lib import exchanges
from lib.access import SYSTEM, AccessDenied, Role, Viewer
from lib.db import session_scope
from lib.models import (
    AuditEvent,
    Candle,
    Connector,
    OpeningBalance,
    Order,
    Position,
    SyncCursor,
    SyncResult,
    SyncRun,
    Ticker,
    Trade,
    Transfer,
)
from lib.simulator import Simulator, SimulatorConfig
from lib.simulator.history import WITHDRAW_FEES
from lib.sync import markets, sync_connector, sync_connectors
from lib.sync import rows as rows_module
from tests.sync_helpers import add_connectors, differences


@pytest.fixture
def sim() -> Iterator[Simulator]:
    markets.forget()
    simulator = Simulator(SimulatorConfig(seed=7, accounts=2, days=90, fills_per_account=300)).start()
    yield simulator
    simulator.stop()


@pytest.fixture
def fetched_fill_ids(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every fill id the sync received from an exchange (to prove old fills are not re-fetched)."""
    seen: list[str] = []
    original = rows_module.trade_row

    def recording(exchange, trade):  # noqa: ANN001, ANN202
        seen.append(str(trade["id"]))
        return original(exchange, trade)

    monkeypatch.setattr(rows_module, "trade_row", recording)
    return seen


def test_full_then_incremental_sync_equals_ground_truth(database_url: str, sim: Simulator,
                                                         fetched_fill_ids: list[str]) -> None:
    ids = add_connectors(sim)
    first = sync_connectors(SYSTEM)
    assert (first.total, first.successful) == (2, 2), [r.error for r in first.results]
    for account_id, connector_id in ids.items():
        assert differences(sim, account_id, connector_id) == []
    assert sum(r.new_trades for r in first.results) == 600

    fetched_fill_ids.clear()
    second = sync_connectors(SYSTEM)
    assert second.successful == 2
    assert [r.new_trades for r in second.results] == [0, 0]
    assert [r.new_transfers for r in second.results] == [0, 0]
    assert fetched_fill_ids == []  # no old fill was even fetched

    added = {a.id: {f["id"] for f in sim.add_fills(a.id, 7)} for a in sim.accounts}
    third = sync_connectors(SYSTEM)
    assert [r.new_trades for r in third.results] == [7, 7]
    assert sorted(fetched_fill_ids) == sorted(i for new in added.values() for i in new)
    for account_id, connector_id in ids.items():
        assert differences(sim, account_id, connector_id) == []


def test_first_sync_records_run_status_prices_and_opening(database_url: str, sim: Simulator) -> None:
    ids = add_connectors(sim)
    report = sync_connectors(SYSTEM, trigger="force")
    with session_scope() as session:
        run = session.get(SyncRun, report.run_id)
        assert (run.trigger, run.total, run.successful, run.failed) == ("force", 2, 2, 0)
        assert run.finished_at is not None
        results = list(session.scalars(select(SyncResult).where(SyncResult.run_id == run.id)))
        assert {r.connector_id for r in results} == set(ids.values())
        assert all(r.success and r.requests > 0 for r in results)
        for connector in session.scalars(select(Connector)):
            assert connector.status == "ok" and connector.last_success_at and connector.first_synced_at
            assert connector.consecutive_failures == 0 and connector.lease_owner is None
        # the simulated history explains every holding, so nothing is booked as opening
        assert session.scalars(select(OpeningBalance)).all() == []
        assert session.scalar(select(Ticker).where(Ticker.symbol == "BTC/USDT")).last > 0
        # ETH/BTC fills are priced through BTC/USDT daily candles
        assert session.scalar(select(Candle).where(Candle.symbol == "BTC/USDT", Candle.timeframe == "1d"))
        assert session.scalar(select(AuditEvent).where(AuditEvent.action == "sync.forced"))


def test_one_connector_result_for_pages(database_url: str, sim: Simulator) -> None:
    ids = add_connectors(sim)
    connector_id = next(iter(ids.values()))
    result = sync_connector(SYSTEM, connector_id)
    assert result.success and result.new_trades == 300 and result.balances > 0 and result.error is None
    assert result.connector_id == connector_id and result.client == "Acme"


def test_client_role_cannot_sync(sqlite_url: str) -> None:
    with pytest.raises(AccessDenied):
        sync_connectors(Viewer("carol", Role.CLIENT, frozenset({1})), trigger="force")


def test_revoked_key_fails_only_its_connector_and_needs_attention(database_url: str, sim: Simulator) -> None:
    ids = add_connectors(sim)
    revoked, healthy = sim.accounts
    sim.revoke(revoked.id)
    report = sync_connectors(SYSTEM)
    by_id = {r.connector_id: r for r in report.results}
    assert by_id[ids[healthy.id]].success
    failed = by_id[ids[revoked.id]]
    assert not failed.success and failed.attention
    assert failed.error == exchanges.describe_error(exchanges.ccxt.AuthenticationError())
    assert differences(sim, healthy.id, ids[healthy.id]) == []
    with session_scope() as session:
        connector = session.get(Connector, ids[revoked.id])
        assert (connector.status, connector.consecutive_failures) == ("attention", 1)
        assert connector.last_error == failed.error and connector.last_attempt_at is not None
    # the worker leaves it alone; a forced sync tries again
    worker = sync_connectors(SYSTEM, trigger="worker")
    assert ids[revoked.id] not in {r.connector_id for r in worker.results}
    forced = sync_connectors(SYSTEM, connector_ids=[ids[revoked.id]], trigger="force")
    assert forced.failed == 1


def test_unsupported_exchange_and_undecryptable_credentials_fail_cleanly(database_url: str, sim: Simulator) -> None:
    ids = add_connectors(sim)
    first, second = ids.values()
    with session_scope() as session:
        session.get(Connector, first).exchange_id = "mtgox"
        session.get(Connector, second).credentials_ciphertext = b"not a fernet token"
        extra = Connector(client_id=session.get(Connector, first).client_id, exchange_id="okx", label="good",
                          credentials_ciphertext=session.get(Connector, second).credentials_ciphertext)
        session.add(extra)
    # re-point a third, healthy connector at the first OKX account to show the others complete
    okx = next(a for a in sim.accounts if a.dialect == "okx")
    from lib.vault import load_vault

    with session_scope() as session:
        good = session.scalar(select(Connector).where(Connector.label == "good"))
        good.credentials_ciphertext = load_vault().encrypt(okx.credentials())
        good.api_url = okx.api_url
    report = sync_connectors(SYSTEM)
    by_id = {r.connector_id: r for r in report.results}
    assert "not supported by the installed ccxt" in by_id[first].error and by_id[first].attention
    assert "cannot be decrypted" in by_id[second].error and by_id[second].attention
    assert report.successful == 1 and report.failed == 2


def test_candles_cover_every_deposit_of_a_non_cash_asset(database_url: str, sim: Simulator) -> None:
    """A deposit opens a lot at its market value then (PNL.md): the sync must store that price."""
    from lib.models import Transfer

    add_connectors(sim)
    assert sync_connectors(SYSTEM).failed == 0
    day = 86_400_000
    with session_scope() as session:
        deposits = session.execute(select(Transfer.currency, Transfer.timestamp).where(
            Transfer.type == "deposit", Transfer.currency.not_in(["USDT", "USDC", "USD"]))).all()
        assert deposits, "the simulator's history should hold non-cash deposits"
        for currency, timestamp in deposits:
            found = session.scalar(select(Candle.timestamp).where(
                Candle.symbol.like(f"{currency}/%"), Candle.timestamp <= timestamp,
                Candle.timestamp > timestamp - 2 * day).limit(1))
            assert found is not None, (currency, timestamp)


# --- review fixes ---------------------------------------------------------------------

DAY = 86_400_000


def test_pending_transfers_are_read_again_until_they_complete(database_url: str, sim: Simulator) -> None:
    ids = add_connectors(sim)
    assert sync_connectors(SYSTEM).failed == 0
    pending = {a.id: [sim.add_transfer(a.id, "deposit", "USDT", 250.0, pending=True),
                      sim.add_transfer(a.id, "withdrawal", "USDT", 40.0, pending=True)] for a in sim.accounts}
    for account in sim.accounts:  # a settled transfer after them: the cursor must still stop at them
        sim.add_transfer(account.id, "deposit", "USDT", 5.0)
    second = sync_connectors(SYSTEM)
    assert second.failed == 0 and [r.new_transfers for r in second.results] == [3, 3]
    for account_id, connector_id in ids.items():
        assert differences(sim, account_id, connector_id) == []  # stored as pending
    for account_id, transfers in pending.items():
        for transfer in transfers:
            sim.complete_transfer(account_id, transfer["id"])
    third = sync_connectors(SYSTEM)
    assert third.failed == 0 and [r.new_transfers for r in third.results] == [0, 0]
    for account_id, connector_id in ids.items():
        assert differences(sim, account_id, connector_id) == []  # now completed
    with session_scope() as session:
        stored = session.execute(select(Transfer.connector_id, Transfer.type, Transfer.timestamp, Transfer.status)
                                 .where(Transfer.transfer_id.in_([t["id"] for ts in pending.values() for t in ts])))
        cursors = {(c, k): int(v) for c, k, v in session.execute(select(
            SyncCursor.connector_id, SyncCursor.key, SyncCursor.value))}
        for connector_id, kind, timestamp, status in stored.all():
            assert status == "ok"
            assert cursors[(connector_id, f"{kind}s")] > timestamp  # settled: the cursor moves past it again


def test_a_transfer_unsettled_for_over_30_days_stops_holding_the_cursor(database_url: str) -> None:
    """An unmapped "final" status (Binance's rejected deposit) must not pin every later sync."""
    markets.forget()
    now = int(time.time() * 1000)
    config = SimulatorConfig(seed=5, accounts=1, dialects=["okx"], days=20, fills_per_account=30,
                             anchor_ms=now // DAY * DAY - 50 * DAY)  # history ends 50 days ago
    with Simulator(config) as simulator:
        stuck = simulator.add_transfer("okx-1", "deposit", "USDT", 10.0, pending=True, ts=now - 40 * DAY)
        recent = simulator.add_transfer("okx-1", "deposit", "USDT", 20.0, pending=True, ts=now - 2 * DAY)
        simulator.add_transfer("okx-1", "deposit", "USDT", 30.0, ts=now - DAY)
        ids = add_connectors(simulator)
        assert sync_connectors(SYSTEM).failed == 0
        assert differences(simulator, "okx-1", ids["okx-1"]) == []
    with session_scope() as session:
        cursor = int(session.scalar(select(SyncCursor.value).where(SyncCursor.key == "deposits")))
    assert stuck["timestamp"] < cursor <= recent["timestamp"]  # only the recent one is read again


def test_okx_open_orders_beyond_one_page(database_url: str) -> None:
    markets.forget()
    config = SimulatorConfig(seed=5, accounts=1, dialects=["okx"], days=10, fills_per_account=50, open_orders=150)
    with Simulator(config) as simulator:
        ids = add_connectors(simulator)
        expected = len(simulator.truth("okx-1").open_orders)
        assert expected > 100
        report = sync_connectors(SYSTEM)
        assert report.failed == 0 and report.results[0].open_orders == expected
        assert differences(simulator, "okx-1", ids["okx-1"]) == []
    with session_scope() as session:
        order_symbols = set(session.scalars(select(Order.symbol).distinct()))
        priced = set(session.scalars(select(Ticker.symbol).where(Ticker.exchange_id == "okx", Ticker.last > 0)))
    assert "ETH/BTC" in order_symbols  # held assets are priced through USDT: only the orders need ETH/BTC
    assert order_symbols <= priced  # every order shows its market's last price


def test_first_sync_finds_fills_of_an_asset_withdrawn_before_it(database_url: str, sim: Simulator) -> None:
    """Binance needs a symbol per fills query: transfer currencies must count on the first sync."""
    account = "binance-1"
    ledger = sim.world.ledger(account)
    asset = next(a for a in ("SOL", "BNB", "ETH") if ledger.used[a] == 0 and ledger.free[a] > 10 * WITHDRAW_FEES[a])
    sim.add_transfer(account, "withdrawal", asset, (ledger.free[asset] - WITHDRAW_FEES[asset]) / 1e8)
    assert sim.truth(account).balances[asset]["total"] == 0
    ids = add_connectors(sim)
    assert sync_connectors(SYSTEM).failed == 0
    assert differences(sim, account, ids[account]) == []
    with session_scope() as session:
        assert session.scalar(select(Trade.id).where(Trade.base == asset).limit(1)) is not None
        # complete history, so nothing is booked as an unexplained opening balance
        assert session.scalars(select(OpeningBalance)).all() == []


def test_okx_transfers_sharing_a_millisecond_across_pages(database_url: str, sim: Simulator) -> None:
    account = "okx-2"
    now = int(time.time() * 1000)
    for count, stamp in ((30, now - 5000), (90, now - 4000)):  # the first page ends inside the older group
        for _ in range(count):
            sim.add_transfer(account, "deposit", "USDT", 1.0, ts=stamp)
    ids = add_connectors(sim)
    assert sync_connectors(SYSTEM).failed == 0
    assert differences(sim, account, ids[account]) == []


def test_a_token_only_ever_bought_as_a_base_gets_daily_candles(database_url: str) -> None:
    """Bought with the fee paid in BNB: never a quote, fee or transfer currency, still priced."""
    markets.forget()
    anchor = int(time.time() * 1000) // DAY * DAY - 3 * DAY
    config = SimulatorConfig(seed=5, accounts=1, dialects=["binance"], days=10, fills_per_account=40,
                             anchor_ms=anchor)
    with Simulator(config) as simulator:
        bought = simulator.world.trade("binance-1", "TKN/USDT", True, 0.02, ts=anchor + DAY + 3_600_000,
                                       bnb_fee=True)
        assert [f["fee"]["currency"] for f in bought] == ["BNB"]
        add_connectors(simulator)
        assert sync_connectors(SYSTEM).failed == 0
    with session_scope() as session:
        days = set(session.scalars(select(Candle.timestamp).where(
            Candle.symbol == "TKN/USDT", Candle.timeframe == "1d")))
    # the day it was bought and every closed day since, while it is held
    assert {anchor + DAY, anchor + 2 * DAY} <= days


def test_positions_are_synced_and_a_refusal_keeps_the_rest(database_url: str, sim: Simulator) -> None:
    ids = add_connectors(sim)
    okx = "okx-2"
    sim.world.open_position(okx, "BTC/USDT:USDT", 3.0)
    first = sync_connectors(SYSTEM)
    assert first.failed == 0
    assert {r.connector_id: r.positions for r in first.results} == {ids["binance-1"]: 0, ids[okx]: 1}
    for account_id, connector_id in ids.items():
        assert differences(sim, account_id, connector_id) == []
    sim.faults.set(rate=1.0, kinds=("denied",), path="/account/positions")
    sim.add_fills(okx, 3)
    second = sync_connectors(SYSTEM)
    sim.faults.clear()
    result = next(r for r in second.results if r.connector_id == ids[okx])
    assert result.success and result.new_trades == 3 and result.positions == 0
    assert differences(sim, okx, ids[okx]) == []  # the stored position is kept
    with session_scope() as session:
        assert session.scalar(select(Position.contracts).where(Position.connector_id == ids[okx])) == 3.0
