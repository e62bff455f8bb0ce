"""AppTest of the login gate, sessions, the admin users/audit pages, and every page for every role.

AppTests log in with a User row in the database and its id in
``st.session_state["auth_user_id"]`` before ``at.run()``: the gate gives it a session row like
any login. A browser's cookie is played by patching ``auth._cookie`` (AppTest's client sends
none); the cookie's HTTP side is tested against a real server in tests/test_sessions.py.
"""

from __future__ import annotations

import pickle
import re
import time
from datetime import timedelta
from inspect import Parameter, signature

import pytest
from sqlalchemy import select, update
from streamlit.testing.v1 import AppTest

from lib import audit, db, queries, sessions, users
from lib.access import SYSTEM, Role, Viewer
from lib.clients import create_client, list_clients
from lib.models import (
    AuditEvent,
    AuthSession,
    BalanceSnapshot,
    Candle,
    Connector,
    OpeningBalance,
    Order,
    Position,
    Ticker,
    Trade,
    Transfer,
    utcnow,
)
from lib.settings import PROJECT_ROOT, get_settings
from lib.ui import auth, server, shell

APP = str(PROJECT_ROOT / "app.py")
UTC_MINUTE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d UTC$")
UTC_SECOND = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$")
PASSWORD = "correct horse battery"  # a test fixture, not a credential
DENIED = "You do not have access to this page."
EXISTING_PAGES = [p for p in shell.PAGES if (PROJECT_ROOT / p[1]).is_file()]
PAGE_ROLE_CASES = [
    pytest.param(path, role, role in roles, id=f"{path}-{role.value}")
    for _section, path, _title, _icon, roles in shell.PAGES
    for role in Role
]


