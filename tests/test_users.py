"""lib.users and the ``user`` CLI: accounts, roles, lockout in the database, the audit trail."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from lib import audit, db, users
from lib.access import SYSTEM, AccessDenied, Role, Viewer
from lib.cli import main as cli
from lib.clients import create_client, list_clients
from lib.models import AuditEvent, User, utcnow
from lib.settings import get_settings
from lib.validation import ValidationError
from tests.helpers import database_contents

PASSWORD = "correct horse battery"  # a test fixture, not a credential
ANALYST = Viewer("ann", Role.ANALYST)


def _add(username: str, role: Role = Role.ANALYST, password: str = PASSWORD, email: str | None = None) -> int:
    with db.session_scope() as session:
        return users.create_user(session, SYSTEM, username, role, password, email).id


def _login(username: str, password: str, now=None) -> int | None:  # noqa: ANN001 - datetime | None
    with db.session_scope() as session:
        user = users.authenticate(session, username, password, now=now)
        return user.id if user else None


def _user(user_id: int) -> User:
    with db.session_scope() as session:
        return session.get(User, user_id)


def _events(action: str | None = None) -> list[AuditEvent]:
    with db.session_scope() as session:
        return audit.list_events(session, SYSTEM, actions=[action] if action else None)


def _audit_text() -> str:
    return "\n".join(f"{e.actor} {e.action} {e.target} {e.detail}" for e in _events())


# ---------------------------------------------------------------- first admin and accounts


def test_first_admin_needs_twelve_characters_and_happens_once(database_url: str) -> None:
    before = database_contents(database_url)
    with pytest.raises(ValidationError, match="at least 12"), db.session_scope() as session:
        users.create_first_admin(session, "boss", "elevenchars")
    assert database_contents(database_url) == before
    with db.session_scope() as session:
        admin = users.create_first_admin(session, "boss", PASSWORD, "Boss@Example.com")
        assert (admin.role, admin.email) == ("admin", "boss@example.com")
        assert admin.password_hash.startswith("$argon2") and PASSWORD not in admin.password_hash
    with pytest.raises(ValidationError, match="already been created"), db.session_scope() as session:
        users.create_first_admin(session, "second", PASSWORD)
    assert [(e.actor, e.target) for e in _events("user.created")] == [("setup", "boss")]


@pytest.mark.parametrize(
    ("username", "role", "password", "email", "field"),
    [
        ("", "analyst", PASSWORD, None, "username"),
        ("system", "analyst", PASSWORD, None, "username"),
        ("x" * 101, "analyst", PASSWORD, None, "username"),
        ("ann", "superuser", PASSWORD, None, "role"),
        ("ann", "analyst", "short", None, "password"),
        ("ann", "analyst", " " * 20, None, "password"),
        ("ann", "analyst", None, None, "password"),  # neither password nor email
        ("ann", "analyst", PASSWORD, "not-an-email", "email"),
    ],
)
def test_bad_user_input_is_refused_and_changes_nothing(sqlite_url: str, username, role, password, email,
                                                        field) -> None:  # noqa: ANN001
    before = database_contents(sqlite_url)
    with pytest.raises(ValidationError) as caught, db.session_scope() as session:
        users.create_user(session, SYSTEM, username, role, password, email)
    assert caught.value.field == field
    assert database_contents(sqlite_url) == before


def test_usernames_and_emails_are_unique_case_insensitively(database_url: str) -> None:
    _add("Ann", email="ann@example.com")
    for username, email in (("ann", None), ("bob", "ANN@example.com")):
        with pytest.raises(ValidationError, match="already"), db.session_scope() as session:
            users.create_user(session, SYSTEM, username, Role.ANALYST, PASSWORD, email)


def test_usernames_are_unique_ignoring_unicode_case(database_url: str) -> None:
    user_id = _add("Élodie")
    with pytest.raises(ValidationError, match="already"), db.session_scope() as session:
        users.create_user(session, SYSTEM, "ÉLODIE", Role.ANALYST, PASSWORD)
    with db.session_scope() as session:
        assert users.find_user(session, "élodie").id == user_id


def test_only_admins_manage_users(database_url: str) -> None:
    user_id = _add("ann")
    client = Viewer("carl", Role.CLIENT, frozenset({1}))
    for viewer in (ANALYST, client):
        with pytest.raises(AccessDenied), db.session_scope() as session:
            users.create_user(session, viewer, "eve", Role.ADMIN, PASSWORD)
        with pytest.raises(AccessDenied), db.session_scope() as session:
            users.list_users(session, viewer)
        with pytest.raises(AccessDenied), db.session_scope() as session:
            users.set_role(session, viewer, user_id, Role.ADMIN)
        with pytest.raises(AccessDenied), db.session_scope() as session:
            users.reset_password(session, viewer, user_id, "another long password")
        with pytest.raises(AccessDenied), db.session_scope() as session:
            audit.list_events(session, viewer)


def test_the_last_active_admin_cannot_be_demoted_or_disabled(database_url: str) -> None:
    boss = _add("boss", Role.ADMIN)
    admin = Viewer("other", Role.ADMIN)
    with pytest.raises(ValidationError, match="last active admin"), db.session_scope() as session:
        users.set_role(session, admin, boss, Role.ANALYST)
    with pytest.raises(ValidationError, match="last active admin"), db.session_scope() as session:
        users.set_disabled(session, admin, boss, True)
    with pytest.raises(ValidationError, match="your own"), db.session_scope() as session:
        users.set_disabled(session, Viewer("boss", Role.ADMIN), boss, True)
    _add("second", Role.ADMIN)
    with db.session_scope() as session:
        users.set_role(session, admin, boss, Role.ANALYST)
    assert _user(boss).role == "analyst"


def test_viewer_is_built_from_the_database_with_assigned_clients(database_url: str) -> None:
    with db.session_scope() as session:
        alpha, beta, _gamma = (create_client(session, SYSTEM, n).id for n in ("Alpha", "Beta", "Gamma"))
    carl = _add("carl", Role.CLIENT)
    with db.session_scope() as session:
        users.set_clients(session, SYSTEM, carl, [alpha])
        users.assign_client(session, SYSTEM, carl, beta)
        viewer = users.viewer_for(session, carl)
        assert viewer == Viewer("carl", Role.CLIENT, frozenset({alpha, beta}))
        assert [c.name for c in list_clients(session, viewer)] == ["Alpha", "Beta"]
        users.set_clients(session, SYSTEM, carl, [beta])
        assert [c.name for c in list_clients(session, users.viewer_for(session, carl))] == ["Beta"]
        with pytest.raises(ValidationError, match="No client"):
            users.set_clients(session, SYSTEM, carl, [9999])
        users.set_disabled(session, SYSTEM, carl, True)
        assert users.viewer_for(session, carl) is None  # out at once
    assert [e.detail for e in _events("user.clients_changed")] == ["clients: Beta", "clients: Alpha, Beta",
                                                                   "clients: Alpha"]


# ---------------------------------------------------------------- login and lockout


def test_login_checks_the_password_and_records_it(database_url: str) -> None:
    ann = _add("ann")
    assert _login("ANN", PASSWORD) == ann  # usernames are case-insensitive
    assert _login("ann", PASSWORD + "x") is None
    assert _login("nobody", PASSWORD) is None
    assert _user(ann).last_login_at is not None
    assert [(e.actor, e.action) for e in reversed(_events())][-3:] == [
        ("ann", "login"), ("ann", "login.failed"), ("(unknown)", "login.failed")
    ]


def test_disabled_and_sso_only_users_cannot_log_in_with_a_password(database_url: str) -> None:
    ann = _add("ann")
    with db.session_scope() as session:
        users.set_disabled(session, SYSTEM, ann, True)
        users.create_user(session, SYSTEM, "sso", Role.ANALYST, None, "sso@example.com")
    assert _login("ann", PASSWORD) is None
    assert _login("sso", "") is None
    assert _login("sso", PASSWORD) is None


def test_five_failures_lock_for_fifteen_minutes_then_the_lock_expires(database_url: str) -> None:
    ann = _add("ann")
    start = utcnow()
    for attempt in range(users.MAX_FAILED_LOGINS - 1):
        assert _login("ann", f"wrong password {attempt}", now=start) is None
    assert _user(ann).locked_until is None
    assert _login("ann", "wrong password 5", now=start) is None
    locked_until = _user(ann).locked_until
    assert locked_until == start + timedelta(minutes=15)
    # Locked: even the right password is refused, and the lock is not extended by it.
    assert _login("ann", PASSWORD, now=start + timedelta(minutes=14, seconds=59)) is None
    assert _user(ann).locked_until == locked_until
    assert [e.target or e.actor for e in _events("login.locked")] == ["ann"]
    # Expired: the right password works and clears the counters.
    assert _login("ann", PASSWORD, now=start + timedelta(minutes=15, seconds=1)) == ann
    assert (_user(ann).failed_logins, _user(ann).locked_until) == (0, None)


def test_a_success_resets_the_failure_count(database_url: str) -> None:
    ann = _add("ann")
    for _ in range(users.MAX_FAILED_LOGINS - 1):
        _login("ann", "wrong password!")
    assert _login("ann", PASSWORD) == ann
    for _ in range(users.MAX_FAILED_LOGINS - 1):
        _login("ann", "wrong password!")
    assert _user(ann).locked_until is None


def test_the_lock_survives_a_restart(database_url: str) -> None:
    ann = _add("ann")
    for _ in range(users.MAX_FAILED_LOGINS):
        _login("ann", "wrong password!")
    # A restart: no engine, no pooled connection, settings read again.
    get_settings.cache_clear()
    db.dispose_engines()
    assert _login("ann", PASSWORD) is None
    assert users.is_locked(_user(ann))


def test_reset_password_and_unlock_lift_the_lock(database_url: str) -> None:
    ann = _add("ann")
    for _ in range(users.MAX_FAILED_LOGINS):
        _login("ann", "wrong password!")
    with db.session_scope() as session:
        users.unlock(session, SYSTEM, ann)
    assert _login("ann", PASSWORD) == ann
    for _ in range(users.MAX_FAILED_LOGINS):
        _login("ann", "wrong password!")
    with db.session_scope() as session:
        users.reset_password(session, SYSTEM, ann, "a brand new passphrase")
    assert _login("ann", PASSWORD) is None
    assert _login("ann", "a brand new passphrase") == ann


def test_a_lockout_holds_only_for_the_source_that_guessed(database_url: str) -> None:
    """Guesses from one address cannot keep the only admin out: other addresses still get in."""
    boss = _add("boss", Role.ADMIN)
    attacker, office = users.login_source("203.0.113.9"), users.login_source("198.51.100.7")
    with db.session_scope() as session:
        for _ in range(users.MAX_FAILED_LOGINS + 3):
            assert users.authenticate(session, "boss", "a wrong guess!", source=attacker) is None
        assert users.authenticate(session, "boss", PASSWORD, source=attacker) is None  # locked for the guesser
        assert users.authenticate(session, "boss", PASSWORD, source=office).id == boss
    assert users.is_locked(_user(boss))  # the Users page still shows that someone is locked out
    locked = _events("login.locked")
    assert len(locked) == 1 and "203.0.113.9" in locked[0].detail
    assert "from 198.51.100.7" in _events("login")[0].detail
    with db.session_scope() as session:
        users.unlock(session, SYSTEM, boss)
        assert users.authenticate(session, "boss", PASSWORD, source=attacker).id == boss


def test_login_sources() -> None:
    assert users.login_source(None) == users.login_source("127.0.0.1") == users.login_source("::1") == "localhost"
    assert users.login_source("203.0.113.9") == users.login_source("::ffff:203.0.113.9") == "203.0.113.9"
    # an IPv6 client holds a whole /64: one source, not 2**64 fresh starts
    assert users.login_source("2001:db8:1:2::1") == users.login_source("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert users.login_source("2001:db8:1:3::1") != users.login_source("2001:db8:1:2::1")


def test_single_sign_on_matches_enabled_users_by_email(database_url: str) -> None:
    ann = _add("ann", email="ann@example.com")
    with db.session_scope() as session:
        assert users.login_by_email(session, "ANN@example.com ", "oidc").id == ann
        assert users.login_by_email(session, "eve@example.com", "oidc") is None
        assert users.login_by_email(session, "", "oidc") is None
        users.set_disabled(session, SYSTEM, ann, True)
        assert users.login_by_email(session, "ann@example.com", "oidc") is None


def test_the_audit_log_never_holds_a_password(database_url: str) -> None:
    ann = _add("ann")
    _login("ann", PASSWORD)
    for _ in range(users.MAX_FAILED_LOGINS):
        _login("ann", "wrong password!")
    _login(PASSWORD, PASSWORD)  # a password typed into the username field
    with db.session_scope() as session:
        users.reset_password(session, SYSTEM, ann, "a brand new passphrase")
    text = _audit_text()
    assert "login.locked" in text and "user.password_reset" in text
    for secret in (PASSWORD, "wrong password!", "a brand new passphrase"):
        assert secret not in text


def test_audit_events_filter_by_action_actor_and_time(database_url: str) -> None:
    _add("ann")
    _login("ann", PASSWORD)
    _login("nobody", PASSWORD)
    with db.session_scope() as session:
        assert [e.action for e in audit.list_events(session, SYSTEM, actions=["login"])] == ["login"]
        assert {e.action for e in audit.list_events(session, SYSTEM, actor="ann")} == {"login"}
        assert audit.list_events(session, SYSTEM, since=utcnow() + timedelta(seconds=1)) == []
        assert len(audit.list_events(session, SYSTEM, until=utcnow() + timedelta(seconds=1))) == 3
        assert audit.known_actions(session, SYSTEM) == ["login", "login.failed", "user.created"]


# ---------------------------------------------------------------- CLI


def test_cli_user_commands(sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("DASHBOARD_PASSWORD", PASSWORD)
    assert cli(["client", "add", "Alpha"]) == 0
    assert cli(["user", "add", "carl", "--role", "client", "--email", "carl@example.com"]) == 0
    assert cli(["user", "assign", "carl", "--client", "alpha"]) == 0
    assert cli(["user", "add", "ann", "--role", "analyst"]) == 0
    assert cli(["user", "assign", "ann", "--client", "Alpha"]) == 2  # analysts see every client already
    capsys.readouterr()
    assert cli(["user", "list", "--json"]) == 0
    rows = {row["username"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["carl"]["clients"] == ["Alpha"] and rows["carl"]["email"] == "carl@example.com"
    assert rows["ann"]["role"] == "analyst" and not rows["ann"]["disabled"]
    assert _login("carl", PASSWORD) is not None

    monkeypatch.setenv("DASHBOARD_PASSWORD", "another long password")
    assert cli(["user", "reset-password", "carl"]) == 0
    assert _login("carl", "another long password") is not None
    assert cli(["user", "disable", "carl"]) == 0
    assert _login("carl", "another long password") is None
    assert cli(["user", "enable", "carl"]) == 0
    assert cli(["user", "list"]) == 0
    out = capsys.readouterr()
    assert "carl  client  active  clients: Alpha" in out.out
    assert PASSWORD not in out.out + out.err and "another long password" not in out.out + out.err


def test_cli_refuses_bad_passwords_and_missing_users(sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture) -> None:
    monkeypatch.delenv("DASHBOARD_PASSWORD", raising=False)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert cli(["user", "add", "ann", "--role", "analyst"]) == 2
    assert "DASHBOARD_PASSWORD" in capsys.readouterr().err
    monkeypatch.setenv("DASHBOARD_PASSWORD", "short")
    assert cli(["user", "add", "ann", "--role", "analyst"]) == 2
    assert "at least 12" in capsys.readouterr().err
    assert cli(["user", "disable", "nobody"]) == 2
    assert "No user named 'nobody'" in capsys.readouterr().err
    with db.session_scope() as session:
        assert session.scalars(select(User)).all() == []
