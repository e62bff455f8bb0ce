"""A sync run: pick connectors, lease them, sync them concurrently, record the outcome.

One run = one ``sync_runs`` row and one ``sync_results`` row per connector synced. A
connector's failure is caught, described in plain words and stored on the connector;
it never stops the others. Authentication and permission errors (and credentials that
cannot be decrypted, or an exchange the installed ccxt lacks) set ``status="attention"``:
the worker leaves such a connector alone until its credentials change or someone
forces a sync.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta

from sqlalchemy import select, update

from lib import audit, exchanges
from lib.access import Role, Viewer
from lib.connectors import connection_spec
from lib.db import session_scope
from lib.exchanges import UnsupportedExchange
from lib.models import Connector, SyncResult, SyncRun, utcnow
from lib.settings import get_settings
from lib.sync import lease
from lib.sync.connector import ConnectorSync, Counts, Db, Job, Shared
from lib.vault import VaultError, load_vault

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 64
TRIGGERS = ("worker", "force", "cli", "save")
BUSY_MESSAGE = "Skipped: another process is syncing this connector right now."
#: A connector just saved gets its first sync from the save itself (form or CLI), which
#: shows the result to whoever saved it; the worker leaves it alone this long, so it does
#: not take the lease first and turn that first result into "skipped".
SAVE_SYNC_GRACE = timedelta(minutes=2)


@dataclass
class ConnectorResult:
    """The outcome of syncing one connector, as pages, the CLI and tests see it."""

    connector_id: int
    client: str
    exchange: str
    label: str
    success: bool
    balances: int = 0
    new_trades: int = 0
    new_transfers: int = 0
    open_orders: int = 0
    positions: int = 0
    requests: int = 0
    duration_ms: int = 0
    error: str | None = None
    attention: bool = False  # a person must act (key, permission, encryption key)
    skipped: bool = False  # leased by another process; nothing was done

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class RunReport:
    run_id: int | None
    results: list[ConnectorResult]

    @property
    def synced(self) -> list[ConnectorResult]:
        return [r for r in self.results if not r.skipped]

    @property
    def total(self) -> int:
        return len(self.synced)

    @property
    def successful(self) -> int:
        return sum(r.success for r in self.synced)

    @property
    def failed(self) -> int:
        return self.total - self.successful


#: on_progress(done, total, result): called in the caller's thread after each connector
Progress = Callable[[int, int, ConnectorResult], None]


def _select(session, viewer: Viewer, connector_ids: Sequence[int] | None, client_id: int | None,  # noqa: ANN001
            trigger: str, due_seconds: float | None) -> list[Connector]:
    query = select(Connector).order_by(Connector.id)
    if connector_ids is not None:
        query = query.where(Connector.id.in_(list(connector_ids)))
    else:
        query = query.where(Connector.enabled.is_(True))
    if client_id is not None:
        query = query.where(Connector.client_id == client_id)
    if not viewer.sees_all_clients:
        query = query.where(Connector.client_id.in_(viewer.client_ids))
    if trigger == "worker":
        query = query.where(Connector.status != "attention")
        query = query.where((Connector.status != "new") | (Connector.created_at < utcnow() - SAVE_SYNC_GRACE))
        if due_seconds:
            due = utcnow() - timedelta(seconds=due_seconds)
            query = query.where((Connector.last_attempt_at.is_(None)) | (Connector.last_attempt_at < due))
    return list(session.scalars(query))


def _job(connector: Connector, vault) -> Job:  # noqa: ANN001 - lib.vault.Vault
    spec, problem = None, None
    try:
        spec = connection_spec(connector, vault)
    except (UnsupportedExchange, VaultError) as error:
        problem = error
    extra = tuple(s.strip() for s in (connector.extra_symbols or "").split(",") if s.strip())
    return Job(connector.id, connector.client.name, connector.exchange_id, connector.label, spec, problem,
               extra, connector.first_synced_at is None)


def _describe(error: BaseException) -> str:
    if isinstance(error, VaultError):
        return f"Credentials cannot be decrypted: {error}."
    return exchanges.describe_error(error)


def _first_error(error: BaseException) -> BaseException:
    """The error that explains a failure best: an auth error over anything it caused."""
    if isinstance(error, BaseExceptionGroup):
        leaves = []
        stack = [error]
        while stack:
            current = stack.pop()
            if isinstance(current, BaseExceptionGroup):
                stack.extend(current.exceptions)
            else:
                leaves.append(current)
        return next((e for e in leaves if exchanges.needs_attention(e)), leaves[0])
    return error


async def _sync_job(job: Job, shared: Shared) -> ConnectorResult:
    counts = Counts()
    started = time.monotonic()
    error: BaseException | None = job.problem
    if error is None:
        worker = ConnectorSync(job, shared, counts)
        try:
            await worker.run()
        except Exception as caught:  # noqa: BLE001 - every failure becomes a result
            error = _first_error(caught)
            log.info("sync of connector %s failed: %s", job.connector_id, type(error).__name__)
        finally:
            await worker.close()
    return ConnectorResult(
        connector_id=job.connector_id, client=job.client, exchange=job.exchange_id, label=job.label,
        success=error is None, balances=counts.balances, new_trades=counts.new_trades,
        new_transfers=counts.new_transfers, open_orders=counts.open_orders, positions=counts.positions,
        requests=counts.requests, duration_ms=int((time.monotonic() - started) * 1000),
        error=_describe(error) if error is not None else None,
        attention=error is not None and (exchanges.needs_attention(error) or job.problem is not None),
    )


def _record(run_id: int, owner: str, result: ConnectorResult, attempted_at) -> None:  # noqa: ANN001
    """The connector's result row, its status fields and the lease release: one commit."""
    with session_scope() as session:
        session.add(SyncResult(
            run_id=run_id, connector_id=result.connector_id, success=result.success, balances=result.balances,
            new_trades=result.new_trades, new_transfers=result.new_transfers, open_orders=result.open_orders,
            positions=result.positions, requests=result.requests, duration_ms=result.duration_ms,
            error=result.error))
        values: dict[str, object] = {"last_attempt_at": attempted_at, "updated_at": Connector.updated_at,
                                     "lease_owner": None, "lease_until": None}
        if result.success:
            values |= {"status": "ok", "last_success_at": utcnow(), "last_error": None, "consecutive_failures": 0}
        else:
            values |= {"status": "attention" if result.attention else "error", "last_error": result.error,
                       "consecutive_failures": Connector.consecutive_failures + 1}
        session.execute(update(Connector).where(Connector.id == result.connector_id,
                                                Connector.lease_owner == owner).values(**values))


