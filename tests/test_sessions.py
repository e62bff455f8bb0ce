"""Sessions that survive reloads (lib.sessions), and the HTTP side against a real server.

The real-server tests start ``streamlit run serve.py`` (as ``make run`` does) on a free
loopback port with the test's database, then speak HTTP to it with requests and Streamlit's
websocket protocol the way a browser does on a page load (see tests/test_legacy_pages.py):
cookie flags, security headers, a page load that resumes the session from the cookie, and the
set-up token printed at start. The AppTest side (notices, tabs, admin changes) is in
tests/test_auth_pages.py.
"""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.sync.client import connect

from lib import db, sessions, users
from lib.access import SYSTEM, Role
from lib.clients import create_client
from lib.models import AuditEvent, AuthSession, utcnow
from lib.settings import PROJECT_ROOT, get_settings
from tests.helpers import database_contents

PASSWORD = "correct horse battery"  # a test fixture, not a credential
PYTHON = PROJECT_ROOT / ".venv" / "bin" / "python"
BROWSER = "browser-binding-id"


def _add(username: str = "ann", role: Role = Role.ANALYST) -> int:
    with db.session_scope() as session:
        return users.create_user(session, SYSTEM, username, role, PASSWORD).id


def _handoff(user_id: int, binding: str = BROWSER) -> str:
    with db.session_scope() as session:
        return sessions.start(session, user_id, "password", "localhost", binding)[1]


def _logouts() -> int:
    with db.session_scope() as session:
        return session.scalar(select(func.count()).where(AuditEvent.action == "logout"))


# ---------------------------------------------------------------- lib.sessions


