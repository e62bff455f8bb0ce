"""A sync run: pick connectors, lease them, sync them concurrently, record the outcome.

One run = one ``sync_runs`` row and one ``sync_results`` row per connector synced. A
connector's failure is caught, described in plain words and stored on the connector;
it never stops the others. Authentication and permission errors (and an exchange the
installed ccxt lacks) set ``status="attention"``: the worker leaves such a connector alone
until its credentials change or someone forces a sync.

Credentials this process cannot decrypt are this process's configuration error (its
ENCRYPTION_KEYS lack the key they were encrypted with), not the connector's: the run and
the log say so, and the connector is neither leased nor changed, so a process with the
right keys still syncs it. A run that loses its database releases its leases when it can;
when it cannot, they run out within one sync interval (``lib.sync.lease.duration``).

A run of many connectors syncs them in SYNC_PROCESSES child processes (``lib.sync.processes``:
one process uses one core); everything else above happens here, the same either way.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from functools import partial

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from lib import audit, exchanges, implied_totals, queries
from lib.access import Role, Viewer
from lib.connectors import connection_spec
from lib.db import session_scope
from lib.exchanges import UnsupportedExchange
from lib.models import Connector, SyncResult, SyncRun, utcnow
from lib.settings import get_settings
from lib.sync import lease, processes, store
from lib.sync.connector import ConnectorSync, Counts, Db, Job, Shared
from lib.vault import VaultError, load_vault

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 256
TRIGGERS = ("worker", "force", "cli", "save")
BUSY_MESSAGE = "Skipped: another process is syncing this connector right now."
UNREADABLE_MESSAGE = (
    "Credentials cannot be decrypted by this process: its ENCRYPTION_KEYS lack the key they were encrypted "
    "with. Give this process (app, worker or CLI) the same ENCRYPTION_KEYS as the others; the connector's "
    "status was left as it is, for a process with the right keys to sync it."
)
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
    refused: int = 0  # exchange rows left out: a string longer than its column (logged each)
    error: str | None = None
    attention: bool = False  # a person must act (key, permission, encryption key)
    skipped: bool = False  # leased by another process; nothing was done
    config_error: bool = False  # this process cannot decrypt the key; the connector was left as it is

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
    if isinstance(error, SQLAlchemyError):  # the driver's text may quote row values
        return f"The database could not be read or written ({type(error).__name__}); the next sync tries again."
    return exchanges.describe_error(error)


def _unreadable(job: Job) -> ConnectorResult:
    return ConnectorResult(job.connector_id, job.client, job.exchange_id, job.label, False,
                           error=UNREADABLE_MESSAGE, attention=True, config_error=True)


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
        requests=counts.requests, duration_ms=int((time.monotonic() - started) * 1000), refused=counts.refused,
        error=_describe(error) if error is not None else None,
        attention=error is not None and (exchanges.needs_attention(error) or job.problem is not None),
    )


async def _in_child(pool: processes.Pool, job: Job) -> ConnectorResult:
    """``_sync_job`` in one of the run's child processes, which decrypts the credentials itself; a
    child that died leaves its connectors this plain error. Named as this run selected it."""
    try:
        result = await pool.sync(job.connector_id, job.exchange_id)
    except processes.ChildDied as error:
        return ConnectorResult(job.connector_id, job.client, job.exchange_id, job.label, False, error=str(error))
    return replace(result, client=job.client, exchange=job.exchange_id, label=job.label)


def _reconciliation(result: ConnectorResult) -> tuple[str | None, int]:
    """After a successful sync, whether its history explains its balances (``lib.reconcile``'s
    rule, from per-asset sums: ``lib.implied_totals``,
    in its own read-only unit of work); (None, 0) after a failed one, or when the check itself
    fails (logged: the sync's own result still counts)."""
    if not result.success:
        return None, 0
    try:
        with store.unit() as session:
            return implied_totals.connector_status(session, result.connector_id)
    except Exception:  # noqa: BLE001 - a faulty check must not lose the sync's result
        log.exception("reconciliation of connector %s failed", result.connector_id)
        return None, 0


@store.batchable
def _record(run_id: int, owner: str, result: ConnectorResult, attempted_at) -> None:  # noqa: ANN001
    """The connector's result row, its status fields and the lease release: one commit (shared
    with other connectors' calls, ``store.batch``)."""
    status, unbalanced = _reconciliation(result)
    with store.unit() as session:
        session.add(SyncResult(
            run_id=run_id, connector_id=result.connector_id, success=result.success, balances=result.balances,
            new_trades=result.new_trades, new_transfers=result.new_transfers, open_orders=result.open_orders,
            positions=result.positions, requests=result.requests, duration_ms=result.duration_ms,
            error=result.error, reconciliation=status, unbalanced=unbalanced))
        values: dict[str, object] = {"last_attempt_at": attempted_at, "updated_at": Connector.updated_at,
                                     "lease_owner": None, "lease_until": None}
        if result.success:
            values |= {"status": "ok", "last_success_at": utcnow(), "last_error": None, "consecutive_failures": 0}
        else:
            values |= {"status": "attention" if result.attention else "error", "last_error": result.error,
                       "consecutive_failures": Connector.consecutive_failures + 1}
        session.execute(update(Connector).where(Connector.id == result.connector_id,
                                                Connector.lease_owner == owner).values(**values))


def _start_run(viewer: Viewer, trigger: str, total: int, scope: str, unreadable: list[ConnectorResult]) -> int:
    """The run's row, with a result row for each connector this process cannot decrypt (the
    connector's own row is not touched)."""
    with session_scope() as session:
        run = SyncRun(trigger=trigger, actor=viewer.username, total=total)
        session.add(run)
        if trigger == "force":
            audit.record(session, viewer.username, "sync.forced", scope, f"{total} connector(s)")
        session.flush()
        session.add_all(SyncResult(run_id=run.id, connector_id=r.connector_id, success=False, error=r.error)
                        for r in unreadable)
        return run.id


def _finish_run(run_id: int, report: RunReport) -> None:
    with session_scope() as session:
        run = session.get(SyncRun, run_id)
        if run is not None:
            run.finished_at = utcnow()
            run.total, run.successful, run.failed = report.total, report.successful, report.failed
    if any(result.new_trades for result in report.results):
        _refresh_fill_store()


def _refresh_fill_store() -> None:
    """Bring the P&L's fill store (``lib.queries``) up to the fills just committed, so a page
    finds it in step instead of reading the trades table itself (a million fills: seconds).
    A failure only leaves that to the page."""
    try:
        with session_scope() as session:
            queries.refresh_fill_store(session)
    except Exception:  # noqa: BLE001 - the sync's own result is already recorded
        log.exception("refreshing the fill store after the sync failed")


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
    lease_seconds: float | None = None,
) -> RunReport:
    """The async core of ``sync_connectors`` (for callers that already run an event loop).

    ``lease_seconds`` defaults to one SYNC_INTERVAL_SECONDS (``lease.duration``); the worker
    passes its own interval's.
    """
    viewer.require(Role.ADMIN, Role.ANALYST)
    if trigger not in TRIGGERS:
        raise ValueError(f"unknown sync trigger {trigger!r}")
    settings = get_settings()
    db = Db()
    run = _Run(viewer, db, lease.new_owner(), settings.usd_like, trigger, on_progress, stop, timeout_ms,
               lease_seconds or lease.duration(settings.sync_interval_seconds))
    try:
        return await run.run(connector_ids, client_id, concurrency, due_seconds)
    finally:
        db.close()