def _start_run(viewer: Viewer, trigger: str, jobs: list[Job], scope: str) -> int:
    with session_scope() as session:
        run = SyncRun(trigger=trigger, actor=viewer.username, total=len(jobs))
        session.add(run)
        if trigger == "force":
            audit.record(session, viewer.username, "sync.forced", scope, f"{len(jobs)} connector(s)")
        session.flush()
        return run.id


def _finish_run(run_id: int, report: RunReport) -> None:
    with session_scope() as session:
        run = session.get(SyncRun, run_id)
        if run is not None:
            run.finished_at = utcnow()
            run.total, run.successful, run.failed = report.total, report.successful, report.failed


def _scope_text(connector_ids: Sequence[int] | None, client_id: int | None) -> str:
    if connector_ids is not None:
        return "connector(s) " + ", ".join(f"#{i}" for i in connector_ids)
    return f"client #{client_id}" if client_id is not None else "all connectors"


async def sync_async(
    viewer: Viewer,
    *,
    connector_ids: Sequence[int] | None = None,
    client_id: int | None = None,
    trigger: str = "cli",
    on_progress: Progress | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    stop: threading.Event | None = None,
    due_seconds: float | None = None,
    timeout_ms: int = exchanges.DEFAULT_TIMEOUT_MS,
) -> RunReport:
    """The async core of ``sync_connectors`` (for callers that already run an event loop)."""
    viewer.require(Role.ADMIN, Role.ANALYST)
    if trigger not in TRIGGERS:
        raise ValueError(f"unknown sync trigger {trigger!r}")
    settings = get_settings()
    db = Db()
    owner = lease.new_owner()
    try:
        return await _run(viewer, db, owner, settings.usd_like, connector_ids, client_id, trigger,
                          on_progress, concurrency, stop, due_seconds, timeout_ms)
    finally:
        db.close()