@pytest.fixture(autouse=True)
def _only_existing_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages still being written by others would stop st.navigation; their tests skip instead."""
    monkeypatch.setattr(shell, "PAGES", EXISTING_PAGES)


def add_user(username: str, role: Role, password: str | None = PASSWORD, client_ids: tuple[int, ...] = ()) -> int:
    with db.session_scope() as session:
        email = None if password else f"{username}@x.io"  # single sign-on only users need an email
        user_id = users.create_user(session, SYSTEM, username, role, password, email).id
        if client_ids:
            users.set_clients(session, SYSTEM, user_id, client_ids)
    return user_id


def app(user_id: int | None = None, script: str = APP) -> AppTest:
    at = AppTest.from_file(script, default_timeout=60)
    if user_id is not None:
        at.session_state["auth_user_id"] = user_id
    return at


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("error", "success", "warning", "info", "caption", "markdown", "title", "header",
                                  "subheader") for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def screen(at: AppTest) -> str | None:
    """Which gate screen is drawn (under the product name), or None behind the gate."""
    if [t.value for t in at.title] != [":material/monitoring: Exchange dashboard"]:
        return None
    return next((h.value for h in at.subheader), None)


def state_dump(at: AppTest) -> str:
    """Everything the server-side session state holds, widget values included."""
    state = at._session_state._state  # noqa: SLF001 - the point is to look behind the public view
    return repr(state._old_state) + repr(state._new_session_state) + repr(state._new_widget_state.states)  # noqa: SLF001


def log_in(at: AppTest, username: str, password: str) -> AppTest:
    at.text_input(key=_key(at, "auth_login_username_")).input(username)
    at.text_input(key=_key(at, "auth_login_password_")).input(password)
    at.button[0].click()
    return at.run()


def _key(at: AppTest, prefix: str) -> str:
    return next(w.key for w in at.text_input if (w.key or "").startswith(prefix))


def audit_actions() -> list[str]:
    with db.session_scope() as session:
        return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


# ---------------------------------------------------------------- set-up and login


def test_first_run_creates_the_admin_and_keeps_no_password(database_url: str) -> None:
    at = app().run()
    assert screen(at) == "Create the first admin"
    assert not at.sidebar.selectbox  # nothing behind the gate was drawn
    fields = {w.label: w for w in at.text_input}
    fields["Username"].input("boss")
    fields["Email (optional, for single sign-on)"].input("boss@example.com")
    fields["Password"].input("too short")
    fields["Repeat the password"].input("too short")
    at.button[0].click()
    at.run()
    assert "at least 12 characters" in texts(at)
    fields = {w.label: w for w in at.text_input}  # a fresh form: what was typed stays, the passwords do not
    assert {label: w.value for label, w in fields.items()} == {
        "Username": "boss", "Email (optional, for single sign-on)": "boss@example.com", "Password": "",
        "Repeat the password": ""}
    fields["Password"].input(PASSWORD)
    fields["Repeat the password"].input(PASSWORD)
    at.button[0].click()
    at.run()
    assert not at.exception
    assert "Create the first admin" not in texts(at)
    assert "Signed in as **boss** (admin)" in texts(at)
    assert PASSWORD not in state_dump(at) and "too short" not in state_dump(at)
    with db.session_scope() as session:  # the automatic login counts as a login
        assert users.find_user(session, "boss").last_login_at is not None
        login = session.scalars(select(AuditEvent).where(AuditEvent.action == "login")).one()
        assert (login.actor, login.detail) == ("boss", "first admin set-up from localhost")
    assert set(at.session_state.to_dict()) <= {"auth_user_id", "auth_session_id", "auth_form_generation",
                                               "client", "account", "auth_logout"} | {
        k for k in at.session_state.to_dict() if k.startswith("FormSubmitter:")}


def test_login_wrong_password_then_right(database_url: str) -> None:
    add_user("boss", Role.ADMIN)
    at = app().run()
    assert screen(at) == "Log in"
    log_in(at, "boss", "wrong password!")
    assert users.LOGIN_FAILED_MESSAGE in texts(at)
    assert "wrong password!" not in state_dump(at)
    assert at.text_input(key=_key(at, "auth_login_username_")).value == "boss"  # no retyping the name
    log_in(at, "boss", PASSWORD)
    assert not at.exception
    assert "Signed in as **boss** (admin)" in texts(at)
    assert PASSWORD not in state_dump(at)
    assert audit_actions()[-2:] == ["login.failed", "login"]


def test_every_failure_reads_the_same(database_url: str) -> None:
    add_user("boss", Role.ADMIN)
    add_user("locked", Role.ANALYST)
    add_user("gone", Role.ANALYST)
    with db.session_scope() as session:
        users.set_disabled(session, SYSTEM, users.find_user(session, "gone").id, True)
        for _ in range(users.MAX_FAILED_LOGINS):  # from this machine, where the AppTest logs in from
            users.authenticate(session, "locked", "wrong password!", source=users.LOCAL_SOURCE)
    messages = set()
    for username, password in (("nobody", PASSWORD), ("boss", "wrong password!"), ("locked", PASSWORD),
                               ("gone", PASSWORD)):
        at = log_in(app().run(), username, password)
        messages.add(tuple(e.value for e in at.error))
    assert messages == {(users.LOGIN_FAILED_MESSAGE,)}


def test_lockout_is_shown_as_a_failure_and_survives_a_new_session(database_url: str) -> None:
    add_user("ann", Role.ANALYST)
    at = app().run()
    for _ in range(users.MAX_FAILED_LOGINS):
        log_in(at, "ann", "wrong password!")
    at = log_in(app().run(), "ann", PASSWORD)  # a new browser session, right password
    assert users.LOGIN_FAILED_MESSAGE in texts(at)
    assert "login.locked" in audit_actions()


def _session_row(session_id: int) -> AuthSession:
    with db.session_scope() as session:
        return session.get(AuthSession, session_id)


def _shift_session(session_id: int, **ago: timedelta) -> None:
    """Move a session's times into the past (``last_seen_at=``, ``expires_at=``): no waiting in tests."""
    now = utcnow()
    with db.session_scope() as session:
        session.execute(update(AuthSession).where(AuthSession.id == session_id)
                        .values({column: now - delta for column, delta in ago.items()}))


