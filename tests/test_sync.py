"""The sync engine against the simulator: ground truth, incremental cursors, statuses, runs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from lib import exchanges
from lib.access import SYSTEM, AccessDenied, Role, Viewer
from lib.db import session_scope
from lib.models import AuditEvent, Candle, Connector, OpeningBalance, SyncResult, SyncRun, Ticker
from lib.simulator import Simulator, SimulatorConfig
from lib.sync import fills as fills_module
from lib.sync import markets, sync_connector, sync_connectors
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
    original = fills_module.trade_row

    def recording(exchange, trade):  # noqa: ANN001, ANN202
        seen.append(str(trade["id"]))
        return original(exchange, trade)

    monkeypatch.setattr(fills_module, "trade_row", recording)
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
        session.get(Connector, first).exchange_id = "bitmart"
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
