"""Login sessions that survive reloads and new tabs: one database row per login, one cookie per browser.

1. A login (password, single sign-on, the set-up screen) calls ``start``: a row, and, when the
   browser carries the binding cookie, a one-time handoff code valid ``HANDOFF`` long.
2. The page sends the browser to ``/_auth/session?code=...`` (lib/ui/server.py). ``claim``
   turns the code, with the same browser's binding cookie, into a fresh random token; the
   route sets it, HMAC-signed, as an HttpOnly, SameSite=Strict cookie.
3. Every later page load (a reload, a link opened in a new tab) presents the cookie; ``by_token``
   finds the row by the token's SHA-256. The token itself is stored nowhere on the server.
4. ``check`` ends a row after SESSION_IDLE_MINUTES without activity (any tab counts) or
   SESSION_MAX_HOURS after the login; logout ends the browser's row (``end``), and a password
   reset, a disabled account or a role change end all of the user's rows (``end_all``).

The handoff code is bound to the browser (``sha256(code|binding)``), so a code read from a
log or a forged link cannot log another browser in (login CSRF). Cookie handling follows
OWASP's Session Management Cheat Sheet
(https://cheatsheetseries.owasp.org/cheatsheets/Session_Management_Cheat_Sheet.html) and
RFC 6265bis for SameSite (https://datatracker.ietf.org/doc/html/draft-ietf-httpbis-rfc6265bis).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from lib import audit
from lib.models import LOGIN_SOURCE_MAX, AuthSession, User, utcnow
from lib.settings import Settings, get_settings

COOKIE_NAME = "dashboard_session"
BINDING_COOKIE = "dashboard_browser"  # a random id per browser, set by the server on its first answer
HANDOFF = timedelta(minutes=2)
PRUNE_AFTER = timedelta(days=1)  # ended rows stay this long past their expiry, so a late reload can say why
_TOUCH_EVERY = timedelta(seconds=60)  # at most one last-seen write a minute (see check)


@dataclass(frozen=True)
class Status:
    """What ``check`` found: the user of a live session, or why it is over."""

    user_id: int | None
    ended: str | None = None


def new_secret() -> str:
    """32 random bytes, URL-safe: tokens, handoff codes, binding ids."""
    return secrets.token_urlsafe(32)


def digest(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


# ---------------------------------------------------------------- signing


def _signing_key(settings: Settings) -> bytes:
    """SESSION_SECRET, else a random key generated once into DATA_DIR/session.key (mode 0600).

    App servers that share a database must share the key too (set SESSION_SECRET), or a
    cookie from one is refused by the other.
    """
    if settings.session_secret:
        return settings.session_secret.encode()
    path = Path(settings.data_dir) / "session.key"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".session.key.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(new_secret() + "\n")
        try:
            os.link(draft, path)  # published whole, or not at all when another process was first
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip().encode()


def _mac(key: bytes, token: str) -> str:
    return base64.urlsafe_b64encode(hmac.new(key, token.encode(), hashlib.sha256).digest()).decode().rstrip("=")


def sign(token: str, settings: Settings | None = None) -> str:
    """The cookie value: the token and its HMAC-SHA256 under the session key."""
    return f"{token}.{_mac(_signing_key(settings or get_settings()), token)}"


def unsign(value: str | None, settings: Settings | None = None) -> str | None:
    """The token of a cookie value whose signature holds, else None (checked before any query)."""
    token, _, mac = (value or "").rpartition(".")
    if not token or not mac:
        return None
    expected = _mac(_signing_key(settings or get_settings()), token)
    return token if hmac.compare_digest(mac.encode(), expected.encode()) else None


# ---------------------------------------------------------------- rows


def start(session: Session, user_id: int, method: str, source: str, binding: str | None = None,
          now: datetime | None = None) -> tuple[AuthSession, str | None]:
    """A new session row and, for a browser with a binding id, its one-time handoff code."""
    now = now or utcnow()
    session.execute(delete(AuthSession).where(AuthSession.expires_at < now - PRUNE_AFTER))
    code = new_secret() if binding else None
    row = AuthSession(user_id=user_id, method=method[:50], source=source[:LOGIN_SOURCE_MAX], created_at=now,
                      last_seen_at=now, expires_at=now + timedelta(hours=get_settings().session_max_hours),
                      handoff_hash=digest(code, binding) if binding and code else None)
    session.add(row)
    session.flush()
    return row, code


def claim(session: Session, code: str, binding: str, now: datetime | None = None) -> tuple[str, AuthSession] | None:
    """Swap a live handoff code, presented by the browser it was made for, for a new cookie token.

    The code works once and for ``HANDOFF`` only; None otherwise.
    """
    now = now or utcnow()
    if not code or not binding:
        return None
    row = session.scalar(select(AuthSession).where(AuthSession.handoff_hash == digest(code, binding)))
    if row is None:
        return None
    row.handoff_hash = None  # used, whatever happens next
    if row.ended_at is not None or now - row.created_at > HANDOFF or now >= row.expires_at:
        return None
    token = new_secret()
    row.token_hash = digest(token)
    return token, row


def by_token(session: Session, token: str | None) -> AuthSession | None:
    return session.scalar(select(AuthSession).where(AuthSession.token_hash == digest(token))) if token else None


def check(session: Session, session_id: int, *, touch: bool, now: datetime | None = None) -> Status:
    """Whether the session is live; ends it (with an audit row) once idle or too old.

    ``touch`` records activity, at most once a ``_TOUCH_EVERY`` (or a tenth of the idle
    limit, whichever is shorter), so a click does not always cost a write.
    """
    now = now or utcnow()
    settings = get_settings()
    row = session.get(AuthSession, session_id)
    if row is None:
        return Status(None, "removed")
    if row.ended_at is not None:
        return Status(row.user_id, row.end_reason)
    idle = timedelta(minutes=settings.session_idle_minutes)
    reason = "max age" if now >= row.expires_at else "idle timeout" if now - row.last_seen_at > idle else None
    if reason:
        end(session, session_id, reason, now)
        return Status(row.user_id, reason)
    if touch and now - row.last_seen_at >= min(_TOUCH_EVERY, idle / 10):
        row.last_seen_at = now
    return Status(row.user_id)


def anyone_active(session: Session, roles: Sequence[str], now: datetime | None = None) -> bool:
    """Whether a user of one of ``roles`` has a live login used within the idle limit: someone
    who may open a page soon."""
    now = now or utcnow()
    idle = timedelta(minutes=get_settings().session_idle_minutes)
    return session.scalar(select(AuthSession.id).join(User, User.id == AuthSession.user_id).where(
        User.role.in_(list(roles)), AuthSession.ended_at.is_(None), AuthSession.expires_at > now,
        AuthSession.last_seen_at > now - idle).limit(1)) is not None


def end(session: Session, session_id: int, reason: str, now: datetime | None = None) -> bool:
    """End one session; True when this call ended it (then its audit "logout" row is written)."""
    ended = session.execute(
        update(AuthSession).where(AuthSession.id == session_id, AuthSession.ended_at.is_(None))
        .values(ended_at=now or utcnow(), end_reason=reason, handoff_hash=None)
        .execution_options(synchronize_session="fetch")
    ).rowcount == 1
    if ended:
        row = session.get(AuthSession, session_id)
        user = session.get(User, row.user_id) if row else None
        if user is not None:
            audit.record(session, user.username, "logout", detail=reason)
    return ended


def end_all(session: Session, user_id: int, reason: str, now: datetime | None = None) -> int:
    """End every live session of a user (the caller's audit row says why); how many were live."""
    return session.execute(
        update(AuthSession).where(AuthSession.user_id == user_id, AuthSession.ended_at.is_(None))
        .values(ended_at=now or utcnow(), end_reason=reason, handoff_hash=None)
        .execution_options(synchronize_session="fetch")
    ).rowcount
