"""The login gate: first-admin set-up, password or single sign-on login, idle timeout, logout.

Session state holds only the logged-in user's id (``auth_user_id``) and the time of the
last activity; before login also the typed username and email (never a password). The gate
answers under every page's URL, so a deep link leads to its page after logging in. The viewer
is rebuilt from the database on every run, so disabling a user or changing their role or
clients takes effect at their next click. Submitted form values are deleted from session
state as soon as they are read (``forget_widgets``), and the form is replaced by a fresh
one, so no typed password stays in session state.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NoReturn

import streamlit as st

from lib import users
from lib.access import Viewer
from lib.db import session_scope
from lib.settings import get_settings
from lib.ui.format import literal
from lib.validation import ValidationError

log = logging.getLogger(__name__)

SESSION_KEY = "auth_user_id"
LAST_SEEN_KEY = "auth_last_seen"  # time.time() of the last run that passed the gate
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
        _end_session("logout", "You have been logged out.")
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
    user_id = st.session_state.get(SESSION_KEY)
    if user_id is None:
        user_id = _single_sign_on()
        if user_id is None:
            return None
    now = time.time()
    idle_minutes = get_settings().session_idle_minutes
    last_seen = st.session_state.get(LAST_SEEN_KEY)
    if last_seen is not None and now - last_seen > idle_minutes * 60:
        _end_session("idle timeout", f"Your session ended after {idle_minutes} minutes without activity. "
                                     "Please log in again.")
        return None
    with session_scope() as session:
        viewer = users.viewer_for(session, user_id)
    if viewer is None:
        _end_session("account disabled or removed", "Your account is not active. Ask an admin.")
        return None
    if touch:
        st.session_state[LAST_SEEN_KEY] = now
    return viewer


def _start_session(user_id: int) -> None:
    st.session_state.pop(_KEPT_KEY, None)
    st.session_state[SESSION_KEY] = user_id
    st.session_state[LAST_SEEN_KEY] = time.time()


# ---------------------------------------------------------------- entering


def _enter(user_id: int) -> None:
    """Start the session and rerun: the browser's URL still names the page asked for (the gate
    answered under every page's URL), so the run behind the gate opens it when the role may."""
    _start_session(user_id)
    st.rerun()


def _end_session(reason: str, notice: str) -> None:
    """Forget everything about this browser session; log out of single sign-on too."""
    user_id = st.session_state.get(SESSION_KEY)
    if user_id is not None:
        try:
            with session_scope() as session:
                users.record_logout(session, user_id, reason)
        except Exception:  # noqa: BLE001 - logging out must not fail on the audit
            log.exception("could not record logout")
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
        user = users.login_by_email(session, str(claims.get("email") or ""), "oidc") if verified else None
        user_id = user.id if user else None
    if user_id is None:
        st.session_state[_SSO_REFUSED_KEY] = True
        st.session_state[_ERROR_KEY] = (
            "Your single sign-on account is not linked to an active dashboard user. "
            "Ask an admin to add your email, or log out of single sign-on." if verified else
            "Your identity provider did not confirm that your email address is verified, so it cannot "
            "sign you in here. Verify it with the provider, or log in with a password."
        )
        return None
    _start_session(user_id)
    return user_id


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
                    user = users.authenticate(session, username, password)
                    user_id = user.id if user else None
            except Exception:  # noqa: BLE001 - a plain message, never a traceback
                log.exception("login failed unexpectedly")
                st.session_state[_ERROR_KEY] = _DB_DOWN
            else:
                if user_id is None:
                    st.session_state[_ERROR_KEY] = users.LOGIN_FAILED_MESSAGE
                else:
                    _enter(user_id)
            st.rerun()
        _sso_buttons()


def _setup_screen() -> None:
    generation = st.session_state.get(_FORM_KEY, 0)
    keys = tuple(f"auth_setup_{name}_{generation}" for name in ("username", "email", "password", "confirm"))
    explanation = "No users exist yet. Create the administrator account: it manages clients, exchange keys and users."
    with _panel("Create the first admin", explanation), st.form(f"setup_{generation}", clear_on_submit=True):
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
        if password != confirm:
            st.session_state[_ERROR_KEY] = "The two passwords differ."
        else:
            try:
                with session_scope() as session:
                    admin = users.create_first_admin(session, username, password, email)
                    users.record_login(session, admin, "first admin set-up")
                    user_id = admin.id
            except ValidationError as error:
                st.session_state[_ERROR_KEY] = str(error)
            except Exception:  # noqa: BLE001 - a plain message, never a traceback
                log.exception("first admin could not be created")
                st.session_state[_ERROR_KEY] = _DB_DOWN
            else:
                _enter(user_id)
        st.rerun()