def test_a_cookie_is_signed_and_a_forgery_refused(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    signed = sessions.sign("some-token")
    assert signed.startswith("some-token.") and sessions.unsign(signed) == "some-token"
    key_file = get_settings().data_dir / "session.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600  # generated once, owner only
    for forged in ("some-token", "some-token.", f"other-token.{signed.rsplit('.', 1)[1]}",
                   signed[:-1] + ("B" if signed.endswith("A") else "A"), None):  # the last character changed
        assert sessions.unsign(forged) is None, forged
    assert sessions.sign("some-token") == signed  # the key is kept, so cookies outlive a restart
    monkeypatch.setenv("SESSION_SECRET", "configured for every app server")
    get_settings.cache_clear()
    assert sessions.unsign(signed) is None  # another key: another deployment's cookie
    assert sessions.unsign(sessions.sign("some-token")) == "some-token"


def test_the_database_holds_only_the_tokens_hash(database_url: str) -> None:
    ann = _add()
    code = _handoff(ann)
    with db.session_scope() as session:
        token, row = sessions.claim(session, code, BROWSER)
        session_id = row.id
    stored = repr(database_contents(database_url))
    assert token not in stored and code not in stored
    with db.session_scope() as session:
        assert sessions.by_token(session, token).id == session_id
        assert session.get(AuthSession, session_id).token_hash == sessions.digest(token)
        assert sessions.by_token(session, token[:-1]) is None


def test_a_handoff_code_works_once_for_its_own_browser_and_briefly(database_url: str) -> None:
    ann = _add()
    code = _handoff(ann)
    with db.session_scope() as session:
        assert sessions.claim(session, code, "another-browser") is None  # a forged link: login CSRF
        assert sessions.claim(session, code, BROWSER) is not None
        assert sessions.claim(session, code, BROWSER) is None  # once
    late = _handoff(ann)
    with db.session_scope() as session:
        assert sessions.claim(session, late, BROWSER, now=utcnow() + sessions.HANDOFF + timedelta(seconds=1)) is None
        assert sessions.claim(session, late, BROWSER) is None  # a late try used it up


def test_activity_keeps_a_session_and_idleness_ends_it_once(database_url: str) -> None:
    ann = _add()
    with db.session_scope() as session:
        row, _ = sessions.start(session, ann, "password", "localhost")
        session_id, start = row.id, row.last_seen_at
    idle = timedelta(minutes=get_settings().session_idle_minutes)
    with db.session_scope() as session:
        assert sessions.check(session, session_id, touch=True, now=start + timedelta(seconds=5)).ended is None
        assert session.get(AuthSession, session_id).last_seen_at == start  # not a write per click
        assert sessions.check(session, session_id, touch=True, now=start + idle - timedelta(seconds=1)).ended is None
        assert session.get(AuthSession, session_id).last_seen_at == start + idle - timedelta(seconds=1)
        later = start + 2 * idle - timedelta(seconds=2)
        assert sessions.check(session, session_id, touch=False, now=later).ended is None  # any tab counts
        assert sessions.check(session, session_id, touch=True, now=later + idle).ended == "idle timeout"
        assert sessions.check(session, session_id, touch=True).ended == "idle timeout"
        assert not sessions.end(session, session_id, "logout")  # already over
    assert _logouts() == 1


def test_user_changes_that_end_sessions(database_url: str) -> None:
    ann, admin = _add(), _add("boss", Role.ADMIN)
    with db.session_scope() as session:
        client = users.create_user(session, SYSTEM, "carl", Role.CLIENT, PASSWORD).id
        alpha = create_client(session, SYSTEM, "Alpha").id

    def live(user_id: int) -> int:
        with db.session_scope() as session:
            return session.scalar(select(func.count()).where(AuthSession.user_id == user_id,
                                                             AuthSession.ended_at.is_(None)))

    for user_id in (ann, admin, client):
        for _ in range(2):  # two browsers each
            _handoff(user_id)
    with db.session_scope() as session:
        users.set_clients(session, SYSTEM, client, [alpha])  # takes effect at the next click instead
        users.set_email(session, SYSTEM, ann, "ann@example.com")
    assert (live(ann), live(admin), live(client)) == (2, 2, 2)
    with db.session_scope() as session:
        users.set_role(session, SYSTEM, client, Role.ANALYST)
        users.reset_password(session, SYSTEM, admin, "a brand new passphrase")
        users.set_disabled(session, SYSTEM, ann, True)
        users.set_disabled(session, SYSTEM, ann, False)
    assert (live(ann), live(admin), live(client)) == (0, 0, 0)


# ---------------------------------------------------------------- a real server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve(tmp_path: Path, address: str = "127.0.0.1", extra_env: dict[str, str] | None = None) -> Iterator[int]:
    """``streamlit run serve.py`` on ``address`` with this test's settings; yields the port once healthy."""
    port = _free_port()
    log_path = tmp_path / f"server-{port}.log"
    python = str(PYTHON if PYTHON.exists() else sys.executable)
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [python, "-m", "streamlit", "run", "serve.py", "--server.headless", "true", "--server.port", str(port),
             "--server.address", address, "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
            cwd=PROJECT_ROOT, env={**os.environ, **(extra_env or {})}, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                pytest.fail(f"streamlit exited early: {log_path.read_text()[-2000:]}")
            try:
                if requests.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail("streamlit did not become healthy within 60 s")
            time.sleep(0.2)
        yield port
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()


def page_load(port: int, cookies: dict[str, str] | None = None, timeout: float = 60) -> list[ForwardMsg]:
    """What a browser with ``cookies`` receives for the first script run of a page load."""
    back = BackMsg()
    back.rerun_script.page_name = ""
    back.rerun_script.query_string = ""
    headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())} if cookies else {}
    messages: list[ForwardMsg] = []
    with connect(f"ws://127.0.0.1:{port}/_stcore/stream", subprotocols=["streamlit"], open_timeout=10,
                 additional_headers=headers) as ws:
        ws.send(back.SerializeToString())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                frame = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                break
            message = ForwardMsg()
            message.ParseFromString(frame)
            messages.append(message)
            if message.WhichOneof("type") == "script_finished":
                return messages
    pytest.fail(f"no script_finished; got {[m.WhichOneof('type') for m in messages]}")


def shown(messages: list[ForwardMsg]) -> str:
    return "\n".join(str(m.delta) for m in messages if m.WhichOneof("type") == "delta")


def set_cookie(response: requests.Response, name: str) -> str | None:
    """The raw Set-Cookie header for ``name`` (requests' cookie jar hides the flags)."""
    values = response.raw.headers.getlist("Set-Cookie")
    return next((v for v in values if v.startswith(f"{name}=")), None)


