"""The sync CLI (JSON, exit codes), the Sync page and its widgets, opening balances."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import pandas as pd
import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from lib.access import SYSTEM
from lib.cli import main
from lib.db import session_scope
from lib.models import AuditEvent, Connector, OpeningBalance, User, UserClient, utcnow
from lib.settings import PROJECT_ROOT
from lib.simulator import Simulator, SimulatorConfig
from lib.simulator.accounts import SimAccount
from lib.sync import markets, store, sync_connectors
from tests.sync_helpers import add_connectors

PAGE = str(PROJECT_ROOT / "pages/operations/sync.py")
JSON_KEYS = ("connector_id", "client", "exchange", "label", "success", "balances", "new_trades", "new_transfers",
             "open_orders", "error")  # exactly the shape


@pytest.fixture
def sim() -> Iterator[Simulator]:
    markets.forget()
    simulator = Simulator(SimulatorConfig(seed=5, accounts=2, days=30, fills_per_account=120)).start()
    yield simulator
    simulator.stop()


def test_cli_sync_json_and_exit_code(sqlite_url: str, sim: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    ids = add_connectors(sim)
    assert main(["sync", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["total"], out["successful"], out["failed"]) == (2, 2, 0)
    first = out["results"][0]
    assert set(first) == set(JSON_KEYS)
    assert first["new_trades"] == 120 and first["error"] is None

    sim.revoke(sim.accounts[0].id)
    assert main(["sync", "--connector", str(ids[sim.accounts[0].id]), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["failed"] == 1 and "Authentication failed" in out["results"][0]["error"]
    assert main(["sync", "--client", "Acme"]) == 1
    captured = capsys.readouterr()
    assert "1 of 2 connector(s) synced" in captured.out and "FAILED" in captured.err
    assert sim.accounts[0].secret not in captured.out + captured.err



def test_cli_sync_json_counts_a_connector_leased_elsewhere_as_failed(sqlite_url: str, sim: Simulator,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    ids = add_connectors(sim)
    busy = ids[sim.accounts[0].id]
    with session_scope() as session:
        session.execute(update(Connector).where(Connector.id == busy).values(
            lease_owner="another-host:1:abc", lease_until=utcnow() + timedelta(minutes=5)))
    assert main(["sync", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert (out["total"], out["successful"], out["failed"]) == (2, 1, 1)
    assert all(set(r) == set(JSON_KEYS) for r in out["results"])
    skipped = next(r for r in out["results"] if r["connector_id"] == busy)
    assert not skipped["success"] and "another process" in skipped["error"]

def test_print_sync_after_save(sqlite_url: str, sim: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    from lib.cli.sync import print_sync_after_save

    ids = add_connectors(sim)
    assert print_sync_after_save(ids[sim.accounts[1].id]) == 0
    assert "120 new fill(s)" in capsys.readouterr().out


def test_opening_balances_book_what_history_does_not_explain(sqlite_url: str, sim: Simulator) -> None:
    ids = add_connectors(sim)
    connector_id = next(iter(ids.values()))
    assert store.unexplained({"BTC": 1.5, "USDT": 100.0, "ETH": 2.0}, {"BTC": 1.0, "USDT": 100.0 - 1e-12}) == {
        "BTC": 0.5, "ETH": 2.0}
    assert store.book_opening_balances(connector_id, {"BTC": 0.5, "XYZ": 3.0}, {"BTC": 60000.0, "XYZ": None}, 1) == 2
    with session_scope() as session:
        rows = {o.asset: (o.amount, o.usd_price) for o in session.scalars(select(OpeningBalance))}
        assert rows == {"BTC": (0.5, 60000.0), "XYZ": (3.0, None)}
        assert session.get(Connector, connector_id).first_synced_at is not None


def login(at: AppTest, role: str, client_ids: tuple[int, ...] = ()) -> AppTest:
    with session_scope() as session:
        user = User(username=f"{role}-{secrets.token_hex(3)}", role=role, password_hash=None)
        session.add(user)
        session.flush()
        session.add_all([UserClient(user_id=user.id, client_id=c) for c in client_ids])
        at.session_state["auth_user_id"] = user.id
    return at


def page_text(at: AppTest) -> str:
    """The page's words: its text elements and every cell of its tables."""
    return "\n".join([str(e.value) for kind in ("markdown", "caption", "error", "info", "title")
                      for e in getattr(at, kind)] + [frame.value.to_csv() for frame in at.dataframe])


