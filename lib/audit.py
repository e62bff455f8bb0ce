"""The audit log: who did what, when. Callers pass no secret, and detail is plain text."""

from __future__ import annotations

from sqlalchemy.orm import Session

from lib.models import AuditEvent


def record(session: Session, actor: str, action: str, target: str = "", detail: str = "") -> None:
    """Add an audit event to the caller's transaction, so it commits or rolls back with it."""
    session.add(AuditEvent(actor=actor, action=action, target=target[:300], detail=detail))
