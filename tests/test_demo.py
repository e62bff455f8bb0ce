"""Demo mode: from an empty database, one click (or `lib.cli demo`) fills the dashboard."""

from __future__ import annotations

import socket
import subprocess

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from lib.db import session_scope
from lib.models import BalanceSnapshot, Client, Connector, Position, Trade
from lib.settings import PROJECT_ROOT, get_settings
from tests.test_admin_page import login, widget


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def demo_port(monkeypatch):
    port = _free_port()
    monkeypatch.setenv("DEMO_SIMULATOR_PORT", str(port))
    get_settings.cache_clear()
    yield port
    subprocess.run(["pkill", "-f", f"lib.simulator --port {port} "], check=False)


def test_load_demo_from_an_empty_database(database_url, demo_port):
    at = login(AppTest.from_file(str(PROJECT_ROOT / "pages/admin/clients.py"), default_timeout=120))
    at.run()
    widget(at.button, "Load demo data").click()
    at.run()
    assert not at.exception
    with session_scope() as session:
        assert sorted(session.scalars(select(Client.name))) == ["Northwind Labs", "Sharp Foundation"]
        connectors = session.scalars(select(Connector)).all()
        assert {c.exchange_id for c in connectors} == {"binance", "okx"}
        assert all(c.status == "ok" and c.api_url.endswith(("/binance", "/okx")) for c in connectors)
        assert session.scalar(select(func.count(Trade.id))) > 0
        assert session.scalar(select(func.count(BalanceSnapshot.id))) > 0
        # the OKX accounts hold perpetuals, with the exchange's own unrealized P&L
        positions = session.scalars(select(Position)).all()
        assert {p.symbol for p in positions} == {"BTC/USDT:USDT", "ETH/USDT:USDT"}
        assert all(p.unrealized_pnl is not None and p.contracts > 0 for p in positions)
    at.run()
    assert "Load demo data" not in [b.label for b in at.button]


def test_loading_twice_is_refused_and_changes_nothing(database_url, demo_port):
    from lib import demo
    from lib.access import SYSTEM
    from tests.helpers import database_contents

    demo.load_demo(SYSTEM)
    before = database_contents(database_url)
    with pytest.raises(demo.DemoError, match="already loaded"):
        demo.load_demo(SYSTEM)
    assert database_contents(database_url) == before
