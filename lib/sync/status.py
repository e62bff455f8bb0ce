"""How fresh each connector's data is, and the recent runs: scoped reads for the pages.

Freshness levels: ``ok`` (last sync succeeded, recent), ``stale`` (amber: no success for
more than three sync intervals), ``failed`` (red: the last attempt failed, or the
connector needs attention), ``never`` (not synced yet), ``disabled``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lib.access import Role, Viewer
from lib.models import Client, Connector, SyncResult, SyncRun, utcnow

STALE_INTERVALS = 3


@dataclass(frozen=True)
class Freshness:
    connector_id: int
    client_id: int
    client: str
    exchange: str
    label: str
    level: str  # ok | stale | failed | never | disabled
    status: str
    last_success_at: datetime | None
    last_attempt_at: datetime | None
    error: str | None
    consecutive_failures: int
    #: the last successful sync's reconciliation ("balanced", "unbalanced", "unknown"; None: not
    #: checked) and how many assets its history did not explain (``lib.reconcile``)
    reconciliation: str | None = None
    unbalanced: int = 0

    @property
    def needs_attention(self) -> bool:
        return self.status == "attention"


def can_force_sync(viewer: Viewer) -> bool:
    return viewer.role in (Role.ADMIN, Role.ANALYST)


def _level(connector: Connector, interval_seconds: float, now: datetime) -> str:
    if not connector.enabled:
        return "disabled"
    if connector.status in ("error", "attention"):
        return "failed"
    if connector.last_success_at is None:
        return "never"
    if (now - connector.last_success_at).total_seconds() > STALE_INTERVALS * interval_seconds:
        return "stale"
    return "ok"


def connector_freshness(session: Session, viewer: Viewer, interval_seconds: float,
                        client_id: int | None = None) -> list[Freshness]:
    """Every connector the viewer may see (optionally one client's), with its freshness."""
    query = select(Connector, Client.name).join(Client).order_by(Client.name, Connector.exchange_id, Connector.label)
    if not viewer.sees_all_clients:
        query = query.where(Connector.client_id.in_(viewer.client_ids))
    if client_id is not None:
        query = query.where(Connector.client_id == client_id)
    now = utcnow()
    connectors = list(session.execute(query))
    checked = _reconciliations(session, [c.id for c, _ in connectors])
    return [
        Freshness(c.id, c.client_id, name, c.exchange_id, c.label, _level(c, interval_seconds, now), c.status,
                  c.last_success_at, c.last_attempt_at, c.last_error, c.consecutive_failures,
                  *checked.get(c.id, (None, 0)))
        for c, name in connectors
    ]


def _reconciliations(session: Session, ids: list[int]) -> dict[int, tuple[str | None, int]]:
    """Connector id -> (reconciliation, unbalanced) of its newest successful sync result."""
    if not ids:
        return {}
    newest = (select(func.max(SyncResult.id)).where(SyncResult.connector_id.in_(ids), SyncResult.success)
              .group_by(SyncResult.connector_id))
    rows = session.execute(select(SyncResult.connector_id, SyncResult.reconciliation, SyncResult.unbalanced)
                           .where(SyncResult.id.in_(newest)))
    return {cid: (status, unbalanced or 0) for cid, status, unbalanced in rows}


@dataclass(frozen=True)
class RunRow:
    id: int
    started_at: datetime
    finished_at: datetime | None
    trigger: str
    actor: str
    total: int
    successful: int
    failed: int


def recent_runs(session: Session, viewer: Viewer, limit: int = 20) -> list[RunRow]:
    """The latest sync runs. Runs span clients, so a client-role user sees none."""
    if not viewer.sees_all_clients:
        return []
    runs = session.scalars(select(SyncRun).order_by(SyncRun.started_at.desc(), SyncRun.id.desc()).limit(limit))
    return [RunRow(r.id, r.started_at, r.finished_at, r.trigger, r.actor, r.total, r.successful, r.failed)
            for r in runs]


def age_text(moment: datetime | None, now: datetime | None = None) -> str:
    """'synced 2 min ago' style wording for a timestamp."""
    if moment is None:
        return "never synced"
    seconds = max(0, int(((now or utcnow()) - moment).total_seconds()))
    if seconds < 60:
        return "synced just now"
    if seconds < 3600:
        return f"synced {seconds // 60} min ago"
    if seconds < 86400:
        return f"synced {seconds // 3600} h ago"
    return f"synced {seconds // 86400} d ago"
