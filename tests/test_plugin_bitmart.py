"""The BitMart plug-in in the product: picker, credential fields (the memo), Test connection with
bad input, error sentences, a connector stored as ``bitmart`` syncing again, the simulator's
account list. The sync itself (first, incremental, faults, crash) is in test_sync_dialects.py."""

from __future__ import annotations

import io
import json
import secrets
import sys
import urllib.request
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from lib import connectors, exchanges
from lib.access import SYSTEM
from lib.clients import create_client
from lib.db import session_scope
from lib.models import BalanceSnapshot, Connector, HistoryCoverage, Trade
from lib.simulator import Simulator, SimulatorConfig
from lib.simulator import bitmart as dialect
from lib.simulator.accounts import SimAccount
from lib.sync import markets, sync_connectors
from lib.vault import load_vault
from tests.helpers import database_contents
from tests.test_admin_page import PAGE, fill_connector, login, texts, widget
from tests.test_admin_page import create_client as create_client_on_page
from tests.test_cli_core import run as cli

WRONG_KEY = "Authentication failed: the API key or secret is wrong, expired or revoked."


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    markets.forget()
    with Simulator(SimulatorConfig(seed=16, accounts=2, days=10, fills_per_account=40, dialects=["bitmart"])) as sim:
        yield sim


@pytest.fixture
def account(sim: Simulator) -> Iterator[SimAccount]:
    yield sim.accounts[0]
    sim.faults.clear()


def _input(account: SimAccount, **credentials: str) -> connectors.ConnectorInput:
    return connectors.ConnectorInput("bitmart", "main", {**account.credentials(), **credentials}, account.api_url)


def test_bitmart_is_offered_with_its_memo() -> None:
    assert "bitmart" in exchanges.supported_exchanges()
    assert exchanges.required_credentials("bitmart") == ["apiKey", "secret", "uid"]
    assert exchanges.credential_labels("bitmart")["uid"] == "Memo"


def test_the_simulator_names_the_exchange_id_and_the_memo(sim: Simulator) -> None:
    with urllib.request.urlopen(f"{sim.url}/_sim/accounts") as answer:  # noqa: S310 - loopback simulator
        rows = json.load(answer)
    assert {row["exchange"] for row in rows} == {"bitmart"}
    assert all(row["uid"] and row["api_url"].endswith("/bitmart") for row in rows)


def test_the_right_key_passes_its_test(sim: Simulator, account: SimAccount) -> None:
    held = [a for a, row in sim.truth(account.id).balances.items() if row["total"]]
    result = connectors.check_input(_input(account))
    assert result.ok and result.message == f"Connected: the account holds {len(held)} asset(s).", result.message


@pytest.mark.parametrize("case", ["wrong memo", "wrong secret", "unknown key", "expired key"])
def test_bad_credentials_fail_the_test_in_the_plain_sentence(sim: Simulator, account: SimAccount, case: str) -> None:
    other = sim.accounts[1]
    credentials = {
        "wrong memo": {"uid": "not-" + account.uid},
        "wrong secret": {"secret": secrets.token_hex(32)},
        "unknown key": {"apiKey": secrets.token_hex(20)},
        "expired key": {},
    }[case]
    if case == "expired key":
        sim.revoke(other.id)
        account = other
    result = connectors.check_input(_input(account, **credentials))
    assert not result.ok and result.message == WRONG_KEY


@pytest.mark.parametrize("fault, sentence", [
    ("denied", "The exchange refused the request: the API key lacks a permission, or this server's IP address is "
               "not on the key's allow-list."),
    ("429", "The exchange is rate-limiting requests. The test tried"),
    ("5xx", "The exchange is unavailable or unreachable right now. The test tried"),
])
def test_exchange_errors_read_as_for_any_exchange(account: SimAccount, sim: Simulator, fault: str,
                                                  sentence: str) -> None:
    sim.faults.set(rate=1.0, kinds=(fault,), path="/spot/v1/wallet")
    result = connectors.check_input(_input(account))
    assert not result.ok and result.message.startswith(sentence), result.message


