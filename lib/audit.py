"""The audit log: who did what, when. Callers pass no secret, and detail is plain text."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from lib.access import Role, Viewer
from lib.models import AuditEvent


def record(session: Session, actor: str, action: str, target: str = "", detail: str = "") -> None:
    """Add an audit event to the caller's transaction, so it commits or rolls back with it."""
    session.add(AuditEvent(actor=actor, action=action, target=target[:300], detail=detail))


def list_events(session: Session, viewer: Viewer, *, actions: list[str] | None = None, actor: str | None = None,
                since: datetime | None = None, until: datetime | None = None, limit: int = 10_000) -> list[AuditEvent]:
    """Newest first, admins only; ``until`` is exclusive."""
    viewer.require(Role.ADMIN)
    query = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit)
    if actions:
        query = query.where(AuditEvent.action.in_(actions))
    if actor:
        query = query.where(AuditEvent.actor == actor)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if until is not None:
        query = query.where(AuditEvent.at < until)
    return list(session.scalars(query))


def known_actions(session: Session, viewer: Viewer) -> list[str]:
    viewer.require(Role.ADMIN)
    return list(session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action)))


def known_actors(session: Session, viewer: Viewer) -> list[str]:
    viewer.require(Role.ADMIN)
    return list(session.scalars(select(AuditEvent.actor).distinct().order_by(AuditEvent.actor)))
