"""A fresh real server must not run a page file by its URL before the login gate.

Streamlit keeps its first multipage design alive: while a freshly started server has not
yet seen ``st.navigation`` run, a top-level ``pages/*.py`` file is registered as a page and
a first visitor asking for its URL (``/name``) runs that file directly, skipping app.py and
its login gate. app.py calls st.navigation only after the gate, so on a fresh install (no
users: the set-up screen stops the run) that window stays open for every visitor.

How this is tested: a real ``streamlit run`` subprocess on a free port with a temporary
database, and a websocket client speaking Streamlit's protocol the way the browser does for
a first visit to ``/<page>``: a ``rerun_script`` BackMsg carrying ``page_name``. The canary
test points the same harness at a throw-away app with a top-level ``pages/leak.py`` that
writes a marker file and proves the harness does get such a file run (so the real-app test
can fail); the real-app test asks for every registered page's URL and checks that the set-up
screen is what ran (the gate answers under every page's URL) and that no page file ran.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet
from streamlit.navigation.page import page_icon_and_name
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.sync.client import connect

from lib.settings import PROJECT_ROOT
from lib.ui.shell import PAGES

PYTHON = PROJECT_ROOT / ".venv" / "bin" / "python"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve(app_dir: Path, tmp_path: Path, extra_env: dict[str, str] | None = None) -> Iterator[int]:
    """``streamlit run app.py`` in ``app_dir`` with a fresh database; yields the port once healthy."""
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}",
        "DATA_DIR": str(tmp_path / "data"),
        "ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "DOTENV_PATH": str(tmp_path / "no.env"),
        "RUN_WORKER_IN_APP": "false",
        **(extra_env or {}),
    }
    python = str(PYTHON if PYTHON.exists() else sys.executable)
    log = (tmp_path / f"server-{port}.log").open("wb")
    server = subprocess.Popen(
        [python, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=app_dir, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                pytest.fail(f"streamlit exited early: {(tmp_path / f'server-{port}.log').read_text()[-2000:]}")
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
        log.close()


def first_visit(port: int, page_name: str, timeout: float = 30) -> list[ForwardMsg]:
    """What a browser opening http://host/<page_name> receives for its first script run."""
    back = BackMsg()
    back.rerun_script.page_name = page_name
    back.rerun_script.query_string = ""
    messages: list[ForwardMsg] = []
    with connect(f"ws://127.0.0.1:{port}/_stcore/stream", subprotocols=["streamlit"], open_timeout=10) as ws:
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
    pytest.fail(f"no script_finished for page {page_name!r}; got {[m.WhichOneof('type') for m in messages]}")


def announced_pages(messages: list[ForwardMsg]) -> set[str]:
    """Script paths of every page the server offered in navigation messages."""
    return {
        Path(page.url_pathname or "").name or "<main>"
        for m in messages if m.WhichOneof("type") == "navigation"
        for page in m.navigation.app_pages
    }


def shown_text(messages: list[ForwardMsg]) -> str:
    return "\n".join(str(m.delta) for m in messages if m.WhichOneof("type") == "delta")


def url_name(path: str) -> str:
    """The URL st.navigation gives a page file (its inferred name, e.g. pages/admin/clients.py -> clients)."""
    return page_icon_and_name(Path(path))[1]


def test_no_page_file_sits_directly_in_pages() -> None:
    """The rule the real-server tests enforce, stated where a failure is easiest to read."""
    top_level = sorted(p.name for p in (PROJECT_ROOT / "pages").glob("*.py") if p.name != "__init__.py")
    assert top_level == [], "move these into a sub-folder of pages/ (Streamlit runs them without the login gate)"


def test_canary_the_harness_sees_a_legacy_page_run(tmp_path: Path) -> None:
    """Against a throw-away app: a top-level pages/ file runs by URL, a sub-folder file does not."""
    app_dir = tmp_path / "app"
    (app_dir / "pages" / "admin").mkdir(parents=True)
    (app_dir / "app.py").write_text('import streamlit as st\nst.title("gate")\nst.stop()\n')
    marker = "import os, pathlib\npathlib.Path(os.environ['MARKER_DIR'], '{name}').write_text('ran')\n"
    (app_dir / "pages" / "__init__.py").write_text("")
    (app_dir / "pages" / "leak.py").write_text(marker.format(name="leak"))
    (app_dir / "pages" / "admin" / "hidden.py").write_text(marker.format(name="hidden"))
    markers = tmp_path / "markers"
    markers.mkdir()
    with serve(app_dir, tmp_path, {"MARKER_DIR": str(markers)}) as port:
        hidden = first_visit(port, "hidden")
        leak = first_visit(port, "leak")
    assert not (markers / "hidden").exists()
    assert "gate" in shown_text(hidden)
    assert (markers / "leak").read_text() == "ran", "the harness must be able to see the legacy behaviour"
    assert "leak" in announced_pages(leak)


def test_fresh_server_runs_no_page_before_the_gate(tmp_path: Path) -> None:
    """The real app, fresh database: every registered page's URL gets the set-up screen, not the page."""
    names = sorted({url_name(path) for _section, path, *_ in PAGES} | {"admin", "clients", "users", "audit"})
    with serve(PROJECT_ROOT, tmp_path) as port:
        for name in names:
            text = shown_text(first_visit(port, name))
            assert "Create the first admin" in text, f"/{name} did not show the set-up screen"
            # A page file run outside the gate starts with current_viewer(), which says this:
            assert "Please log in to see this page" not in text, f"/{name} ran a page file"
            drawn = [title for _section, _path, title, *_ in PAGES if title in text]
            assert drawn == [], f"/{name} drew a page: {drawn}"
