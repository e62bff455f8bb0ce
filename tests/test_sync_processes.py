"""A run spread over child processes (``lib.sync.processes``) against the simulator over real HTTP.

The simulator serves from a thread of this process; the children reach it like any exchange.
``MIN_CPU_PER_PROCESS_S`` is lowered (the parent decides how many children a run gets) so a few
connectors make a multi-process run.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
import types
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from lib import exchanges
from lib.access import SYSTEM
from lib.clients import delete_client
from lib.db import session_scope
from lib.models import (
    BalanceSnapshot,
    Connector,
    LedgerEntry,
    OpeningBalance,
    Order,
    OrderHistory,
    Position,
    SyncResult,
    SyncRun,
    Trade,
    Transfer,
)
from lib.settings import MAX_SYNC_PROCESSES, SettingsError, get_settings
from lib.simulator import Simulator, SimulatorConfig
from lib.sync import markets, processes, sync_connectors
from lib.sync.runner import ConnectorResult
from tests.sync_helpers import add_connectors, differences

#: columns that say when the sync ran (or a price at that moment), not what it stored
MOMENT_COLUMNS = {"id", "connector_id", "taken_at", "usd_price", "mark_price", "notional", "unrealized_pnl"}
STORED = (Trade, Transfer, OrderHistory, Order, Position, OpeningBalance, LedgerEntry, BalanceSnapshot)
#: a result's fields that depend on timing or on which process loaded the markets first
TIMING_FIELDS = {"connector_id", "duration_ms", "requests"}


@pytest.fixture
def sim() -> Iterator[Simulator]:
    markets.forget()
    simulator = Simulator(SimulatorConfig(seed=29, accounts=4, days=20, fills_per_account=120)).start()
    yield simulator
    simulator.stop()


@pytest.fixture
def two_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs of two connectors or more go to two children."""
    monkeypatch.setenv("SYNC_PROCESSES", "2")
    get_settings.cache_clear()
    monkeypatch.setattr(processes, "MIN_CPU_PER_PROCESS_S", 0.01)


def _stored(connector_id: int) -> dict[str, list[tuple]]:
    """Every row the sync stored for a connector, without ids and sync-time columns, sorted."""
    with session_scope() as session:
        found = {}
        for model in STORED:
            columns = [c for c in model.__table__.columns if c.name not in MOMENT_COLUMNS]
            found[model.__tablename__] = sorted(
                session.execute(select(*columns).where(model.connector_id == connector_id)).all(), key=repr)
        outcome = session.execute(select(SyncResult.success, SyncResult.balances, SyncResult.new_trades,
                                         SyncResult.new_transfers, SyncResult.open_orders, SyncResult.positions,
                                         SyncResult.error, SyncResult.reconciliation, SyncResult.unbalanced)
                                  .where(SyncResult.connector_id == connector_id)).all()
        connector = session.get(Connector, connector_id)
        found["outcome"] = [*outcome, (connector.status, connector.last_error, connector.consecutive_failures,
                                       connector.lease_owner, connector.first_synced_at is not None)]
    return found


def _without_timing(result: ConnectorResult) -> dict[str, Any]:
    return {k: v for k, v in result.as_dict().items() if k not in TIMING_FIELDS}


def _run(report_run_id: int | None) -> tuple:
    with session_scope() as session:
        run = session.get(SyncRun, report_run_id)
        return run.total, run.successful, run.failed, run.finished_at is not None


