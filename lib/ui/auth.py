"""The login gate: first-admin set-up, password or single sign-on login, sessions, logout.

A login is a row in ``auth_sessions`` (lib.sessions). Session state holds the user's id
(``auth_user_id``) and that row's id (``auth_session_id``); before login also the typed
username and email (never a password). Under ``serve.py`` a login also sends the browser
once through ``/_auth/session`` (lib/ui/server.py), which sets the session cookie, so a
reload or a new tab opens logged in, with no new login audit row. Every run checks the row
(idle timeout, maximum age, ended by a logout in another tab or by an admin) and rebuilds
the viewer from the database, so disabling a user or changing their clients takes effect
at their next click. The gate answers under every page's URL, so a deep link leads to its
page after logging in. Submitted form values are deleted from session state as soon as
they are read (``forget_widgets``), and the form is replaced by a fresh one, so no typed
password stays in session state.

Cookies and the client address are read with ``st.context`` (what the browser sent when it
opened the page: https://docs.streamlit.io/develop/api-reference/caching-and-state/st.context).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NoReturn

import streamlit as st
from sqlalchemy.orm import Session
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

from lib import sessions, users
from lib.access import Viewer
from lib.db import session_scope
from lib.settings import get_settings
from lib.ui import server
from lib.ui.format import literal
from lib.validation import ValidationError

log = logging.getLogger(__name__)

SESSION_KEY = "auth_user_id"
SESSION_ID_KEY = "auth_session_id"
_FORM_KEY = "auth_form_generation"  # bumped on each submit: a fresh form, no stale password
_ERROR_KEY = "auth_error"
_NOTICE_KEY = "auth_notice"
_SSO_REFUSED_KEY = "auth_sso_refused"
_KEPT_KEY = "auth_kept_fields"  # username (and email) typed before a failed submit; never a password
_APP_NAME = "Exchange dashboard"
_DB_DOWN = "Login is unavailable: the database could not be reached. Try again shortly."


def require_viewer() -> Viewer:
    """Who is using the app; shows the set-up or login screen and stops when nobody is."""
    try:
        with session_scope() as session:
            first_run = not users.has_users(session)
    except Exception:  # noqa: BLE001 - a plain message, never a traceback
        log.exception("user table unavailable")
        st.error(_DB_DOWN)
        st.stop()
    if first_run:
        _show_gate(_setup_screen)
    viewer = _session_viewer(touch=True)
    if viewer is None:
        _show_gate(_login_screen)
    return viewer


def _show_gate(screen: Callable[[], None]) -> NoReturn:
    """Run ``screen`` under every page's URL, with no navigation menu, then stop.

    Registering the app's URLs (each running the gate) makes a deep link show the login
    instead of Streamlit's "page not found", and leaves no page link in the sidebar of a
    logged-out browser. The page files themselves are never registered here.
    """
    from lib.ui.shell import PAGES  # shell imports this module

    paths = [Path(path).stem for _section, path, *_rest in PAGES]
    pages = [st.Page(screen, title=_APP_NAME, url_path=path, default=not index) for index, path in enumerate(paths)]
    st.navigation(pages, position="hidden").run()
    st.stop()


def current_viewer() -> Viewer:
    """For pages: the logged-in viewer, or a refusal when a page runs without the gate."""
    viewer = _session_viewer(touch=False)
    if viewer is None:
        st.warning("Please log in to see this page.")
        st.stop()
    return viewer


def logout_button(viewer: Viewer) -> None:
    """The user's name and role with a logout button, for the sidebar."""
    st.caption(f"Signed in as **{literal(viewer.username)}** ({viewer.role.value})")
    if st.button("Log out", icon=":material/logout:", key="auth_logout"):
        _end_session("logout")
        st.rerun()


def forget_widgets(*keys: str) -> None:
    """Drop submitted form values (passwords) from session state once they have been read.

    clear_on_submit only clears the browser's copy; the server keeps the submitted value
    until a run that ends normally, and every run behind the login gate ends in st.stop().
    """
    for key in keys:
        if key in st.session_state:
            del st.session_state[key]


# ---------------------------------------------------------------- session


