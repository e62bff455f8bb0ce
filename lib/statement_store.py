"""Month-end statements kept in the ``statements`` table, made by the worker and revised on late data.

A month's statement is made once the month has closed (its end is in the past), for every
client with an event before that end. It is made again only when the data it depends on
(``lib.statements.scope_version``: fills, transfers and opening balances dated before the
month's end) changed since: the new one replaces it with ``revision`` + 1 and says "Revised".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lib import statements
from lib.access import SYSTEM, AccessDenied, Viewer
from lib.db import session_scope
from lib.models import Client, Connector, OpeningBalance, Statement, Trade, Transfer, utcnow
from lib.statement_render import Revision, to_html, to_pdf

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KeptStatement:
    id: int
    client_id: int
    period: str
    revision: int
    generated_at: datetime


def _first_event_ms(session: Session, client_id: int) -> int | None:
    ids = select(Connector.id).where(Connector.client_id == client_id)
    firsts = [session.scalar(select(func.min(model.timestamp)).where(model.connector_id.in_(ids)))
              for model in (Trade, Transfer, OpeningBalance)]
    known = [f for f in firsts if f is not None]
    return min(known) if known else None


def closed_months(session: Session, client_id: int, now: datetime) -> list[str]:
    """Every calendar month from the client's first event up to the last one that has ended."""
    first = _first_event_ms(session, client_id)
    if first is None:
        return []
    month = statements.month_of(datetime.fromtimestamp(first / 1000, tz=now.tzinfo))
    current = statements.month_of(now)
    months = []
    while month < current:
        months.append(month)
        month = statements.month_of(statements.month_window(month)[1])
    return months


def keep_month(client_id: int, period: str) -> KeptStatement | None:
    """Make and keep ``period``'s statement when it is missing or its data changed; None when
    the kept one is current."""
    start, end = statements.month_window(period)
    with session_scope() as session:
        version = statements.scope_version(session, client_id, end)
        kept = session.scalar(select(Statement).where(Statement.client_id == client_id, Statement.period == period))
        if kept is not None and kept.data_version == version:
            return None
        revision = 1 if kept is None else kept.revision + 1
    data = statements.gather(SYSTEM, client_id, start, end, period)
    mark = Revision(revision, data.generated_at)
    html, pdf = to_html(data, mark), to_pdf(data, mark)
    with session_scope() as session:
        row = session.scalar(select(Statement).where(Statement.client_id == client_id, Statement.period == period))
        if row is None:
            row = Statement(client_id=client_id, period=period)
            session.add(row)
        row.revision, row.data_version, row.generated_at = revision, version, data.generated_at
        row.html, row.pdf = html, pdf
        session.flush()
        return KeptStatement(row.id, client_id, period, revision, data.generated_at)


def keep_closed_months(now: datetime | None = None) -> list[KeptStatement]:
    """The worker's pass: every client's closed months made or revised as needed. One failing
    statement is logged and the others go on."""
    now = now or utcnow()
    with session_scope() as session:
        due = [(cid, month) for cid in session.scalars(select(Client.id).order_by(Client.id))
               for month in closed_months(session, cid, now)]
    made = []
    for client_id, month in due:
        try:
            kept = keep_month(client_id, month)
        except Exception:  # noqa: BLE001 - one statement must not stop the others or the sync
            log.exception("statement for client %s, %s failed", client_id, month)
            continue
        if kept is not None:
            made.append(kept)
    return made


def list_kept(session: Session, viewer: Viewer, client_id: int) -> list[KeptStatement]:
    """The client's kept statements, newest period first; AccessDenied when not the viewer's."""
    if not viewer.can_see_client(client_id):
        raise AccessDenied("You may not see this client's statements.")
    rows = session.scalars(select(Statement).where(Statement.client_id == client_id)
                           .order_by(Statement.period.desc()))
    return [KeptStatement(r.id, r.client_id, r.period, r.revision, r.generated_at) for r in rows]


def kept_file(session: Session, viewer: Viewer, statement_id: int, kind: str) -> bytes:
    """A kept statement's HTML (UTF-8) or PDF bytes, if the viewer may see its client."""
    row = session.get(Statement, statement_id)
    if row is None or not viewer.can_see_client(row.client_id):
        raise AccessDenied("You may not see this statement.")
    return row.html.encode() if kind == "html" else bytes(row.pdf)
