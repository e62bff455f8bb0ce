"""Who may sync a connector right now: row leases, and the one-worker lock of SQLite.

Every sync (worker, Force sync, CLI) first leases its connectors: ``lease_owner`` and
``lease_until`` on the row. On PostgreSQL the free rows are claimed with
``SELECT ... FOR UPDATE SKIP LOCKED``, so concurrent workers split the work instead of
waiting on each other; on SQLite (one writer) a conditional UPDATE does the same.
A lease held by a process of this host that no longer exists (killed with SIGKILL) is
free at once; one held elsewhere is free when it expires. A lease lasts one sync interval
(``duration``) and is renewed three times per lease while a sync runs, so a holder that
lost its database, and cannot release or renew, blocks nobody for longer than an interval.
"""

from __future__ import annotations

import fcntl
import os
import socket
import uuid
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import IO

from sqlalchemy import or_, select, update

from lib.db import session_scope
from lib.models import Connector, utcnow
from lib.settings import Settings, get_settings

#: the shortest lease: renewing more than a few times a second would be the database's main load
MIN_LEASE_SECONDS = 5.0
#: renewals per lease: two may fail (a busy database) before the lease runs out
RENEWALS_PER_LEASE = 3

_HOST = socket.gethostname()


def duration(interval_seconds: float) -> float:
    """How long a lease lasts: one sync interval, at least MIN_LEASE_SECONDS."""
    return max(MIN_LEASE_SECONDS, float(interval_seconds))


def new_owner() -> str:
    """A lease owner id: host and pid (to spot dead holders) plus a random tag."""
    return f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _dead_here(owner: str | None) -> bool:
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != _HOST or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def claim(connector_ids: Iterable[int], owner: str, seconds: float) -> set[int]:
    """Lease the free connectors among ``connector_ids`` for ``seconds``; returns the ids now
    held by ``owner``."""
    ids = list(connector_ids)
    if not ids:
        return set()
    now = utcnow()
    until = now + timedelta(seconds=seconds)
    with session_scope() as session:
        held = session.execute(select(Connector.lease_owner).where(
            Connector.id.in_(ids), Connector.lease_until >= now, Connector.lease_owner != owner).distinct())
        dead = [o for (o,) in held if _dead_here(o)]
        free = or_(Connector.lease_until.is_(None), Connector.lease_until < now,
                   Connector.lease_owner.in_([owner, *dead]))
        if session.get_bind().dialect.name == "postgresql":
            ids = list(session.scalars(select(Connector.id).where(Connector.id.in_(ids), free)
                                       .with_for_update(skip_locked=True)))
            free = Connector.id.in_(ids)
        session.execute(update(Connector).where(Connector.id.in_(ids), free).values(
            lease_owner=owner, lease_until=until, updated_at=Connector.updated_at))
        session.flush()
        return set(session.scalars(select(Connector.id).where(Connector.id.in_(ids), Connector.lease_owner == owner)))


def renew(connector_ids: Iterable[int], owner: str, seconds: float) -> None:
    ids = list(connector_ids)
    if ids:
        with session_scope() as session:
            session.execute(update(Connector).where(Connector.id.in_(ids), Connector.lease_owner == owner).values(
                lease_until=utcnow() + timedelta(seconds=seconds), updated_at=Connector.updated_at))


def release(connector_ids: Iterable[int], owner: str) -> None:
    ids = list(connector_ids)
    if ids:
        with session_scope() as session:
            session.execute(update(Connector).where(Connector.id.in_(ids), Connector.lease_owner == owner).values(
                lease_owner=None, lease_until=None, updated_at=Connector.updated_at))


# --- SQLite: one worker per database file -------------------------------------------------

class WorkerLockBusy(RuntimeError):
    """Another worker already syncs this SQLite database."""


def _lock_path(settings: Settings) -> Path:
    url = settings.database_url
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        return Path(url.removeprefix("sqlite:///") + ".worker.lock")
    return settings.data_dir / "worker.lock"


def acquire_worker_lock(settings: Settings | None = None) -> IO[str] | None:
    """On SQLite, an exclusive lock held for the worker's life (None on PostgreSQL).

    Raises WorkerLockBusy when another worker (a ``make worker``, or the app's own) has it.
    """
    settings = settings or get_settings()
    if not settings.is_sqlite:
        return None
    path = _lock_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise WorkerLockBusy(
            f"Another sync worker is already running on this SQLite database (lock file {path}). "
            "SQLite allows one worker: stop the other one, or move to PostgreSQL (DATABASE_URL) for several. "
            "The dashboard runs its own worker unless RUN_WORKER_IN_APP=false."
        ) from None
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def release_worker_lock(handle: IO[str] | None) -> None:
    if handle is not None and not handle.closed:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def keep_worker_lock(handle: IO[str] | None) -> IO[str] | None:
    """The worker's lock, taken again when its file was deleted or replaced while held (say by
    ``rm data/dashboard.db*`` before recreating the database): a lock on a deleted file would
    let a second worker lock the new one. Raises WorkerLockBusy when another worker did first."""
    if handle is None:
        return None
    held = os.fstat(handle.fileno())
    try:
        current = os.stat(handle.name)
    except FileNotFoundError:
        current = None
    if current is not None and (current.st_dev, current.st_ino) == (held.st_dev, held.st_ino):
        return handle
    release_worker_lock(handle)
    return acquire_worker_lock()
