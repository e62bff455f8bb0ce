"""End-to-end fixtures: the dashboard started as ``make run`` does (serve.py), and a real Chromium.

The server gets a fresh SQLite database, a temporary DATA_DIR, a Fernet key made at run
time and two free ports (dashboard, demo simulator). A test module may override ``server_env``
(extra environment) and ``seed`` (rows written before the server starts). Without playwright
or Chromium the tests skip with the reason on a developer machine and fail in CI (``skip_or_fail``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from lib import db as db_module
from lib.settings import PROJECT_ROOT, get_settings
from tests.conftest import skip_or_fail

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1400, "height": 900}
START_TIMEOUT_SECONDS = 60
RUN_TIMEOUT_MS = 60_000
ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "e2e"  # gitignored


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class App:
    """A running dashboard: where it answers and where its files are."""

    url: str
    demo_port: int
    data_dir: Path
    database: Path
    log: Path

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.is_file() else ""
        return "\n".join(text.splitlines()[-lines:])


def _wait_healthy(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"streamlit exited with {server.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    pytest.fail(f"streamlit did not answer /_stcore/health within {START_TIMEOUT_SECONDS}s")


def _stop(server: subprocess.Popen[bytes]) -> None:
    """End the server's process group (streamlit and anything it forked in its session)."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)


@pytest.fixture(scope="module")
def server_env() -> dict[str, str]:
    """Environment the server gets on top of ``make run``'s; none unless a module overrides it."""
    return {}


@pytest.fixture(scope="module")
def seed() -> Callable[[], None] | None:
    """Writes rows into the migrated database before the server starts; none unless a module overrides it."""
    return None


def _run_seed(seed: Callable[[], None], env: dict[str, str]) -> None:
    """Run ``seed`` in this process with the server's database and key, then restore this process's settings."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("DATABASE_URL", "DATA_DIR", "ENCRYPTION_KEYS", "DOTENV_PATH"):
            patch.setenv(name, env[name])
        get_settings.cache_clear()
        db_module.dispose_engines()
        try:
            seed()
        finally:
            get_settings.cache_clear()
            db_module.dispose_engines()


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, server_env: dict[str, str],
        seed: Callable[[], None] | None) -> Iterator[App]:
    """Migrate a fresh database, seed it if asked, start streamlit on a free port, stop it and the simulator after."""
    root = tmp_path_factory.mktemp("e2e")
    database = root / "db.sqlite"
    port, demo_port = _free_port(), _free_port()
    while demo_port == port:
        demo_port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{database}",
        "DATA_DIR": str(root),
        "ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "DEMO_SIMULATOR_PORT": str(demo_port),
        "DOTENV_PATH": str(root / "no.env"),  # a developer's .env must not leak into the run
    }
    env.pop("RUN_WORKER_IN_APP", None)  # the default, as `make run` has it
    env["FORWARDED_ALLOW_IPS"] = ""  # as `make run` has it: no proxy believed
    env.update(server_env)
    subprocess.run([sys.executable, "-m", "lib.cli", "migrate"], cwd=PROJECT_ROOT, env=env, check=True,
                   capture_output=True, timeout=120)
    if seed is not None:
        _run_seed(seed, env)
    log = root / "streamlit.log"
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as log_file:
        server = subprocess.Popen(  # noqa: S603 - fixed argv
            [sys.executable, "-m", "streamlit", "run", "serve.py", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"],  # edits elsewhere in the tree must not prompt a rerun
            cwd=PROJECT_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        _wait_healthy(url, server, log)
        yield App(url, demo_port, root, database, log)
    finally:
        _stop(server)
        # the demo simulator runs in its own session so it outlives page reruns; end ours by its port
        subprocess.run(["pkill", "-f", f"lib.simulator --port {demo_port} "], check=False)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("the playwright package is not installed (pip install playwright)")
    if not CHROMIUM.is_file():
        skip_or_fail(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def page(browser: object, app: App) -> Iterator[object]:
    from playwright.sync_api import expect

    context = browser.new_context(viewport=VIEWPORT, locale="en-US", timezone_id="UTC")
    context.set_default_timeout(RUN_TIMEOUT_MS)
    expect.set_options(timeout=RUN_TIMEOUT_MS)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


@pytest.fixture(scope="module")
def screenshots() -> Path:
    """docs/screenshots under ``make screenshots``; else a gitignored artifacts folder."""
    target = Path(os.environ.get("SCREENSHOT_DIR") or ARTIFACTS)
    if not target.is_absolute():
        target = PROJECT_ROOT / target
    target.mkdir(parents=True, exist_ok=True)
    return target
