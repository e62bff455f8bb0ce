"""Reads and changes behind the admin pages for users and the audit log.

Nothing here is cached: an admin must see a change (or a lockout) the moment it happens.
Every change runs in one transaction through lib.users, which checks the role again and
writes the audit event; failures become a plain message shown after the rerun.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import pandas as pd
import streamlit as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from lib import audit, users
from lib.access import AccessDenied, Viewer
from lib.clients import list_clients
from lib.db import session_scope
from lib.models import Client, UserClient, utcnow
from lib.ui.format import literal, visible
from lib.validation import ValidationError

log = logging.getLogger(__name__)

_FLASH_KEY = "user_admin_flash"
NOTHING = "—"  # an empty cell, instead of None/nan/""


def utc_minute(moment: datetime | None, missing: str = NOTHING) -> str:
    """``2026-11-21 14:26 UTC``: one way to write a time in the admin tables."""
    return missing if moment is None else f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


@dataclass(frozen=True)
class UserRow:
    id: int
    username: str
    email: str | None
    role: str
    disabled: bool
    locked_until: datetime | None
    client_ids: tuple[int, ...]
    client_names: tuple[str, ...]
    last_login_at: datetime | None
    created_at: datetime
    has_password: bool


def user_rows(viewer: Viewer) -> list[UserRow]:
    with session_scope() as session:
        accounts = users.list_users(session, viewer)  # refuses anyone but an admin
        assigned: dict[int, list[tuple[int, str]]] = {}
        pairs = session.execute(
            select(UserClient.user_id, Client.id, Client.name)
            .join(Client, Client.id == UserClient.client_id).order_by(Client.name)
        )
        for user_id, client_id, name in pairs:
            assigned.setdefault(user_id, []).append((client_id, name))
        now = utcnow()
        return [
            UserRow(
                id=u.id, username=u.username, email=u.email, role=u.role, disabled=u.disabled,
                locked_until=u.locked_until if users.is_locked(u, now) else None,
                client_ids=tuple(cid for cid, _ in assigned.get(u.id, [])),
                client_names=tuple(name for _, name in assigned.get(u.id, [])),
                last_login_at=u.last_login_at, created_at=u.created_at, has_password=u.password_hash is not None,
            )
            for u in accounts
        ]


def users_frame(rows: list[UserRow]) -> pd.DataFrame:
    def status(row: UserRow) -> str:
        if row.disabled:
            return "disabled"
        if row.locked_until:
            return f"locked until {utc_minute(row.locked_until)}"
        return "active"

    def scope(row: UserRow) -> str:
        if row.role != "client":
            return "all"
        return ", ".join(row.client_names) or "none (sees nothing)"

    return pd.DataFrame(
        [
            {
                "Username": r.username, "Role": r.role, "Status": status(r), "Email": r.email or NOTHING,
                "Clients": scope(r),
                "Login": "password" + (" or single sign-on" if r.email else "") if r.has_password else "single sign-on",
                "Last login": utc_minute(r.last_login_at, "never"), "Created": utc_minute(r.created_at),
            }
            for r in rows
        ],
        columns=["Username", "Role", "Status", "Email", "Clients", "Login", "Last login", "Created"],
    )


def client_names(viewer: Viewer) -> dict[int, str]:
    """Client names by id, as select options show them (invisible characters written out)."""
    with session_scope() as session:
        return {c.id: visible(c.name) for c in list_clients(session, viewer)}


def change(action: Callable[[Session], object], success: str) -> None:
    """Run one change in a transaction, remember the outcome for the next run, and rerun.

    Always rerunning after a submit also drops the submitted form (its widgets are not drawn
    again), so no typed password outlives the run that used it.
    """
    try:
        with session_scope() as session:
            action(session)
    except (ValidationError, AccessDenied) as error:
        st.session_state[_FLASH_KEY] = ("error", str(error))
    except Exception:  # noqa: BLE001 - a plain message, never a traceback
        log.exception("user change failed")
        st.session_state[_FLASH_KEY] = ("error", "The change could not be saved. See the server log.")
    else:
        st.session_state[_FLASH_KEY] = ("success", success)
    st.rerun()


def reject(message: str) -> None:
    """Refuse a submit before anything runs: the message after a rerun, like ``change``."""
    st.session_state[_FLASH_KEY] = ("error", message)
    st.rerun()


def show_flash() -> None:
    """The last change's outcome; a plain sentence that may quote names, so shown literally."""
    if flash := st.session_state.pop(_FLASH_KEY, None):
        kind, message = flash
        (st.success if kind == "success" else st.error)(literal(message))


