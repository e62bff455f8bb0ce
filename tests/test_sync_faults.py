"""Faults: a flaky exchange, a worker killed mid-sync, leases and the SQLite worker lock, a worker
without the encryption key, a run that loses its database, a database recreated under a running process."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, make_url, select, update
from sqlalchemy.exc import OperationalError

from lib.access import SYSTEM
from lib.cli import main
from lib.db import session_scope
from lib.models import Client, Connector, SyncResult, Trade, utcnow
from lib.settings import PROJECT_ROOT, get_settings
from lib.simulator import Simulator, SimulatorConfig
from lib.sync import lease, markets, runner, sync_connectors
from lib.sync.worker import run_cycle
from tests.conftest import _pg_connect
from tests.sync_helpers import add_connectors, differences


@pytest.fixture
def sim() -> Iterator[Simulator]:
    markets.forget()
    simulator = Simulator(SimulatorConfig(seed=11, accounts=3, days=90, fills_per_account=400)).start()
    simulator.faults.timeout_s = 1.5  # a "timeout" fault holds the answer this long
    yield simulator
    simulator.stop()


def test_twenty_percent_faults_still_end_equal_to_ground_truth(database_url: str, sim: Simulator) -> None:
    ids = add_connectors(sim)
    injected: Counter[str] = Counter()
    decide = sim.faults.decide

    def counted(account_id: str | None, path: str):  # noqa: ANN202 - the simulator's Decision
        decision = decide(account_id, path)
        injected[decision.kind or "none"] += 1
        return decision

    sim.faults.decide = counted  # type: ignore[method-assign] - count what the simulator injects
    sim.faults.set(rate=0.2, kinds=("429", "5xx", "timeout", "drop", "malformed"))
    report = sync_connectors(SYSTEM, timeout_ms=1000)
    sim.faults.clear()
    assert report.successful == 3, [r.error for r in report.results]
    faults = sum(n for kind, n in injected.items() if kind != "none")
    assert faults >= 0.1 * sum(injected.values()) and len(injected) >= 4, injected  # the faults really happened
    for account_id, connector_id in ids.items():
        assert differences(sim, account_id, connector_id) == []


def _worker(interval: float = 1.0) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "lib.cli", "worker", "--interval", str(interval)],
                            cwd=PROJECT_ROOT, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _stored_fills() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count(Trade.id))) or 0


def _saved_minutes_ago(minutes: int) -> None:
    """As if every connector had been saved that long ago (past the save-sync grace)."""
    with session_scope() as session:
        session.execute(update(Connector).values(created_at=utcnow() - timedelta(minutes=minutes)))


def test_worker_leaves_a_just_saved_connector_to_its_own_first_sync(database_url: str, sim: Simulator) -> None:
    ids = add_connectors(sim)
    assert sync_connectors(SYSTEM, trigger="worker").results == []  # the save path syncs it and shows the result
    _saved_minutes_ago(5)  # that first sync never happened (say the process died): the worker takes over
    assert {r.connector_id for r in sync_connectors(SYSTEM, trigger="worker").results} == set(ids.values())


def test_worker_killed_mid_sync_then_rerun_ends_equal_to_ground_truth(database_url: str, sim: Simulator) -> None:
    ids = add_connectors(sim)
    _saved_minutes_ago(5)
    sim.faults.set(rate=0.0, latency_ms=40)  # slow enough to be caught half-way
    worker = _worker()
    try:
        deadline = time.monotonic() + 60
        while _stored_fills() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert 0 < _stored_fills() < 1200, "the kill should land in the middle of the first sync"
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    with session_scope() as session:  # the dead worker's leases are still on the rows
        assert session.scalar(select(func.count()).where(Connector.lease_owner.is_not(None))) > 0
    sim.faults.clear()
    again = _worker()
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if all(not differences(sim, a, c) for a, c in ids.items()):
                break
            time.sleep(0.5)
    finally:
        again.send_signal(signal.SIGTERM)
        out, _ = again.communicate(timeout=60)
    assert again.returncode == 0 and b"sync worker stopped" in out
    for account_id, connector_id in ids.items():
        assert differences(sim, account_id, connector_id) == []


def test_second_sqlite_worker_refuses_to_start(sqlite_url: str) -> None:
    handle = lease.acquire_worker_lock()
    try:
        with pytest.raises(lease.WorkerLockBusy, match="already running"):
            lease.acquire_worker_lock()
        refused = subprocess.run([sys.executable, "-m", "lib.cli", "worker", "--interval", "1"], cwd=PROJECT_ROOT,
                                 env=os.environ.copy(), capture_output=True, text=True, timeout=60)
        assert refused.returncode == 2 and "already running" in refused.stderr
    finally:
        lease.release_worker_lock(handle)
    assert get_settings().is_sqlite


def test_a_worker_lock_deleted_with_the_database_is_taken_again(sqlite_url: str) -> None:
    """``rm data/dashboard.db*`` also deletes the lock file: the running worker locks the new one,
    so a second worker still cannot start; if one got it first, the running worker stops."""
    handle = lease.acquire_worker_lock()
    try:
        Path(handle.name).unlink()
        handle = lease.keep_worker_lock(handle)
        with pytest.raises(lease.WorkerLockBusy):
            lease.acquire_worker_lock()
        assert lease.keep_worker_lock(handle) is handle  # nothing to do while the file stays
        Path(handle.name).unlink()
        other = lease.acquire_worker_lock()  # a second worker started in between
        try:
            with pytest.raises(lease.WorkerLockBusy):
                lease.keep_worker_lock(handle)
        finally:
            lease.release_worker_lock(other)
    finally:
        lease.release_worker_lock(handle)


def test_lease_held_elsewhere_is_skipped_and_a_dead_holder_is_taken_over(database_url: str, sim: Simulator) -> None:
    ids = add_connectors(sim)
    busy, dead, _ = ids.values()
    with session_scope() as session:
        until = utcnow() + timedelta(minutes=5)
        session.execute(update(Connector).where(Connector.id == busy).values(
            lease_owner="another-host:1:abc", lease_until=until))
        session.execute(update(Connector).where(Connector.id == dead).values(
            lease_owner=f"{lease._HOST}:999999999:abc", lease_until=until))
    report = sync_connectors(SYSTEM)
    by_id = {r.connector_id: r for r in report.results}
    assert by_id[busy].skipped and not by_id[busy].success and report.total == 2
    assert by_id[dead].success


def test_workers_claim_disjoint_connectors(database_url: str, sim: Simulator) -> None:
    ids = list(add_connectors(sim).values())
    first = lease.claim(ids, "host-a:1:x", 60)
    second = lease.claim(ids, "host-b:2:y", 60)
    assert first == set(ids) and second == set()
    lease.release(ids, "host-a:1:x")
    assert lease.claim(ids, "host-b:2:y", 60) == set(ids)


def _connector_rows() -> dict[int, tuple]:
    """What a sync writes on a connector row: status, error, failures, attempt, success, lease."""
    with session_scope() as session:
        return {c.id: (c.status, c.last_error, c.consecutive_failures, c.last_attempt_at, c.last_success_at,
                       c.lease_owner, c.lease_until) for c in session.scalars(select(Connector))}


def test_a_worker_without_the_key_leaves_the_connector_to_one_with_it(
        database_url: str, sim: Simulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    ids = add_connectors(sim)
    _saved_minutes_ago(5)
    before = _connector_rows()
    right_keys = get_settings().encryption_keys
    monkeypatch.setenv("ENCRYPTION_KEYS", Fernet.generate_key().decode())  # a worker started with another key
    get_settings.cache_clear()
    caplog.set_level(logging.WARNING, logger="lib.sync.runner")
    report = run_cycle(60, threading.Event())
    assert report is not None and report.failed == len(ids) and report.successful == 0
    assert all(r.config_error and "ENCRYPTION_KEYS" in r.error for r in report.results)
    assert "cannot decrypt the credentials of connector(s)" in caplog.text  # its own configuration, in its log
    assert _connector_rows() == before  # status, error, attempt time and lease untouched
    with session_scope() as session:
        recorded = session.scalars(select(SyncResult).where(SyncResult.run_id == report.run_id)).all()
        assert {r.connector_id for r in recorded} == set(ids.values()) and not any(r.success for r in recorded)
    monkeypatch.setenv("ENCRYPTION_KEYS", ",".join(right_keys))  # a correctly configured worker
    get_settings.cache_clear()
    report = run_cycle(60, threading.Event())
    assert report is not None and report.successful == len(ids), [r.error for r in report.results]
    assert {status for status, *_ in _connector_rows().values()} == {"ok"}


def _database_error(*_args: object) -> None:
    raise OperationalError("UPDATE connectors ...", {}, Exception("server closed the connection"))


def test_leases_last_one_interval_and_a_run_that_loses_its_database_frees_them(
        database_url: str, sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = set(add_connectors(sim).values())
    started = utcnow()
    assert lease.claim(ids, "host-a:1:x", lease.duration(60)) == ids
    with session_scope() as session:
        until = set(session.scalars(select(Connector.lease_until)))
        assert all(started < u <= utcnow() + timedelta(seconds=60) for u in until)  # not 5 minutes
    lease.release(ids, "host-a:1:x")
    assert lease.duration(1) == lease.MIN_LEASE_SECONDS and lease.duration(600) == 600

    # the database goes away when results are recorded: the run still ends, says why, and frees its leases
    monkeypatch.setattr(runner, "_record", _database_error)
    report = sync_connectors(SYSTEM, lease_seconds=30)
    assert report.failed == len(ids)
    assert all("database could not be read or written" in r.error for r in report.results)
    assert {row[5] for row in _connector_rows().values()} == {None}  # released

    # and when it cannot even release them, they run out within the run's lease (one interval)
    monkeypatch.setattr(lease, "release", _database_error)
    started = utcnow()
    report = sync_connectors(SYSTEM, lease_seconds=30)
    assert report.failed == len(ids)
    rows = _connector_rows().values()
    assert all(owner is not None and started < until <= utcnow() + timedelta(seconds=30)
               for *_, owner, until in rows)


def _recreate_empty(url: str) -> None:
    """Delete the database (SQLite files, or DROP the PostgreSQL database) and create it empty."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database)
        for companion in path.parent.glob(path.name + "*"):
            if not companion.name.endswith(".lock"):
                companion.unlink()
        path.touch()
        return
    with _pg_connect() as connection:
        connection.execute(f'DROP DATABASE "{parsed.database}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{parsed.database}"')


