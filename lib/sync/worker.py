"""The scheduled sync: every enabled connector, every interval, until told to stop.

Used by ``python -m lib.cli worker`` (stops on SIGTERM) and by the dashboard's own
background thread (``start_background_worker``). On SQLite one worker per database holds
an exclusive file lock; on PostgreSQL any number may run, and the row leases of
``lib.sync.lease`` keep them from syncing one connector twice. After each pass that changed the
data it makes the figures the dashboard opens on (``lib.figures_ahead``); once an hour it also makes
the month-end statements of closed months, and revises those whose data changed (``keep_statements``),
and thins the balance snapshots older than ``SNAPSHOT_DETAIL_DAYS`` (``lib.snapshots``).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import IO

from sqlalchemy.exc import SQLAlchemyError

from lib import figures_ahead, snapshots
from lib.access import SYSTEM
from lib.db import describe_failure
from lib.settings import get_settings
from lib.statement_store import keep_closed_months
from lib.sync import lease
from lib.sync.runner import RunReport, sync_connectors
from lib.vault import VaultError

log = logging.getLogger(__name__)

#: seconds between passes that make (or revise) month-end statements and thin old snapshots
HOURLY = 3600.0


def run_cycle(interval: float, stop: threading.Event) -> RunReport | None:
    """One pass over the connectors that are due, leasing them for one interval; never raises
    (the loop must go on). A database that is down or was recreated without tables, and
    unusable ENCRYPTION_KEYS, are one log line per cycle: the next cycle tries again, and
    picks the database up again once it is back and migrated."""
    try:
        return sync_connectors(SYSTEM, trigger="worker", stop=stop, due_seconds=interval / 2,
                               lease_seconds=lease.duration(interval))
    except VaultError as error:
        log.error("sync cycle skipped: %s", error)
    except SQLAlchemyError as error:
        log.error("sync cycle failed: %s", describe_failure(error))
    except Exception:  # noqa: BLE001 - anything else: the traceback, then try again next interval
        log.exception("sync cycle failed")
    return None


def keep_statements() -> None:
    """Month-end statements made or revised (``lib.statement_store``); never raises, like the sync."""
    try:
        made = keep_closed_months()
    except SQLAlchemyError as error:
        log.error("statements skipped: %s", describe_failure(error))
    except Exception:  # noqa: BLE001 - the loop must go on
        log.exception("statements failed")
    else:
        if made:
            log.info("kept %d statement(s): %s", len(made), ", ".join(f"client {k.client_id} {k.period} "
                                                                    f"r{k.revision}" for k in made))


def run_worker(interval: float, stop: threading.Event) -> None:
    """Loop until ``stop`` is set. Raises ``lease.WorkerLockBusy`` when SQLite is taken."""
    _loop(interval, stop, lease.acquire_worker_lock())


def _loop(interval: float, stop: threading.Event, handle: IO[str] | None) -> None:
    """The worker loop, holding (and finally releasing) the SQLite lock ``handle``.

    A lock file deleted with the database is locked again before the next cycle; when another
    worker got it first, this one stops (``lease.WorkerLockBusy``), leaving SQLite to one worker.
    """
    hourly_due = 0.0
    figures_for: str | None = None  # the data version the landing views' figures were made for
    try:
        while not stop.is_set():
            handle = lease.keep_worker_lock(handle)
            started = time.monotonic()
            report = run_cycle(interval, stop)
            if report is not None and report.total:
                log.info("synced %d connector(s): %d ok, %d failed", report.total, report.successful, report.failed)
            if not stop.is_set():
                figures_for = figures_ahead.keep(figures_for)
            if started >= hourly_due and not stop.is_set():
                keep_statements()
                snapshots.thin()
                hourly_due = started + HOURLY
            stop.wait(max(0.0, interval - (time.monotonic() - started)))
    finally:
        lease.release_worker_lock(handle)


@dataclass
class BackgroundWorker:
    """The dashboard's in-process worker thread; ``message`` says why it is not running."""

    running: bool
    message: str
    stop_event: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout=30)
        self.running = False


def start_background_worker(interval: float | None = None) -> BackgroundWorker:
    """Start the worker loop in a daemon thread, holding the SQLite lock for the process.

    When another worker already holds the lock, nothing starts and ``message`` says so.
    """
    interval = interval or get_settings().sync_interval_seconds
    try:
        handle = lease.acquire_worker_lock()
    except lease.WorkerLockBusy as busy:
        log.warning("%s", busy)
        return BackgroundWorker(False, str(busy))
    worker = BackgroundWorker(True, f"Syncing every {interval:g} s in the dashboard process.")

    def loop() -> None:
        try:
            _loop(interval, worker.stop_event, handle)
        except lease.WorkerLockBusy as busy:
            log.error("%s", busy)
            worker.running, worker.message = False, str(busy)

    worker.thread = threading.Thread(target=loop, name="sync-worker", daemon=True)
    worker.thread.start()
    return worker