def form_key(name: str) -> str:
    """A form key that changes after every submit (see ``change``)."""
    counter = f"user_admin_form_{name}"
    generation = st.session_state.get(counter, 0)
    return f"{name}_{generation}"


def next_form(name: str) -> None:
    counter = f"user_admin_form_{name}"
    st.session_state[counter] = st.session_state.get(counter, 0) + 1


# ---------------------------------------------------------------- audit log


#: Each action code that lib writes to the audit log, in words for the audit page. The one
#: place for them: tests/test_audit_words.py finds every code in lib/ and pages/ and wants it here.
#: The CSV keeps the codes; a code missing here (an older row, a new code) is shown as it is.
AUDIT_ACTIONS: dict[str, str] = {
    "login": "Logged in",
    "login.failed": "Login failed",
    "login.locked": "Login locked after failed attempts",
    "logout": "Logged out or session ended",
    "user.created": "User added",
    "user.role_changed": "Role changed",
    "user.email_changed": "Email changed",
    "user.disabled": "User disabled",
    "user.enabled": "User enabled",
    "user.password_reset": "Password reset",
    "user.unlocked": "User unlocked",
    "user.clients_changed": "Client access changed",
    "client.created": "Client added",
    "client.renamed": "Client renamed",
    "client.deleted": "Client deleted",
    "credentials.added": "Connector added",
    "connector.updated": "Connector changed",
    "credentials.replaced": "API key replaced",
    "credentials.removed": "Connector removed",
    "vault.rotated": "Stored API keys re-encrypted",
    "sync.forced": "Sync started by hand",
    "history.imported.fills": "Fills imported from a file",
    "history.imported.transfers": "Transfers imported from a file",
}


def audit_action(code: str) -> str:
    """An action code in words, as plain text (``visible``); the code itself when it has none."""
    return visible(AUDIT_ACTIONS.get(code) or code or NOTHING)


def audit_filters(viewer: Viewer) -> tuple[list[str], list[str]]:
    """The action codes in the log (ordered by their words) and the actors in it."""
    with session_scope() as session:
        actions = audit.known_actions(session, viewer)
        return sorted(actions, key=lambda code: audit_action(code).casefold()), audit.known_actors(session, viewer)


_AUDIT_COLUMNS = ["When", "Who", "Action", "Target", "Detail"]


def audit_frame(viewer: Viewer, actions: list[str], actor: str | None, first_day: date | None,
                last_day: date | None) -> pd.DataFrame:
    """The filtered log, newest first, times exact (for the CSV); the days are whole UTC days, both included."""
    since = datetime.combine(first_day, time.min, tzinfo=UTC) if first_day else None
    until = datetime.combine(last_day, time.min, tzinfo=UTC) + timedelta(days=1) if last_day else None
    with session_scope() as session:
        events = audit.list_events(session, viewer, actions=actions, actor=actor, since=since, until=until)
        rows = [
            {"When": e.at.astimezone(UTC).isoformat(timespec="seconds"), "Who": e.actor, "Action": e.action,
             "Target": e.target or "", "Detail": e.detail or ""}
            for e in events
        ]
    return pd.DataFrame(rows, columns=_AUDIT_COLUMNS)


def audit_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The log as the page shows it: seconds in UTC (events of one minute keep their order when
    read), the action in words (``audit_action``), a dash for an empty cell."""
    shown = frame.replace("", NOTHING)
    shown["When"] = [f"{datetime.fromisoformat(at).astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" for at in frame["When"]]
    shown["Action"] = [audit_action(code) for code in frame["Action"]]
    return shown