def _session_viewer(*, touch: bool) -> Viewer | None:
    """The viewer of this browser's live session, resumed from the cookie or single sign-on if need be."""
    session_id = st.session_state.get(SESSION_ID_KEY)
    if session_id is None:
        session_id = _resume()
        if session_id is None:
            return None
    with session_scope() as session:
        status = sessions.check(session, session_id, touch=touch)
        viewer = users.viewer_for(session, status.user_id) if status.ended is None and status.user_id else None
    if status.ended is not None:
        _forget(_ended_notice(status.ended))
        return None
    if viewer is None:
        _end_session("account disabled or removed")
        return None
    return viewer


def _resume() -> int | None:
    """This browser's session when the tab has none yet: a user id some code put in session state
    (AppTest, the page benchmark) gets a row like any login; else the cookie; else single sign-on."""
    user_id = st.session_state.get(SESSION_KEY)
    if user_id is not None:
        with session_scope() as session:
            opened = _open(session, user_id, "session state")
        return _adopt(opened)
    return _from_cookie() or _single_sign_on()


def _from_cookie() -> int | None:
    """The session named by a validly signed cookie; no audit row (the login wrote one)."""
    token = sessions.unsign(_cookie(sessions.COOKIE_NAME))
    if token is None:
        return None
    with session_scope() as session:
        row = sessions.by_token(session, token)
        found = (row.id, row.user_id, row.end_reason if row.ended_at else None) if row else None
    if found is None:
        return None
    session_id, user_id, ended = found
    if ended is not None:
        if ended != "logout":  # after a logout the login screen says nothing more
            st.session_state[_NOTICE_KEY] = _ended_notice(ended)
        return None
    st.session_state[SESSION_KEY], st.session_state[SESSION_ID_KEY] = user_id, session_id
    return session_id


def _open(session: Session, user_id: int, method: str) -> tuple[int, int, str | None]:
    """A new session row in the login's transaction: (user id, session id, handoff code).

    Under serve.py the browser gets a handoff code to fetch its cookie with (``_adopt``).
    """
    binding = _cookie(sessions.BINDING_COOKIE) if server.serving() else None
    row, code = sessions.start(session, user_id, method, _source(), binding)
    return user_id, row.id, code


def _adopt(opened: tuple[int, int, str | None]) -> int:
    """Once the login committed: this tab is in, and the browser goes to fetch its cookie."""
    user_id, session_id, code = opened
    st.session_state.pop(_KEPT_KEY, None)
    st.session_state[SESSION_KEY], st.session_state[SESSION_ID_KEY] = user_id, session_id
    if code is not None:
        _send_browser_to(server.handoff_url(code, st.context.url))
    return session_id


def _enter(opened: tuple[int, int, str | None]) -> NoReturn:
    """After a login: rerun behind the gate, where the browser's URL (the gate answered under
    every page's URL) opens the page asked for. Under serve.py the browser is instead on its way
    to fetch its cookie and comes back to that URL: the run stops, as a rerun would drop the
    queued redirect."""
    _adopt(opened)
    if opened[2] is not None:
        st.stop()
    st.rerun()


def _send_browser_to(url: str) -> None:
    """Make the browser load ``url``, the way ``st.login`` does (an ``auth_redirect`` message):
    Streamlit has no public call for it, and only a page load can receive a cookie."""
    context = get_script_run_ctx()
    if context is not None:
        message = ForwardMsg()
        message.auth_redirect.url = url
        context.enqueue(message)


def _source() -> str:
    """The client's address as the lockout counts it; behind a proxy only if uvicorn trusts it
    (FORWARDED_ALLOW_IPS: https://www.uvicorn.org/settings/#http)."""
    address = st.context.ip_address
    return users.login_source(address if isinstance(address, str) else None)  # AppTest's client has none


def _cookie(name: str) -> str | None:
    """A cookie the browser sent when it opened the page (AppTest's client sends none)."""
    value = st.context.cookies.get(name)
    return value if isinstance(value, str) else None


# ---------------------------------------------------------------- leaving


