"""Faults: a flaky exchange, a worker killed mid-sync, leases and the SQLite worker lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from lib.access import SYSTEM
from lib.db import session_scope
from lib.models import Connector, Trade, utcnow
from lib.settings import PROJECT_ROOT, get_settings
from lib.simulator import Simulator, SimulatorConfig
from lib.sync import lease, markets, sync_connectors
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
    first = lease.claim(ids, "host-a:1:x")
    second = lease.claim(ids, "host-b:2:y")
    assert first == set(ids) and second == set()
    lease.release(ids, "host-a:1:x")
    assert lease.claim(ids, "host-b:2:y") == set(ids)


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