async def _run(viewer: Viewer, db: Db, owner: str, cash: frozenset[str], connector_ids: Sequence[int] | None,
               client_id: int | None, trigger: str, on_progress: Progress | None, concurrency: int,
               stop: threading.Event | None, due_seconds: float | None, timeout_ms: int) -> RunReport:
    vault = load_vault()

    def prepare() -> tuple[list[Job], list[ConnectorResult]]:
        with session_scope() as session:
            connectors = _select(session, viewer, connector_ids, client_id, trigger, due_seconds)
            jobs = [_job(c, vault) for c in connectors]
        held = lease.claim([j.connector_id for j in jobs], owner)
        busy = [ConnectorResult(j.connector_id, j.client, j.exchange_id, j.label, False, error=BUSY_MESSAGE,
                                skipped=True) for j in jobs if j.connector_id not in held]
        return [j for j in jobs if j.connector_id in held], busy

    jobs, busy = await db(prepare)
    if not jobs:
        return RunReport(None, busy)
    run_id = await db(_start_run, viewer, trigger, jobs, _scope_text(connector_ids, client_id))
    shared = Shared(db=db, cash=cash, timeout_ms=timeout_ms)
    gate = asyncio.Semaphore(max(1, concurrency))
    results: list[ConnectorResult] = []
    pending = {j.connector_id for j in jobs}

    async def one(job: Job) -> None:
        async with gate:
            if stop is not None and stop.is_set():
                result = ConnectorResult(job.connector_id, job.client, job.exchange_id, job.label, False,
                                         error="Skipped: the worker is stopping.", skipped=True)
                await db(lease.release, [job.connector_id], owner)
            else:
                attempted_at = utcnow()
                result = await _sync_job(job, shared)
                await db(_record, run_id, owner, result, attempted_at)
        pending.discard(job.connector_id)
        results.append(result)
        if on_progress is not None:
            on_progress(len(results), len(jobs), result)

    async def keep_leases() -> None:
        while True:
            await asyncio.sleep(lease.RENEW_EVERY_SECONDS)
            await db(lease.renew, list(pending), owner)

    renewer = asyncio.create_task(keep_leases())
    try:
        await asyncio.gather(*(one(j) for j in jobs))
    finally:
        renewer.cancel()
    order = {j.connector_id: i for i, j in enumerate(jobs)}
    results.sort(key=lambda r: order[r.connector_id])
    report = RunReport(run_id, results + busy)
    await db(_finish_run, run_id, report)
    return report


def sync_connectors(viewer: Viewer, **options: object) -> RunReport:
    """Sync connectors now (all enabled ones the viewer sees, one client's, or given ids).

    Options are those of ``sync_async``. Admins and analysts only; raises
    ``lib.access.AccessDenied`` for anyone else.
    """
    return asyncio.run(sync_async(viewer, **options))  # type: ignore[arg-type]


def sync_connector(viewer: Viewer, connector_id: int, *, trigger: str = "save",
                   on_progress: Progress | None = None) -> ConnectorResult:
    """Sync one connector (after saving it, or a retry button) and return its result."""
    report = sync_connectors(viewer, connector_ids=[connector_id], trigger=trigger, on_progress=on_progress)
    if not report.results:
        return ConnectorResult(connector_id, "", "", "", False, error=f"No connector with id {connector_id}.")
    return report.results[0]