def _ended_notice(reason: str) -> str:
    settings = get_settings()
    return {
        "logout": "You have been logged out.",
        "idle timeout": f"Your session ended after {settings.session_idle_minutes} minutes without activity. "
                        "Please log in again.",
        "max age": f"Your session reached its maximum length of {settings.session_max_hours} hours. "
                   "Please log in again.",
        "password reset": "Your password was changed. Please log in again.",
        "role changed": "Your role was changed. Please log in again.",
        "account disabled": "Your account is not active. Ask an admin.",
        "account disabled or removed": "Your account is not active. Ask an admin.",
    }.get(reason, "Your session has ended. Please log in again.")


def _end_session(reason: str) -> None:
    """End this browser's session row (every tab of it), then forget the tab's state."""
    session_id = st.session_state.get(SESSION_ID_KEY)
    if session_id is not None:
        try:
            with session_scope() as session:
                sessions.end(session, session_id, reason)
        except Exception:  # noqa: BLE001 - logging out must not fail on the database
            log.exception("could not end the session")
    _forget(_ended_notice(reason))


def _forget(notice: str) -> None:
    """Clear this tab's state, keep the notice for the login screen; log out of single sign-on too."""
    st.session_state.clear()
    st.session_state[_NOTICE_KEY] = notice
    if _sso_providers() and _sso_logged_in():
        st.logout()


# ---------------------------------------------------------------- single sign-on


def _sso_providers() -> list[str | None]:
    """Providers configured under ``[auth]`` in secrets.toml (None = the unnamed default)."""
    try:
        section = st.secrets.get("auth")
    except (FileNotFoundError, OSError, ValueError):  # no or unreadable secrets.toml: local accounts only
        return []
    if not isinstance(section, Mapping):
        return []
    named = [name for name, value in section.items() if isinstance(value, Mapping)]
    return ([None] if "client_id" in section else []) + named


def _sso_logged_in() -> bool:
    """st.user.is_logged_in, read without assuming the claim is there."""
    return bool(st.user.to_dict().get("is_logged_in", False))


def _single_sign_on() -> int | None:
    """Match the identity provider's verified email to a user; None when there is no match."""
    if st.session_state.get(_SSO_REFUSED_KEY) or not _sso_providers() or not _sso_logged_in():
        return None
    claims = st.user.to_dict()
    # only a provider's explicit "verified": an unverified or unstated email could be anyone's
    verified = claims.get("email_verified") in (True, "true")
    with session_scope() as session:
        user = users.login_by_email(session, str(claims.get("email") or ""), "oidc", _source()) if verified else None
        opened = _open(session, user.id, "single sign-on (oidc)") if user else None
    if opened is None:
        st.session_state[_SSO_REFUSED_KEY] = True
        st.session_state[_ERROR_KEY] = (
            "Your single sign-on account is not linked to an active dashboard user. "
            "Ask an admin to add your email, or log out of single sign-on." if verified else
            "Your identity provider did not confirm that your email address is verified, so it cannot "
            "sign you in here. Verify it with the provider, or log in with a password."
        )
        return None
    return _adopt(opened)


def _sso_buttons() -> None:
    providers = _sso_providers()
    if not providers:
        return
    st.divider()
    if st.session_state.get(_SSO_REFUSED_KEY) and _sso_logged_in():
        if st.button("Log out of single sign-on", key="auth_sso_logout"):
            st.session_state.clear()
            st.logout()
        return
    for provider in providers:
        label = "single sign-on" if provider is None else provider.replace("_", " ").title()
        if st.button(f"Log in with {label}", key=f"auth_sso_{provider or 'default'}", icon=":material/login:"):
            st.login(provider)


# ---------------------------------------------------------------- screens


def _messages() -> None:
    """Notices and errors are plain sentences that may quote a typed name: shown literally."""
    if notice := st.session_state.pop(_NOTICE_KEY, None):
        st.info(literal(notice))
    if error := st.session_state.pop(_ERROR_KEY, None):
        st.error(literal(error))


def _panel(heading: str, explanation: str):  # noqa: ANN202 - a Streamlit column
    """A narrow centred column with the product name: the wide layout is meant for tables."""
    _, middle, _ = st.columns([2, 5, 2])
    with middle:
        st.title(f":material/monitoring: {_APP_NAME}")
        st.subheader(heading)
        st.caption(explanation)
        _messages()
    return middle