def _sync_children() -> list[int]:
    """The pids of this process's sync children (``python -m lib.sync.child``), from /proc."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat, command = Path(f"/proc/{entry}/stat").read_text(), Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:  # it ended meanwhile
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid() and b"lib.sync.child" in command:
            found.append(int(entry))
    return found


def test_children_store_the_same_rows_and_report_as_in_process(
        database_url: str, sim: Simulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # in-process first; an API key is stored once, so its client then goes before the children's run
    monkeypatch.setenv("SYNC_PROCESSES", "1")
    get_settings.cache_clear()
    alone = add_connectors(sim)
    in_process = sync_connectors(SYSTEM)
    expected = {account: (_without_timing(next(r for r in in_process.results if r.connector_id == connector_id)),
                          _stored(connector_id)) for account, connector_id in alone.items()}
    with session_scope() as session:
        delete_client(session, SYSTEM, session.get(Connector, next(iter(alone.values()))).client_id)

    passed: list[object] = []  # every message this process sent to or received from a child
    original_send, original_recv = Connection.send, Connection.recv

    def recording_send(self: Connection, message: object) -> None:
        passed.append(message)
        original_send(self, message)

    def recording_recv(self: Connection) -> object:
        message = original_recv(self)
        passed.append(message)
        return message

    monkeypatch.setattr(Connection, "send", recording_send)
    monkeypatch.setattr(Connection, "recv", recording_recv)
    monkeypatch.setenv("SYNC_PROCESSES", "2")
    get_settings.cache_clear()
    monkeypatch.setattr(processes, "MIN_CPU_PER_PROCESS_S", 0.01)
    # in the dashboard, __main__ is the page Streamlit ran last: a child must never run it again
    page = tmp_path / "page.py"
    page.write_text("raise SystemExit('a child ran the parent\'s __main__')\n")
    main = types.ModuleType("__main__")
    main.__file__ = str(page)
    monkeypatch.setitem(sys.modules, "__main__", main)
    spread = add_connectors(sim)  # the same client name, accounts and labels
    progress: list[tuple[int, int]] = []
    in_children = sync_connectors(SYSTEM, on_progress=lambda done, total, _: progress.append((done, total)))

    # two children took part, were told connector ids, and no credentials crossed a pipe
    assert sorted(m[1] for m in passed if m is not None and m[0] == "sync") == sorted(spread.values())
    assert passed.count(None) == 2
    assert any(m[0] == "db" for m in passed if m is not None)  # the children's writes ran here
    secrets = [value for account in sim.accounts for value in account.credentials().values()]
    assert not [s for s in secrets for m in passed if s.encode() in pickle.dumps(m)]
    assert not _sync_children()
    assert in_children.successful == in_process.successful == len(sim.accounts)
    assert progress == [(n, len(spread)) for n in range(1, len(spread) + 1)]
    assert [r.connector_id for r in in_children.results] == sorted(spread.values())
    assert _run(in_children.run_id) == _run(in_process.run_id) == (len(sim.accounts), len(sim.accounts), 0, True)
    for account, connector_id in spread.items():
        result = next(r for r in in_children.results if r.connector_id == connector_id)
        assert (_without_timing(result), _stored(connector_id)) == expected[account]
        assert differences(sim, account, connector_id) == []


def test_a_connector_failing_in_a_child_gets_its_own_plain_error(
        database_url: str, sim: Simulator, two_processes: None) -> None:
    ids = add_connectors(sim)
    revoked, unsupported, *healthy = sim.accounts
    sim.revoke(revoked.id)
    with session_scope() as session:
        session.get(Connector, ids[unsupported.id]).exchange_id = "mtgox"
    report = sync_connectors(SYSTEM)
    by_id = {r.connector_id: r for r in report.results}
    failed = by_id[ids[revoked.id]]
    assert not failed.success and failed.attention
    assert failed.error == exchanges.describe_error(exchanges.ccxt.AuthenticationError())
    assert "not supported by the installed ccxt" in by_id[ids[unsupported.id]].error
    assert by_id[ids[unsupported.id]].attention
    assert all(by_id[ids[a.id]].success for a in healthy)
    assert all(differences(sim, a.id, ids[a.id]) == [] for a in healthy)
    assert _run(report.run_id) == (len(sim.accounts), len(healthy), 2, True)
    with session_scope() as session:
        connector = session.get(Connector, ids[revoked.id])
        assert (connector.status, connector.last_error, connector.lease_owner) == ("attention", failed.error, None)


def _kill_children_when_started(stop: threading.Event) -> None:
    """SIGKILL every sync child of this process as soon as it exists, until told to stop."""
    killed: set[int] = set()
    while not stop.wait(0.01):
        for pid in set(_sync_children()) - killed:
            os.kill(pid, signal.SIGKILL)
            killed.add(pid)


def test_a_child_that_dies_fails_its_connectors_plainly_and_the_next_sync_completes(
        database_url: str, sim: Simulator, two_processes: None) -> None:
    ids = add_connectors(sim)
    stop = threading.Event()
    killer = threading.Thread(target=_kill_children_when_started, args=(stop,))
    killer.start()
    try:
        report = sync_connectors(SYSTEM)
    finally:
        stop.set()
        killer.join()
    assert report.total == len(ids) and report.successful == 0
    for result in report.results:
        assert result.error.startswith("The sync process syncing this connector stopped unexpectedly (signal 9")
        assert "Traceback" not in result.error
    assert _run(report.run_id) == (len(ids), 0, len(ids), True)
    with session_scope() as session:
        for connector in session.scalars(select(Connector)):
            assert (connector.status, connector.lease_owner, connector.consecutive_failures) == ("error", None, 1)
    again = sync_connectors(SYSTEM)
    assert again.successful == len(ids)
    assert all(differences(sim, account, connector_id) == [] for account, connector_id in ids.items())


@pytest.mark.parametrize(("first", "later", "concurrency", "configured", "expected"), [
    (200, 0, 256, 2, 2), (200, 0, 256, 8, 8), (200, 0, 1, 2, 1), (200, 0, 256, 1, 1), (0, 0, 256, 2, 1),
    (16, 0, 256, 2, 1), (34, 0, 256, 2, 2),  # a child's expected work is at least MIN_CPU_PER_PROCESS_S
    (0, 200, 256, 2, 1), (5, 100, 256, 2, 1), (40, 200, 256, 2, 2),  # incremental runs cost little CPU
])
def test_processes_for_spreads_large_first_syncs_only(first: int, later: int, concurrency: int, configured: int,
                                                      expected: int) -> None:
    assert processes.processes_for(first, later, concurrency, configured) == expected


def test_sync_processes_setting_is_checked(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYNC_PROCESSES", raising=False)
    get_settings.cache_clear()
    assert get_settings().sync_processes == min(os.cpu_count() or 1, MAX_SYNC_PROCESSES)
    for bad in ("0", "-1", "1.5", "nan", "65"):
        monkeypatch.setenv("SYNC_PROCESSES", bad)
        get_settings.cache_clear()
        with pytest.raises(SettingsError, match="SYNC_PROCESSES"):
            get_settings()
    monkeypatch.setenv("SYNC_PROCESSES", "3")
    get_settings.cache_clear()
    assert get_settings().sync_processes == 3