def test_real_server_sets_a_strict_httponly_cookie_that_a_reload_resumes(
        sqlite_url: str, tmp_path: Path) -> None:
    ann = _add()
    with serve(tmp_path, extra_env={"FORWARDED_ALLOW_IPS": "127.0.0.1"}) as port:  # a TLS proxy on loopback
        base = f"http://127.0.0.1:{port}"
        index = requests.get(f"{base}/", timeout=10)
        assert index.headers["X-Frame-Options"] == "DENY"
        assert index.headers["Content-Security-Policy"] == "frame-ancestors 'none'"
        binding = set_cookie(index, sessions.BINDING_COOKIE)
        assert binding and re.search(r"; HttpOnly(;|$)", binding) and "SameSite=Strict" in binding
        assert requests.get(f"{base}/_stcore/health", timeout=10).headers["X-Frame-Options"] == "DENY"

        def visit(code: str, browser: str = BROWSER, nxt: str = "/balances", **headers: str) -> requests.Response:
            return requests.get(f"{base}/_auth/session", params={"code": code, "next": nxt}, timeout=10,
                                cookies={sessions.BINDING_COOKIE: browser}, headers=headers, allow_redirects=False)

        code = _handoff(ann)
        assert set_cookie(visit(code, browser="another-browser"), sessions.COOKIE_NAME) is None
        answer = visit(code)
        assert (answer.status_code, answer.headers["Location"]) == (303, "/balances")
        cookie = set_cookie(answer, sessions.COOKIE_NAME)
        assert cookie, answer.headers
        flags = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")[1:]}
        assert {"httponly", "samesite", "path", "max-age"} <= set(flags) and "secure" not in flags
        assert flags["samesite"].lower() == "samesite=strict" and flags["path"] == "Path=/"
        assert 11 * 3600 < int(flags["max-age"].split("=")[1]) <= 12 * 3600  # SESSION_MAX_HOURS
        assert set_cookie(visit(code), sessions.COOKIE_NAME) is None  # the code worked once
        over_https = visit(_handoff(ann), **{"X-Forwarded-Proto": "https"})
        assert "; Secure" in set_cookie(over_https, sessions.COOKIE_NAME)
        assert visit("no-such-code", nxt="//elsewhere.example/x").headers["Location"] == "/"  # no open redirect

        session_cookie = {sessions.COOKIE_NAME: cookie.split(";")[0].split("=", 1)[1]}
        for _tab in range(2):  # a reload, then a link opened in a new tab
            load = page_load(port, session_cookie)
            assert "Signed in as" in shown(load) and "Log in" not in shown(load)
        favicons = [m.page_config_changed.favicon for m in load if m.WhichOneof("type") == "page_config_changed"]
        assert favicons and all(f.startswith("data:image/svg+xml") for f in favicons)  # no third-party icon
        assert "Log in" in shown(page_load(port))  # no cookie, no session
        with db.session_scope() as session:
            assert session.scalar(select(func.count()).where(AuditEvent.action == "login")) == 0
            row = sessions.by_token(session, sessions.unsign(session_cookie[sessions.COOKIE_NAME]))
            sessions.end(session, row.id, "logout")
        assert "Signed in as" not in shown(page_load(port, session_cookie))


def test_the_set_up_token_is_printed_at_start_only_beyond_loopback(sqlite_url: str, tmp_path: Path) -> None:
    with serve(tmp_path, address="0.0.0.0") as port:  # noqa: S104 - the case under test
        log = (tmp_path / f"server-{port}.log").read_text()
        printed = re.search(r"First-admin set-up token: (\S+)", log)  # at start, before any visitor
        assert printed, log[-2000:]
        setup = shown(page_load(port))
        assert "Create the first admin" in setup and "Set-up token" in setup
        assert printed.group(1) not in setup
    with serve(tmp_path) as port:
        setup = shown(page_load(port))
        assert "Create the first admin" in setup and "Set-up token" not in setup
        assert "set-up token" not in (tmp_path / f"server-{port}.log").read_text()


def test_make_run_listens_on_loopback_unless_told() -> None:
    def run_line(*args: str, **env: str) -> str:
        environment = {k: v for k, v in os.environ.items() if k not in {"ADDRESS", "STREAMLIT_SERVER_ADDRESS"}}
        out = subprocess.run(["make", "-n", "run", *args], cwd=PROJECT_ROOT, env={**environment, **env},
                             capture_output=True, text=True, check=True).stdout
        return next(line for line in out.splitlines() if "streamlit run" in line)

    assert "streamlit run serve.py" in run_line() and "--server.address 127.0.0.1" in run_line()
    assert 'FORWARDED_ALLOW_IPS=""' in run_line()  # no proxy believed unless configured
    assert "--server.address 0.0.0.0" in run_line("ADDRESS=0.0.0.0")
    assert "--server.address 10.0.0.5" in run_line(STREAMLIT_SERVER_ADDRESS="10.0.0.5")


def test_the_start_up_objects_leave_the_collectors_view() -> None:
    """serve.py's lifespan imports what the pages use and freezes what exists then: a full garbage
    collection no longer walks every class and function of ccxt, pandas and Streamlit."""
    import gc

    from lib.ui import server

    gc.unfreeze()
    try:
        server.freeze_startup_objects()
        assert all(module in sys.modules for module in server.STARTUP_MODULES)
        assert gc.get_freeze_count() > 100_000  # ccxt's classes alone hold most of them
    finally:
        gc.unfreeze()  # the rest of the test session collects as before