def test_a_clock_out_of_step_is_named(account: SimAccount, monkeypatch: pytest.MonkeyPatch) -> None:
    """BitMart's 30007 (timestamp outside the receive window) is a clock problem, not a bad key."""
    monkeypatch.setattr(dialect, "RECV_WINDOW_MS", -1)
    result = connectors.check_input(_input(account))
    assert result.message == "Signed requests were refused: this server's clock is out of sync with the exchange."


def test_a_connector_stored_as_bitmart_syncs_again(database_url: str, sim: Simulator) -> None:
    """A row saved when ccxt still listed BitMart (credentials apiKey, secret, uid) syncs through the plug-in."""
    account = sim.accounts[0]
    with session_scope() as session:
        owner = create_client(session, SYSTEM, "Acme")
        session.add(Connector(client_id=owner.id, exchange_id="bitmart", label="old",
                              credentials_ciphertext=load_vault().encrypt(account.credentials()),
                              api_url=account.api_url))
    report = sync_connectors(SYSTEM)
    assert report.successful == 1, [r.error for r in report.results]
    truth = sim.truth(account.id)
    with session_scope() as session:
        assert session.scalar(select(func.count(Trade.id))) == len(truth.fills)
        assets = {(b.account_type, b.asset) for b in session.scalars(select(BalanceSnapshot))}
        coverage = {c.stream: c for c in session.scalars(select(HistoryCoverage))}
    held = {("", a) for a, row in truth.balances.items() if row["total"]}
    held |= {("funding", a) for a, row in truth.balances_by_type.get("funding", {}).items() if row["total"]}
    assert assets == held
    assert coverage["trades"].complete_at is not None and coverage["trades"].failed_error is None


def test_the_form_asks_for_the_memo_and_saves_nothing_on_a_wrong_one(database_url: str, sim: Simulator) -> None:
    account = sim.accounts[0]
    at = login(AppTest.from_file(PAGE, default_timeout=60))
    at.run()
    at = create_client_on_page(at, "Sharp")
    widget(at.selectbox, "Exchange").set_value("bitmart")
    at.run()
    assert {w.label for w in at.text_input if w.proto.type == w.proto.PASSWORD} == {"API key", "API secret", "Memo"}
    fields = {"API key": account.api_key, "API secret": account.secret, "Memo": "not-" + (account.uid or "")}
    at = fill_connector(at, "bitmart", fields, api_url=account.api_url)
    before = database_contents(database_url)
    widget(at.button, "Save").click()
    at.run()
    assert not at.exception
    assert WRONG_KEY in "\n".join(e.value for e in at.error)
    assert database_contents(database_url) == before
    fields["Memo"] = account.uid or ""
    at = fill_connector(at, "bitmart", fields, api_url=account.api_url)
    widget(at.button, "Save").click()
    at.run()
    assert "First sync done" in texts(at), texts(at)
    with session_scope() as session:
        assert session.scalar(select(func.count(Trade.id))) == len(sim.truth(account.id).fills)


def test_the_cli_asks_for_the_memo_and_adds_a_bitmart_connector(sqlite_url: str, sim: Simulator, capsys,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    account = sim.accounts[0]
    monkeypatch.setenv("EXCHANGE_API_KEY", account.api_key)
    monkeypatch.setenv("EXCHANGE_SECRET", account.secret)
    monkeypatch.delenv("EXCHANGE_UID", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO())
    assert cli(capsys, "client", "add", "Sharp")[0] == 0
    code, _, err = cli(capsys, "connector", "add", "--client", "Sharp", "--exchange", "bitmart",
                       "--api-url", account.api_url)
    assert code == 2 and "Memo missing: set EXCHANGE_UID" in err
    monkeypatch.setenv("EXCHANGE_UID", account.uid or "")
    code, out, err = cli(capsys, "connector", "add", "--client", "Sharp", "--exchange", "bitmart",
                         "--api-url", account.api_url)
    assert code == 0, err
    assert "connector 1 saved" in out and f"{len(sim.truth(account.id).fills)} new fill(s)" in out
    assert account.secret not in out + err and (account.uid or "") not in out + err
