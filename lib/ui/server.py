"""The HTTP side of the dashboard: the session-cookie route, security headers, the set-up token.

Why through ``st.App``: Streamlit 1.67 has no API to set a cookie from a script (a script
only talks to the browser over the websocket, which cannot carry ``Set-Cookie``), and no
option for response headers. Its supported extension point is ``st.App`` (the ASGI app
``streamlit run`` starts when the file defines one), which takes Starlette routes,
middleware and a lifespan: https://docs.streamlit.io/develop/api-reference/app/st.app.
``serve.py`` builds it from this module, and ``make run`` starts ``serve.py``.

- ``/_auth/session`` (``claim``): after a login, the page sends the browser here with a
  one-time code (the same way ``st.login`` sends it to ``/auth/login``); the answer sets the
  session cookie and redirects back to the page. Cookie attributes follow OWASP's Session
  Management Cheat Sheet ("Cookies"):
  https://cheatsheetseries.owasp.org/cheatsheets/Session_Management_Cheat_Sheet.html#cookies
- ``SecurityHeaders``: every answer forbids framing (``X-Frame-Options: DENY`` and CSP
  ``frame-ancestors 'none'``, per OWASP's Clickjacking Defense Cheat Sheet:
  https://cheatsheetseries.owasp.org/cheatsheets/Clickjacking_Defense_Cheat_Sheet.html), and a
  page load without one gets the binding cookie that ties a handoff code to its browser.
- ``lifespan``: marks the routes as served, keeps the start-up objects out of the garbage
  collector's view (``freeze_startup_objects``), and prints the one-time set-up token at start
  when no user exists yet and the server listens beyond loopback.

Without ``serve.py`` (``streamlit run app.py``, AppTest) none of this is served: logins then
last one browser tab, as before, and ``serving()`` says so.
"""

from __future__ import annotations

import gc
import hmac
import importlib
import ipaddress
import logging
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from streamlit import config
from streamlit.url_util import make_url_path

from lib import sessions, users
from lib.db import session_scope
from lib.models import utcnow

log = logging.getLogger(__name__)

HANDOFF_PATH = "_auth/session"
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

_serving = False
_token_lock = threading.Lock()
_setup_token: str | None = None


def serving() -> bool:
    """True inside ``serve.py``'s server, where the cookie route answers."""
    return _serving


def _base_path() -> str:
    return make_url_path(config.get_option("server.baseUrlPath") or "", "")


def handoff_url(code: str, page_url: str | None) -> str:
    """Where the page sends the browser after a login: the route, then back to the page's path."""
    page = urlsplit(page_url or "").path or _base_path()
    return f"{make_url_path(_base_path(), HANDOFF_PATH)}?code={quote(code)}&next={quote(page)}"


def _local_path(target: str | None) -> str:
    """``target`` when it is a path on this server, else the app's root: never a redirect elsewhere."""
    parts = urlsplit(target or "")
    path = parts.path
    if parts.scheme or parts.netloc or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return _base_path()
    return path


# ---------------------------------------------------------------- the cookie route


def claim(request: Request) -> Response:
    """Swap the one-time code for the session cookie, then go back to the page (sync: runs in a thread)."""
    response = RedirectResponse(_local_path(request.query_params.get("next")), status_code=303)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"  # the code must not travel on
    try:
        with session_scope() as session:
            claimed = sessions.claim(session, request.query_params.get("code", ""),
                                     request.cookies.get(sessions.BINDING_COOKIE, ""))
            expires_at = claimed[1].expires_at if claimed else None
    except Exception:  # noqa: BLE001 - the browser lands on the login screen; the log says why
        log.exception("session cookie not set")
        return response
    if claimed is not None and expires_at is not None:
        response.set_cookie(sessions.COOKIE_NAME, sessions.sign(claimed[0]),
                            max_age=int((expires_at - utcnow()).total_seconds()), path=_base_path(),
                            httponly=True, samesite="strict", secure=request.url.scheme == "https")
    return response


def routes() -> list[Route]:
    return [Route(make_url_path(_base_path(), HANDOFF_PATH), claim, methods=["GET"])]


# ---------------------------------------------------------------- headers


class SecurityHeaders:
    """Adds ``SECURITY_HEADERS`` to every HTTP answer, and the binding cookie to a page load without one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        needs_binding = sessions.BINDING_COOKIE not in request.cookies
        secure = request.url.scheme == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
                if needs_binding and headers.get("content-type", "").startswith("text/html"):
                    headers.append("Set-Cookie", _binding_cookie(secure))
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _binding_cookie(secure: bool) -> str:
    cookie: SimpleCookie = SimpleCookie()
    cookie[sessions.BINDING_COOKIE] = sessions.new_secret()
    morsel = cookie[sessions.BINDING_COOKIE]
    morsel["path"], morsel["httponly"], morsel["samesite"] = _base_path(), True, "Strict"
    if secure:
        morsel["secure"] = True
    return morsel.OutputString()


def middleware() -> list[Middleware]:
    return [Middleware(SecurityHeaders)]


# ---------------------------------------------------------------- first-admin set-up


def listens_beyond_loopback() -> bool:
    """Whether this server's ``server.address`` lets other machines connect."""
    return beyond_loopback(config.get_option("server.address"))


def beyond_loopback(address: str | None) -> bool:
    """False only for a loopback address; unset (every interface) and host names count as reachable."""
    text = (address or "").strip().strip("[]")
    if text == "localhost":
        return False
    try:
        return not ipaddress.ip_address(text).is_loopback
    except ValueError:
        return True


def setup_token() -> str:
    """The one-time token the set-up screen asks for; made and printed to the console once per process."""
    global _setup_token
    with _token_lock:
        if _setup_token is None:
            _setup_token = sessions.new_secret()[:24]
            # printed, not logged: LOG_LEVEL must not hide it
            print(f"First-admin set-up token: {_setup_token} (the set-up screen asks for it because this "
                  "server listens beyond loopback; it works once)", file=sys.stderr, flush=True)
        return _setup_token


def setup_token_matches(typed: str | None) -> bool:
    with _token_lock:
        return _setup_token is not None and hmac.compare_digest((typed or "").strip().encode(), _setup_token.encode())


def spend_setup_token() -> None:
    """Once the first admin exists: the token is used up (a later set-up screen would print a new one)."""
    global _setup_token
    with _token_lock:
        _setup_token = None


#: what the pages and the worker import: the libraries behind them hold most of the start-up objects
STARTUP_MODULES = ("lib.exchanges", "lib.ui.loaders", "lib.client_summary", "lib.figures_ahead", "plotly.graph_objects")


def freeze_startup_objects() -> None:
    """Import what the pages use, then move every object alive (ccxt's exchange classes and their
    API entries, pandas, plotly, Streamlit: ~400,000 objects the collector tracks at 1M fills, never
    garbage) out of the cyclic collector's view (``gc.freeze``). Python still collects by its own
    thresholds, but a full collection then looks at what the running app made since, not at every
    function of every library: ~140 ms a time, landing in whichever page run it falls in."""
    for module in STARTUP_MODULES:
        importlib.import_module(module)
    gc.collect()
    gc.freeze()


@asynccontextmanager
async def lifespan(_app: Any) -> AsyncIterator[None]:  # noqa: ANN401 - st.App passes itself
    global _serving
    _serving = True
    freeze_startup_objects()
    if listens_beyond_loopback():
        try:
            with session_scope() as session:
                first_run = not users.has_users(session)
        except Exception:  # noqa: BLE001 - not migrated yet: the set-up screen prints the token when it shows
            first_run = False
        if first_run:
            setup_token()
    yield
    _serving = False