@dataclass
class _Run:
    """One run: its inputs, the leases not yet released (``pending``) and the results so far."""

    viewer: Viewer
    db: Db
    owner: str
    cash: frozenset[str]
    trigger: str
    on_progress: Progress | None
    stop: threading.Event | None
    timeout_ms: int
    lease_seconds: float
    pending: set[int] = field(default_factory=set)
    results: list[ConnectorResult] = field(default_factory=list)
    total: int = 0

    async def run(self, connector_ids: Sequence[int] | None, client_id: int | None, concurrency: int,
                  due_seconds: float | None) -> RunReport:
        vault = load_vault()

        def prepare() -> tuple[list[Job], list[ConnectorResult], list[ConnectorResult]]:
            with session_scope() as session:
                connectors = _select(session, self.viewer, connector_ids, client_id, self.trigger, due_seconds)
                jobs = [_job(c, vault) for c in connectors]
            unreadable = [_unreadable(j) for j in jobs if isinstance(j.problem, VaultError)]
            jobs = [j for j in jobs if not isinstance(j.problem, VaultError)]
            held = lease.claim([j.connector_id for j in jobs], self.owner, self.lease_seconds)
            busy = [ConnectorResult(j.connector_id, j.client, j.exchange_id, j.label, False, error=BUSY_MESSAGE,
                                    skipped=True) for j in jobs if j.connector_id not in held]
            return [j for j in jobs if j.connector_id in held], busy, unreadable

        jobs, busy, unreadable = await self.db(prepare)
        if unreadable:
            log.warning("this process cannot decrypt the credentials of connector(s) %s: its ENCRYPTION_KEYS lack "
                        "the key they were encrypted with; their status is left alone",
                        ", ".join(f"#{r.connector_id}" for r in unreadable))
        if not jobs and not unreadable:
            return RunReport(None, busy)
        self.pending = {j.connector_id for j in jobs}
        renewer = asyncio.create_task(self._keep_leases())
        try:
            run_id = await self.db(_start_run, self.viewer, self.trigger, len(jobs) + len(unreadable),
                                   _scope_text(connector_ids, client_id), unreadable)
            self.total = len(jobs) + len(unreadable)
            for result in unreadable:
                self._done(result)
            gate = asyncio.Semaphore(max(1, concurrency))
            first = sum(j.first_sync for j in jobs)
            size = processes.processes_for(first, len(jobs) - first, concurrency, get_settings().sync_processes)
            if size > 1:
                async with processes.Pool(size, self.db, self.cash, self.timeout_ms) as pool:
                    await asyncio.gather(*(self._one(job, gate, partial(_in_child, pool), run_id) for job in jobs))
            else:
                shared = Shared(db=self.db, cash=self.cash, timeout_ms=self.timeout_ms)
                await asyncio.gather(*(self._one(job, gate, partial(_sync_job, shared=shared), run_id)
                                       for job in jobs))
        finally:
            renewer.cancel()
            await self._release(self.pending)
        report = RunReport(run_id, sorted(self.results, key=lambda r: r.connector_id) + busy)  # selection order
        await self.db(_finish_run, run_id, report)
        return report

    def _done(self, result: ConnectorResult) -> None:
        self.results.append(result)
        if self.on_progress is not None:
            self.on_progress(len(self.results), self.total, result)

    async def _one(self, job: Job, gate: asyncio.Semaphore, sync: Callable[[Job], Awaitable[ConnectorResult]],
                   run_id: int) -> None:
        async with gate:
            if self.stop is not None and self.stop.is_set():
                result = ConnectorResult(job.connector_id, job.client, job.exchange_id, job.label, False,
                                         error="Skipped: the worker is stopping.", skipped=True)
                await self._release({job.connector_id})
            else:
                attempted_at = utcnow()
                result = await sync(job)
                try:
                    await self.db(_record, run_id, self.owner, result, attempted_at)
                except SQLAlchemyError as error:  # the database went away: say so, keep the others going
                    log.warning("the result of connector %s could not be recorded: %s", job.connector_id,
                                type(error).__name__)
                    result = replace(result, success=False, error=_describe(error))
                else:
                    self.pending.discard(job.connector_id)
        self._done(result)

    async def _release(self, ids: set[int]) -> None:
        """Free leases now; when the database cannot be reached they run out by themselves."""
        if not ids:
            return
        try:
            await self.db(lease.release, list(ids), self.owner)
        except SQLAlchemyError as error:
            log.warning("%d lease(s) could not be released (%s); they run out within %g s",
                        len(ids), type(error).__name__, self.lease_seconds)
        else:
            self.pending -= ids

    async def _keep_leases(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / lease.RENEWALS_PER_LEASE)
            try:
                await self.db(lease.renew, list(self.pending), self.owner, self.lease_seconds)
            except SQLAlchemyError as error:
                log.warning("leases could not be renewed (%s); they run out within %g s",
                            type(error).__name__, self.lease_seconds)


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