def test_a_recreated_database_is_picked_up_without_a_restart(
        database_url: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    assert main(["client", "add", "Before"]) == 0
    capsys.readouterr()
    _recreate_empty(database_url)
    assert main(["client", "list"]) == 2  # the same process: not the old file's rows, not "unexpected"
    assert capsys.readouterr().err == "error: The database has no tables yet: run python -m lib.cli migrate.\n"
    caplog.set_level(logging.ERROR, logger="lib.sync.worker")
    assert run_cycle(60, threading.Event()) is None
    assert "no tables yet: run python -m lib.cli migrate" in caplog.text and "Traceback" not in caplog.text
    migrated = subprocess.run([sys.executable, "-m", "lib.cli", "migrate"], cwd=PROJECT_ROOT, env=os.environ.copy(),
                              capture_output=True, text=True, timeout=120)
    assert migrated.returncode == 0, migrated.stderr
    assert main(["client", "add", "After"]) == 0  # same process, no restart
    with session_scope() as session:
        assert list(session.scalars(select(Client.name))) == ["After"]
    assert run_cycle(60, threading.Event()) is not None


def test_in_app_worker_starts_once_and_holds_the_sqlite_lock(sqlite_url: str) -> None:
    from lib.sync.worker import start_background_worker

    first = start_background_worker(interval=3600)
    try:
        assert first.running and first.thread is not None and first.thread.is_alive()
        second = start_background_worker(interval=3600)
        assert not second.running and "already running" in second.message
        with pytest.raises(lease.WorkerLockBusy):
            lease.acquire_worker_lock()
    finally:
        first.stop()
    assert not first.thread.is_alive()
    lease.release_worker_lock(lease.acquire_worker_lock())  # free again once stopped