def connectors_listed(at: AppTest) -> pd.DataFrame:
    """The Sync page's connectors table."""
    return next(frame.value for frame in at.dataframe if "Last sync" in frame.value.columns)


def coverage_details(at: AppTest, account: SimAccount) -> pd.DataFrame:
    """A simulated account's connector's rows of the Sync page's coverage table, by data kind."""
    table = next(frame.value for frame in at.dataframe if "Data" in frame.value.columns)
    return table[table["Account"] == f"Acme · {account.dialect} / {account.id}"].set_index("Data")


def test_sync_page_force_sync_and_retry(database_url: str, sim: Simulator) -> None:
    ids = add_connectors(sim)
    sim.revoke(sim.accounts[0].id)
    at = login(AppTest.from_file(PAGE, default_timeout=120), "analyst")
    at.run()
    assert not at.exception
    assert set(connectors_listed(at)["Last sync"]) == {"never synced"}
    next(b for b in at.button if b.label == "Force sync: everything").click()
    at.run()
    assert not at.exception
    states = connectors_listed(at).set_index("Account")["Last sync"]
    assert states[f"Acme · {sim.accounts[0].dialect} / {sim.accounts[0].id}"].startswith(
        "needs attention: Authentication failed")
    assert states[f"Acme · {sim.accounts[1].dialect} / {sim.accounts[1].id}"] == "synced just now"
    assert [b.label for b in at.button].count("Retry the 1 failing connector(s)") == 1
    # the synced connector's coverage, from the walk that just ran; the revoked one fetched nothing
    kinds = coverage_details(at, sim.accounts[1])
    assert {"Fills", "Order history", "Balances: default account"} <= set(kinds.index)
    assert kinds.loc["Fills", "Last complete walk"].endswith(" UTC")
    assert " – " in kinds.loc["Fills", "Fetched (UTC)"]
    revoked = coverage_details(at, sim.accounts[0])
    assert list(revoked.index) == ["Nothing fetched yet"]  # kept, not dropped
    assert revoked.loc["Nothing fetched yet", "Fetched (UTC)"] == "the first sync fills this in"
    with session_scope() as session:
        assert session.scalar(select(AuditEvent).where(AuditEvent.action == "sync.forced"))
        assert session.get(Connector, ids[sim.accounts[1].id]).status == "ok"


def test_sync_page_lists_the_connectors_that_need_a_look_first(database_url: str, sim: Simulator) -> None:
    ids = add_connectors(sim)
    last = sim.accounts[-1]  # last by name: it heads the list only because it failed
    with session_scope() as session:
        for connector in session.scalars(select(Connector)):
            connector.last_success_at = utcnow()
        failing = session.get(Connector, ids[last.id])
        failing.status, failing.last_error = "error", "Exchange unavailable"
    at = login(AppTest.from_file(PAGE, default_timeout=60), "analyst")
    at.run()
    assert not at.exception
    listed = connectors_listed(at)
    assert len(listed) == len(ids) and listed["State"].iloc[0] == "Failing"
    assert listed["Last sync"].iloc[0].startswith("last sync failed: Exchange unavailable")
    assert listed["Account"].iloc[0].endswith(f"{last.dialect} / {last.id}")
    assert set(listed["State"].iloc[1:]) == {"OK"} and set(listed["Last sync"].iloc[1:]) == {"synced just now"}


def test_client_role_sees_own_connectors_and_cannot_force(database_url: str, sim: Simulator) -> None:
    ids = add_connectors(sim, accounts=slice(0, 1))
    add_connectors(sim, client="Other", accounts=slice(1, 2))
    sync_connectors(SYSTEM)
    with session_scope() as session:
        client_id = session.get(Connector, next(iter(ids.values()))).client_id
    at = login(AppTest.from_file(PAGE, default_timeout=60), "client", (client_id,))
    at.run()
    assert not at.exception
    text = page_text(at)
    assert "Acme" in text and "Other" not in text
    assert not [b for b in at.button if "sync" in b.label.lower() or b.label.startswith("Retry")]