def _kept(field: str) -> str:
    return st.session_state.get(_KEPT_KEY, {}).get(field, "")


def _login_screen() -> None:
    generation = st.session_state.get(_FORM_KEY, 0)
    keys = (f"auth_login_username_{generation}", f"auth_login_password_{generation}")
    with _panel("Log in", "Balances, trades and P&L of your exchange accounts. Log in to continue."):
        with st.form(f"login_{generation}", clear_on_submit=True, enter_to_submit=True):
            username = st.text_input("Username", value=_kept("username"), autocomplete="username", key=keys[0])
            password = st.text_input("Password", type="password", autocomplete="current-password", key=keys[1])
            submitted = st.form_submit_button("Log in", type="primary", width="stretch")
        if submitted:
            forget_widgets(*keys)
            st.session_state[_FORM_KEY] = generation + 1
            st.session_state[_KEPT_KEY] = {"username": username}
            try:
                with session_scope() as session:
                    user = users.authenticate(session, username, password, source=_source())
                    opened = _open(session, user.id, "password") if user else None
            except Exception:  # noqa: BLE001 - a plain message, never a traceback
                log.exception("login failed unexpectedly")
                st.session_state[_ERROR_KEY] = _DB_DOWN
            else:
                if opened is None:
                    st.session_state[_ERROR_KEY] = users.LOGIN_FAILED_MESSAGE
                else:
                    _enter(opened)
            st.rerun()
        _sso_buttons()


def _setup_screen() -> None:
    """The first admin. When the server listens beyond loopback, whoever reaches the port first
    could take the install, so the screen asks for the token printed on the server's console."""
    generation = st.session_state.get(_FORM_KEY, 0)
    keys = tuple(f"auth_setup_{name}_{generation}" for name in ("username", "email", "password", "confirm", "token"))
    needs_token = server.listens_beyond_loopback()
    explanation = "No users exist yet. Create the administrator account: it manages clients, exchange keys and users."
    if needs_token:
        server.setup_token()  # made and printed once per process (serve.py prints it at start)
        explanation += (" This server accepts connections from other machines, so this screen also asks for the "
                        "one-time set-up token printed in the server's console when it started.")
    with _panel("Create the first admin", explanation), st.form(f"setup_{generation}", clear_on_submit=True):
        token = st.text_input("Set-up token (from the server's console)", type="password", autocomplete="off",
                              key=keys[4]) if needs_token else None
        username = st.text_input("Username", value=_kept("username"), autocomplete="username", key=keys[0])
        email = st.text_input("Email (optional, for single sign-on)", value=_kept("email"),
                              autocomplete="email", key=keys[1])
        password = st.text_input("Password", type="password", autocomplete="new-password", key=keys[2],
                                 placeholder=f"at least {users.MIN_PASSWORD_LENGTH} characters")
        confirm = st.text_input("Repeat the password", type="password", autocomplete="new-password", key=keys[3])
        submitted = st.form_submit_button("Create admin and log in", type="primary", width="stretch")
    if submitted:
        forget_widgets(*keys)
        st.session_state[_FORM_KEY] = generation + 1
        st.session_state[_KEPT_KEY] = {"username": username, "email": email}
        if needs_token and not server.setup_token_matches(token):
            st.session_state[_ERROR_KEY] = ("The set-up token is wrong. Copy it from the line "
                                            "\"First-admin set-up token: ...\" in the server's console.")
        elif password != confirm:
            st.session_state[_ERROR_KEY] = "The two passwords differ."
        else:
            try:
                with session_scope() as session:
                    admin = users.create_first_admin(session, username, password, email)
                    users.record_login(session, admin, f"first admin set-up from {_source()}")
                    opened = _open(session, admin.id, "first admin set-up")
            except ValidationError as error:
                st.session_state[_ERROR_KEY] = str(error)
            except Exception:  # noqa: BLE001 - a plain message, never a traceback
                log.exception("first admin could not be created")
                st.session_state[_ERROR_KEY] = _DB_DOWN
            else:
                server.spend_setup_token()
                _enter(opened)
        st.rerun()