def test_idle_session_ends(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSION_IDLE_MINUTES", "5")
    get_settings.cache_clear()
    at = app(add_user("ann", Role.ANALYST)).run()
    session_id = at.session_state["auth_session_id"]
    _shift_session(session_id, last_seen_at=timedelta(minutes=4))
    at.run()
    assert "Signed in as **ann**" in texts(at)
    assert utcnow() - _session_row(session_id).last_seen_at < timedelta(minutes=1)  # the click counted
    _shift_session(session_id, last_seen_at=timedelta(minutes=6))
    at.run()
    assert screen(at) == "Log in"
    assert "after 5 minutes without activity" in texts(at)
    assert "auth_user_id" not in at.session_state
    assert audit_actions()[-1] == "logout"
    assert _session_row(session_id).end_reason == "idle timeout"


def test_a_session_ends_at_its_maximum_age_however_active(database_url: str) -> None:
    at = app(add_user("ann", Role.ANALYST)).run()
    session_id = at.session_state["auth_session_id"]
    _shift_session(session_id, expires_at=timedelta(seconds=1))
    at.run()
    assert screen(at) == "Log in"
    assert "reached its maximum length of 12 hours" in texts(at)
    assert _session_row(session_id).end_reason == "max age"


def _browser_cookie(monkeypatch: pytest.MonkeyPatch, user_id: int) -> int:
    """A browser holding a session cookie (as /_auth/session sets it): its session id."""
    with db.session_scope() as session:
        row, code = sessions.start(session, user_id, "password", "localhost", binding="this-browser")
        token, _ = sessions.claim(session, code, "this-browser")
        session_id = row.id
    cookies = {sessions.COOKIE_NAME: sessions.sign(token)}
    monkeypatch.setattr(auth, "_cookie", cookies.get)
    return session_id


def test_a_reload_or_a_new_tab_resumes_the_session_without_a_new_login(database_url: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    ann = add_user("ann", Role.ANALYST)
    session_id = _browser_cookie(monkeypatch, ann)
    for _tab in range(3):  # every page load is a new Streamlit session, with the browser's cookie
        at = app().run()
        assert "Signed in as **ann** (analyst)" in texts(at)
        assert at.session_state["auth_session_id"] == session_id
    assert "login" not in audit_actions()
    monkeypatch.setattr(auth, "_cookie", {sessions.COOKIE_NAME: f"{'x' * 43}.forged"}.get)
    assert screen(app().run()) == "Log in"


def test_logging_out_in_one_tab_ends_every_tab_of_the_browser(database_url: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    session_id = _browser_cookie(monkeypatch, add_user("ann", Role.ANALYST))
    first, second = app().run(), app().run()
    first.sidebar.button(key="auth_logout").click()
    first.run()
    assert screen(first) == "Log in"
    second.run()  # the other tab's next click
    assert screen(second) == "Log in" and "You have been logged out." in texts(second)
    assert screen(app().run()) == "Log in"  # a reload: the cookie names an ended session
    assert _session_row(session_id).end_reason == "logout"
    assert audit_actions().count("logout") == 1


@pytest.mark.parametrize(("change", "notice"), [
    (lambda s, uid: users.reset_password(s, SYSTEM, uid, "a brand new passphrase"), "Your password was changed."),
    (lambda s, uid: users.set_disabled(s, SYSTEM, uid, True), "Your account is not active."),
    (lambda s, uid: users.set_role(s, SYSTEM, uid, Role.CLIENT), "Your role was changed."),
], ids=["password reset", "disabled", "role changed"])
def test_admin_changes_end_the_users_sessions(database_url: str, monkeypatch: pytest.MonkeyPatch, change,  # noqa: ANN001
                                              notice: str) -> None:
    ann = add_user("ann", Role.ANALYST)
    _browser_cookie(monkeypatch, ann)
    tab = app().run()
    other_browser = app(ann).run()
    with db.session_scope() as session:
        change(session, ann)
    for at in (tab, other_browser):
        at.run()
        assert screen(at) == "Log in" and notice in texts(at)
    assert screen(app().run()) == "Log in"  # a reload does not bring the session back


def test_clients_changes_keep_the_session(database_url: str) -> None:
    with db.session_scope() as session:
        alpha = create_client(session, SYSTEM, "Alpha").id
    carl = add_user("carl", Role.CLIENT)
    at = app(carl).run()
    with db.session_scope() as session:
        users.set_clients(session, SYSTEM, carl, [alpha])
    at.run()
    assert "Signed in as **carl** (client)" in texts(at)
    assert at.sidebar.selectbox(key="client").options == ["Alpha"]  # one client: nothing to pick, no "All"
    with db.session_scope() as session:
        beta = create_client(session, SYSTEM, "Beta").id
        users.set_clients(session, SYSTEM, carl, [alpha, beta])
    at.run()
    assert at.sidebar.selectbox(key="client").options == ["All clients", "Alpha", "Beta"]


def test_a_login_under_serve_sends_the_browser_for_its_cookie(database_url: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The script's half of the handoff: a code bound to this browser, the page to come back to."""
    ann = add_user("ann", Role.ANALYST)
    monkeypatch.setattr(server, "_serving", True)
    monkeypatch.setattr(auth, "_cookie", {sessions.BINDING_COOKIE: "this-browser"}.get)
    sent: list[str] = []
    monkeypatch.setattr(auth, "_send_browser_to", sent.append)
    at = log_in(app().run(), "ann", PASSWORD)
    assert screen(at) == "Log in"  # the run stops there: a rerun would drop the message that sends the browser
    [url] = sent
    assert at.session_state["auth_user_id"] == ann  # the tab itself is in, should the browser stay
    match = re.fullmatch(r"/_auth/session\?code=([\w-]+)&next=/", url)
    assert match, url
    with db.session_scope() as session:
        assert sessions.claim(session, match.group(1), "another-browser") is None
        token, row = sessions.claim(session, match.group(1), "this-browser")
        assert row.id == at.session_state["auth_session_id"] and sessions.by_token(session, token).id == row.id
    assert audit_actions().count("login") == 1


# ---------------------------------------------------------------- first admin beyond loopback


def test_setup_beyond_loopback_asks_for_the_console_token(database_url: str, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(server, "listens_beyond_loopback", lambda: True)
    monkeypatch.setattr(server, "_setup_token", None)
    at = app().run()
    printed = re.search(r"First-admin set-up token: (\S+)", capsys.readouterr().err)
    assert printed, "the token must be printed on the console"

    def submit(token: str) -> None:
        fields = {w.label: w for w in at.text_input}
        fields["Set-up token (from the server's console)"].input(token)
        fields["Username"].input("boss")
        fields["Password"].input(PASSWORD)
        fields["Repeat the password"].input(PASSWORD)
        at.button[0].click()
        at.run()

    submit("a guess")
    assert "The set-up token is wrong." in texts(at) and screen(at) == "Create the first admin"
    with db.session_scope() as session:
        assert not users.has_users(session)
    submit(printed.group(1))
    assert "Signed in as **boss** (admin)" in texts(at)
    assert printed.group(1) not in state_dump(at)
    assert not server.setup_token_matches(printed.group(1))  # used up


def test_setup_on_loopback_needs_no_token() -> None:
    assert not server.listens_beyond_loopback()  # .streamlit/config.toml: server.address = 127.0.0.1
    assert [server.beyond_loopback(a) for a in ("127.0.0.1", "::1", "[::1]", "localhost", "127.0.0.2")] == [False] * 5
    assert [server.beyond_loopback(a) for a in (None, "", "0.0.0.0", "::", "10.0.0.5", "dashboard.example")] == [
        True] * 6


def test_the_development_key_warning_is_for_admins_only(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENCRYPTION_KEYS")
    get_settings.cache_clear()
    with db.session_scope() as session:
        alpha = create_client(session, SYSTEM, "Alpha").id
    shown = {}
    for role in Role:
        at = app(add_user(f"u-{role.value}", role, client_ids=(alpha,) if role is Role.CLIENT else ())).run()
        shown[role] = any("development encryption key" in w.value for w in at.warning)
    assert shown == {Role.ADMIN: True, Role.ANALYST: False, Role.CLIENT: False}


def test_logout_and_disabled_user_are_out_at_once(database_url: str) -> None:
    ann = add_user("ann", Role.ANALYST)
    at = app(ann).run()
    at.sidebar.button(key="auth_logout").click()
    at.run()
    assert screen(at) == "Log in" and "You have been logged out." in texts(at)
    assert "auth_user_id" not in at.session_state
    at = app(ann).run()
    assert "Signed in as **ann**" in texts(at)
    with db.session_scope() as session:
        users.set_disabled(session, SYSTEM, ann, True)
    at.run()
    assert screen(at) == "Log in" and "not active" in texts(at)


def test_single_sign_on_is_offered_only_when_configured_and_matches_by_email(database_url: str) -> None:
    add_user("boss", Role.ADMIN)
    at = app().run()
    assert not [b for b in at.button if b.label.startswith("Log in with")]
    sso = {"redirect_uri": "http://localhost/oauth2callback", "cookie_secret": "generated-at-test-time",
           "client_id": "dashboard", "client_secret": "test", "server_metadata_url": "http://localhost/.well-known"}
    at = app()
    at.secrets["auth"] = sso
    at.run()
    assert [b.label for b in at.button if b.label.startswith("Log in with")] == ["Log in with single sign-on"]
    add_user("ann", Role.ANALYST, password=None)  # email ann@x.io
    at = app()
    at.secrets["auth"] = sso
    at.user = {"is_logged_in": True, "email": "ann@x.io", "email_verified": True}
    at.run()
    assert "Signed in as **ann** (analyst)" in texts(at)
    for unverified in ({"email_verified": False}, {}):  # a provider that does not vouch for the email
        at = app()
        at.secrets["auth"] = sso
        at.user = {"is_logged_in": True, "email": "ann@x.io", **unverified}
        at.run()
        assert "did not confirm that your email address is verified" in texts(at), unverified
        assert "Signed in as" not in texts(at)
    at = app()
    at.secrets["auth"] = sso
    at.user = {"is_logged_in": True, "email": "eve@x.io", "email_verified": True}
    at.run()
    assert "not linked to an active dashboard user" in texts(at)
    assert [b.label for b in at.button if "single sign-on" in b.label] == ["Log out of single sign-on"]


def test_the_gate_answers_under_every_page_url_without_a_menu(sqlite_url: str) -> None:
    """Logged out, every page URL runs the login (no "page not found"), and no page link shows.

    That the URL then opens its page after login is checked in a real browser (tests/e2e):
    AppTest does not route by URL.
    """
    add_user("someone", Role.ADMIN)
    at = app()
    at.run()
    assert screen(at) == "Log in"
    assert not at.exception
    assert "Clients & keys" not in texts(at)


# ---------------------------------------------------------------- every page, every role


@pytest.mark.parametrize(("path", "role", "allowed"), PAGE_ROLE_CASES)
def test_page_for_role(sqlite_url: str, path: str, role: Role, allowed: bool) -> None:
    if not (PROJECT_ROOT / path).is_file():
        pytest.skip(f"{path} does not exist yet")
    with db.session_scope() as session:
        client_id = create_client(session, SYSTEM, "Alpha").id
    user_id = add_user(f"u-{role.value}", role, client_ids=(client_id,) if role is Role.CLIENT else ())
    at = app(user_id).run()
    assert not at.exception
    if allowed:
        at.switch_page(path).run()
        assert not at.exception, at.exception
        assert DENIED not in texts(at) and at.title
    else:
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            at.switch_page(path)  # not in this role's navigation
        # The page's own check, reached without the navigation (as a legacy pages/ URL would).
        direct = app(user_id, str(PROJECT_ROOT / path)).run()
        assert not direct.exception
        assert [e.value for e in direct.error] == [DENIED]
        assert not direct.dataframe and not direct.title and not direct.button


@pytest.mark.parametrize("path", [p[1] for p in shell.PAGES])
def test_page_without_login_shows_nothing(sqlite_url: str, path: str) -> None:
    if not (PROJECT_ROOT / path).is_file():
        pytest.skip(f"{path} does not exist yet")
    add_user("boss", Role.ADMIN)
    at = app(None, str(PROJECT_ROOT / path)).run()
    assert not at.exception
    assert [w.value for w in at.warning] == ["Please log in to see this page."]
    assert not at.title and not at.dataframe and not at.error


def test_navigation_per_role(sqlite_url: str) -> None:
    for role in Role:
        at = app(add_user(f"nav-{role.value}", role)).run()
        for _section, path, _title, _icon, roles in EXISTING_PAGES:
            if role in roles:
                at.switch_page(path)
            else:
                with pytest.raises(ValueError):
                    at.switch_page(path)


# ---------------------------------------------------------------- the admin pages


def test_users_page_adds_edits_and_resets(sqlite_url: str) -> None:
    with db.session_scope() as session:
        alpha = create_client(session, SYSTEM, "Alpha").id
    at = app(add_user("boss", Role.ADMIN), str(PROJECT_ROOT / "pages/admin/users.py")).run()
    form = {w.label: w for w in at.text_input if w.form_id.startswith("add_")}
    form["Username"].input("carl")
    form["Password"].input(PASSWORD)
    form["Repeat the password"].input(PASSWORD)
    next(s for s in at.selectbox if s.label == "Role" and s.form_id.startswith("add_")).select("client")
    next(m for m in at.multiselect if m.form_id.startswith("add_")).select(alpha)
    next(b for b in at.button if b.label == "Add user").click()
    at.run()
    assert "User 'carl' added." in texts(at), texts(at)
    assert PASSWORD not in state_dump(at)
    table = at.dataframe[0].value.set_index("Username")
    assert table.loc["carl", "Last login"] == "never" and table.loc["boss", "Email"] == "—"
    assert all(UTC_MINUTE.match(text) for text in table["Created"])
    assert not re.search(r"\bNone\b|\bnan\b|NaT|\+00:00", table.to_csv())
    with db.session_scope() as session:
        carl = users.find_user(session, "carl")
        assert users.viewer_for(session, carl.id).client_ids == {alpha}

    at.selectbox(key="users_pw_pick").select(carl.id).run()
    form = {w.label: w for w in at.text_input if w.form_id.startswith("password_")}
    form["New password"].input("a brand new passphrase")
    form["Repeat the new password"].input("a brand new passphrase")
    next(b for b in at.button if b.label == "Set password").click()
    at.run()
    assert "New password set for 'carl'" in texts(at)
    assert "a brand new passphrase" not in state_dump(at)

    at.selectbox(key="users_edit_pick").select(carl.id).run()
    next(t for t in at.toggle if t.label == "Active").set_value(False)
    next(b for b in at.button if b.label == "Save changes").click()
    at.run()
    assert "User 'carl' saved." in texts(at)
    with db.session_scope() as session:
        assert users.viewer_for(session, carl.id) is None
    assert {"user.created", "user.clients_changed", "user.password_reset", "user.disabled"} <= set(audit_actions())


def test_users_page_shows_errors_in_plain_words(sqlite_url: str) -> None:
    at = app(add_user("boss", Role.ADMIN), str(PROJECT_ROOT / "pages/admin/users.py")).run()
    form = {w.label: w for w in at.text_input if w.form_id.startswith("add_")}
    form["Username"].input("boss")
    form["Password"].input(PASSWORD)
    form["Repeat the password"].input(PASSWORD)
    next(b for b in at.button if b.label == "Add user").click()
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == ["A user named 'boss' already exists."]


def test_audit_page_filters_and_exports(sqlite_url: str) -> None:
    boss = add_user("boss", Role.ADMIN)
    with db.session_scope() as session:
        users.authenticate(session, "boss", "wrong password!")
        audit.record(session, "boss", "**future**.code")  # a code without words: shown as it is, as text
    at = app(boss, str(PROJECT_ROOT / "pages/admin/audit.py")).run()
    assert not at.exception
    frame = at.dataframe[0].value
    assert set(frame["Action"]) == {"User added", "Login failed", "**future**.code"}  # words, not codes
    assert all(UTC_SECOND.match(text) for text in frame["When"])  # events of one minute keep their order
    assert not re.search(r"\bNone\b|\bnan\b|NaT", frame.to_csv()) and "—" in set(frame["Target"])
    assert at.multiselect[0].options == ["**future**.code", "Login failed", "User added"]
    at.multiselect[0].select("login.failed").run()  # shows words, filters by code
    frame = at.dataframe[0].value
    assert list(frame["Action"]) == ["Login failed"] and list(frame["Who"]) == ["boss"]
    assert "wrong password!" not in frame.to_csv()
    assert at.get("download_button")
    next(w for w in at.text_input if w.label == "From (UTC)").input("2099-01-01")  # typed days apply
    next(w for w in at.text_input if w.label == "To (UTC)").input("2099-01-31").run()
    assert at.dataframe[0].value.empty and "0 event(s), newest first." in [c.value for c in at.caption]


# ---------------------------------------------------------------- client isolation through the loaders

MINE, THEIRS = "AAACOIN", "BBBCOIN"


def _seed_two_clients() -> tuple[int, int]:
    """Two clients with one connector each and a full set of synced rows named after them."""
    now, ms = utcnow(), int(time.time() * 1000)
    ids = []
    with db.session_scope() as session:
        for name, coin in (("Mine", MINE), ("Theirs", THEIRS)):
            client = create_client(session, SYSTEM, name)
            connector = Connector(client_id=client.id, exchange_id="binance", label=coin.lower(),
                                  credentials_ciphertext=b"not used by reads", key_hint="0000", status="ok",
                                  last_success_at=now, first_synced_at=now)
            session.add(connector)
            session.flush()
            symbol = f"{coin}/USDT"
            session.add_all([
                BalanceSnapshot(connector_id=connector.id, taken_at=now, asset=coin, free=5, used=0, total=5),
                OpeningBalance(connector_id=connector.id, asset=coin, amount=1, usd_price=2, timestamp=ms - 10_000),
                Trade(connector_id=connector.id, trade_id=f"{coin}-1", timestamp=ms - 5000, symbol=symbol, base=coin,
                      quote="USDT", side="buy", amount=4, price=2, cost=8, fee_cost=0.01, fee_currency="USDT"),
                Order(connector_id=connector.id, order_id=f"{coin}-o", timestamp=ms, symbol=symbol, side="sell",
                      type="limit", price=3, amount=1, remaining=1, status="open"),
                Position(connector_id=connector.id, symbol=f"{coin}/USDT:USDT", side="long", contracts=1),
                Transfer(connector_id=connector.id, transfer_id=f"{coin}-t", type="deposit", timestamp=ms - 20_000,
                         currency=coin, amount=1, status="ok"),
            ])
            session.merge(Ticker(exchange_id="binance", symbol=symbol, last=2.5, bid=2.4, ask=2.6, timestamp=ms))
            session.merge(Candle(exchange_id="binance", symbol=symbol, timeframe="1d", timestamp=ms - ms % 86_400_000,
                                 open=2, high=3, low=1, close=2.5, volume=10))
            ids.append(client.id)
    return ids[0], ids[1]


def _calls(module: object, first: tuple[object, ...]) -> list[tuple[str, object]]:
    """Every public function whose first parameters are (session, viewer) or (viewer), with defaults after."""
    found = []
    for name in dir(module):
        function = getattr(module, name)
        if name.startswith("_") or not callable(function) or getattr(function, "__module__", "") != module.__name__:
            continue
        params = list(signature(function).parameters.values())
        head = [p.name for p in params[: len(first)]]
        if head != (["session", "viewer"] if len(first) == 2 else ["viewer"]):
            continue
        if all(p.default is not Parameter.empty or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
               for p in params[len(first):]):
            found.append((name, function))
    return found


def _leaks(result: object) -> bytes:
    if callable(result):  # a deferred download (e.g. the fills CSV)
        result = result()
    return pickle.dumps(result)


#: Public market data (prices, candles) is per exchange, not per client: checked on its own below.
MARKET_DATA = {"tickers", "candles"}


def _leaked(client_viewer: Viewer, theirs: int, calls: list[tuple[str, object]]) -> tuple[list[str], list[str]]:
    """(calls whose result holds the other client's marker, calls where an admin's result holds it)."""
    leaked, detectable = [], []
    for name, function in calls:
        needs_session = list(signature(function).parameters)[0] == "session"

        def call(viewer: Viewer, function=function, needs_session=needs_session, **kwargs):  # noqa: ANN001, ANN202
            if needs_session:
                with db.session_scope() as session:
                    return function(session, viewer, **kwargs)
            return function(viewer, **kwargs)

        if THEIRS.encode() in _leaks(call(SYSTEM)):
            detectable.append(name)  # the marker shows in this result, so its absence below means something
        takes_client = "client_id" in signature(function).parameters
        for kwargs in ({}, {"client_id": theirs}) if takes_client else ({},):
            if THEIRS.encode() in _leaks(call(client_viewer, **kwargs)):
                leaked.append(f"{name}({kwargs})")
    return leaked, detectable


@pytest.fixture
def client_viewer_and_theirs(database_url: str) -> tuple[Viewer, int]:
    mine, theirs = _seed_two_clients()
    carl = add_user("carl", Role.CLIENT, client_ids=(mine,))
    with db.session_scope() as session:
        viewer = users.viewer_for(session, carl)
        assert [c.name for c in list_clients(session, viewer)] == ["Mine"]
    return viewer, theirs


def test_a_client_user_cannot_reach_another_clients_rows(client_viewer_and_theirs: tuple[Viewer, int]) -> None:
    """Every loader and every scoped query, with no client and with the other client's id."""
    from lib.ui import loaders

    client_viewer, theirs = client_viewer_and_theirs
    calls = [(n, f) for n, f in _calls(loaders, (object(),)) + _calls(queries, (object(), object()))
             if n not in MARKET_DATA]
    assert {"balances", "fills", "pnl"} <= {name for name, _ in calls}
    leaked, detectable = _leaked(client_viewer, theirs, calls)
    assert leaked == []
    assert {"balances", "fills", "pnl"} <= set(detectable), detectable


def test_market_data_does_not_name_another_clients_symbols(client_viewer_and_theirs: tuple[Viewer, int]) -> None:
    client_viewer, theirs = client_viewer_and_theirs
    calls = [(n, f) for n, f in _calls(queries, (object(), object())) if n in MARKET_DATA]
    leaked, _ = _leaked(client_viewer, theirs, calls)
    assert leaked == []


def test_a_client_user_cannot_pick_another_client_in_the_sidebar(sqlite_url: str) -> None:
    mine, theirs = _seed_two_clients()
    carl = add_user("carl", Role.CLIENT, client_ids=(mine,))
    at = app(carl)
    at.session_state["client"] = theirs  # as if a crafted request had set it
    at.run()
    assert not at.exception
    assert at.sidebar.selectbox(key="client").options == ["Mine"]
    for path in ("pages/portfolio/balances.py", "pages/portfolio/trades.py", "pages/portfolio/pnl.py"):
        if (PROJECT_ROOT / path).is_file():
            at.switch_page(path).run()
            assert not at.exception
            shown = "".join(d.value.to_csv() for d in at.dataframe) + texts(at)
            assert THEIRS not in shown, path



def test_an_unusable_setting_is_a_message_not_a_traceback(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNC_INTERVAL_SECONDS", "every minute")
    from lib.settings import get_settings

    get_settings.cache_clear()
    at = app().run()
    get_settings.cache_clear()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "Configuration: SYNC_INTERVAL_SECONDS must be a whole number from 1 to 86400 (got 'every minute'). "
        "Fix it in the environment, .env or .streamlit/secrets.toml."]
