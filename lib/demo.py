"""Demo mode: start the local exchange simulator and add demo clients as ordinary connectors.

This is the only product module that knows the simulator exists. The simulator runs as
its own process (so it outlives a page rerun and a restart of the dashboard); what was
loaded is remembered in ``<DATA_DIR>/demo.json`` so ``make run`` can bring the same
simulator (same port, seed and history end) back after a reboot.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from lib import clients, connectors
from lib.access import Viewer
from lib.db import session_scope
from lib.models import Client
from lib.settings import PROJECT_ROOT, get_settings
from lib.sync import RunReport, sync_connectors
from lib.vault import load_vault

log = logging.getLogger(__name__)

DEMO_SEED = 1
START_TIMEOUT_SECONDS = 30.0
#: demo client -> the simulator accounts (by position) it owns
DEMO_CLIENTS = {"Sharp Foundation": (0, 1), "Northwind Labs": (2, 3)}
#: one account more than the demo uses, left free for trying the "Add connector" form
SIMULATED_ACCOUNTS = 5


class DemoError(RuntimeError):
    """The demo could not be loaded; the message says why in plain words."""


@dataclass(frozen=True)
class DemoState:
    port: int
    seed: int
    anchor: str  # YYYY-MM-DD the simulated histories end at

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _state_path() -> Path:
    return get_settings().data_dir / "demo.json"


def saved_state() -> DemoState | None:
    path = _state_path()
    if not path.is_file():
        return None
    return DemoState(**json.loads(path.read_text()))


def _accounts(state: DemoState) -> list[dict[str, str]] | None:
    """The simulator's accounts, or None when nothing answers on the demo port."""
    try:
        with urllib.request.urlopen(f"{state.url}/_sim/accounts", timeout=2) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def ensure_simulator(state: DemoState) -> list[dict[str, str]]:
    """Start the simulator process unless it already answers; returns its accounts."""
    accounts = _accounts(state)
    if accounts is not None:
        return accounts
    log_path = get_settings().data_dir / "simulator.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log_file:
        subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [sys.executable, "-m", "lib.simulator", "--port", str(state.port), "--seed", str(state.seed),
             "--accounts", str(SIMULATED_ACCOUNTS), "--dialects", "binance,okx",
             "--anchor", state.anchor, "--fills-per-account", "400", "--positions"],
            cwd=PROJECT_ROOT, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        accounts = _accounts(state)
        if accounts is not None:
            log.info("exchange simulator started on %s", state.url)
            return accounts
        time.sleep(0.3)
    raise DemoError(f"The exchange simulator did not start on port {state.port}; see {log_path}.")


def is_loaded() -> bool:
    """True once the demo clients exist (the button is then no longer offered)."""
    with session_scope() as session:
        return session.scalar(select(Client.id).where(Client.name.in_(DEMO_CLIENTS)).limit(1)) is not None


def resume() -> bool:
    """Bring the demo's simulator back if a demo was loaded; False when there is none."""
    state = saved_state()
    if state is None:
        return False
    ensure_simulator(state)
    return True


@dataclass(frozen=True)
class DemoResult:
    clients: list[str]
    connectors: int
    report: RunReport


def load_demo(viewer: Viewer, port: int | None = None) -> DemoResult:
    """Create the demo clients with one Binance and one OKX connector each, then sync them."""
    state = saved_state() or DemoState(
        port=port or get_settings().demo_port, seed=DEMO_SEED, anchor=datetime.now(UTC).strftime("%Y-%m-%d")
    )
    accounts = ensure_simulator(state)
    _state_path().write_text(json.dumps(asdict(state)))
    vault = load_vault()
    created: list[int] = []
    with session_scope() as session:
        existing = set(session.scalars(select(Client.name).where(Client.name.in_(DEMO_CLIENTS))))
        if existing:
            raise DemoError(f"Demo data is already loaded ({', '.join(sorted(existing))}).")
        for name, positions in DEMO_CLIENTS.items():
            client = clients.create_client(session, viewer, name)
            for position in positions:
                account = accounts[position]
                credentials = {k: account[k] for k in ("apiKey", "secret", "password") if account.get(k)}
                created.append(connectors.create_connector(
                    session, viewer, vault, client.id,
                    connectors.ConnectorInput(account["exchange"], "demo", credentials, account["api_url"]),
                ).id)
    report = sync_connectors(viewer, connector_ids=created, trigger="save")
    return DemoResult(list(DEMO_CLIENTS), len(created), report)
