"""Bitunix futures (issue 16 items 3 and 4): the plug-in against the simulator's Bitunix dialect.

The sync, fault and incremental tests are the ones every dialect runs
(``tests/test_sync_dialects.py``), here over a simulated futures account; the crash test is
theirs too. Bad keys give the same plain sentences as for ccxt's own exchanges and save nothing.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlsplit
from urllib.request import urlopen

import ccxt
import pytest
import streamlit as st
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

import tests.test_sync_dialects as dialects
from lib import exchanges
from lib.access import SYSTEM
from lib.cli import main
from lib.clients import create_client
from lib.db import session_scope
from lib.models import Connector, Position
from lib.settings import PROJECT_ROOT
from lib.simulator import Simulator
from lib.sync import sync_connectors
from lib.users import create_user
from tests.helpers import database_contents
from tests.sync_helpers import add_connectors
from tests.test_sync_dialects import (  # noqa: F401 - the autouse fixture and every dialect's tests, run here
    _sim,
    quick_throttle,
    test_first_and_incremental_sync_equal_the_ground_truth,
    test_thirty_percent_faults_still_end_equal_to_the_ground_truth,
)

AUTH = exchanges.describe_error(ccxt.AuthenticationError("bitunix"), retried_later=False)
DENIED = exchanges.describe_error(ccxt.PermissionDenied("bitunix"), retried_later=False)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    simulator = _sim("bitunix", fills=1000)  # pages enough that an incremental sync is visibly shorter
    simulator.faults.timeout_s = 0.5
    yield simulator
    simulator.stop()


def test_requests_are_signed_as_the_documentation_says() -> None:
    """https://openapidoc.bitunix.com/doc/common/sign.html, computed here independently."""
    key, secret = secrets.token_hex(16), secrets.token_hex(16)
    ex = exchanges.build_exchange(exchanges.ConnectionSpec("bitunix", {"apiKey": key, "secret": secret}))
    request = ex.sign("api/v1/futures/account", ["private"], "GET", {"symbol": "BTCUSDT", "marginCoin": "USDT"})
    headers = request["headers"]
    assert dict(parse_qsl(urlsplit(request["url"]).query)) == {"marginCoin": "USDT", "symbol": "BTCUSDT"}
    assert len(headers["nonce"]) == 32 and headers["api-key"] == key
    digest = hashlib.sha256((headers["nonce"] + headers["timestamp"] + key + "marginCoinUSDTsymbolBTCUSDT")
                            .encode()).hexdigest()
    assert headers["sign"] == hashlib.sha256((digest + secret).encode()).hexdigest()
    assert "sign" not in ex.sign("api/v1/futures/market/tickers", ["public"], "GET", {})["headers"]


def test_positions_show_as_on_okx(database_url: str, sim: Simulator) -> None:
    """Open positions are stored with the unified symbol, side and contracts the truth holds."""
    account, connector = next(iter(add_connectors(sim).items()))
    report = sync_connectors(SYSTEM)
    assert report.successful == 1, [r.error for r in report.results]
    truth = {(p["symbol"], p["side"], p["contracts"]) for p in sim.truth(account).positions}
    with session_scope() as session:
        stored = {(p.symbol, p.side, float(p.contracts)) for p in session.scalars(
            select(Position).where(Position.connector_id == connector))}
    assert truth and stored == truth


def test_worker_killed_mid_walk_resumes(database_url: str) -> None:
    dialects.test_worker_killed_mid_walk_resumes_at_its_last_committed_window(database_url, "bitunix")


@pytest.fixture
def bitunix(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Simulator]:
    simulator = _sim("bitunix", days=10, fills=20)
    account = simulator.accounts[0]
    monkeypatch.setenv("EXCHANGE_API_KEY", account.api_key)
    monkeypatch.setenv("EXCHANGE_SECRET", account.secret)
    with session_scope() as session:
        create_client(session, SYSTEM, "Acme")
    yield simulator
    simulator.stop()


def _add(sim: Simulator, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["connector", "add", "--client", "Acme", "--exchange", "bitunix", "--label", "futures",
                 "--api-url", sim.accounts[0].api_url, "--no-sync"])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("case", ["wrong secret", "revoked key", "no futures permission"])
def test_a_refused_key_says_so_plainly_and_saves_nothing(bitunix: Simulator, sqlite_url: str,
                                                          capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    account = bitunix.accounts[0]
    if case == "wrong secret":
        monkeypatch.setenv("EXCHANGE_SECRET", secrets.token_hex(32))
    elif case == "revoked key":
        bitunix.revoke(account.id)
    else:
        bitunix.faults.set(rate=1.0, kinds=("denied",), account_id=account.id)
    before = database_contents(sqlite_url)
    code, out, err = _add(bitunix, capsys)
    expected = DENIED if case == "no futures permission" else AUTH
    assert (code, out, err) == (2, "", f"error: connection test failed: {expected} Nothing was saved.\n")
    assert database_contents(sqlite_url) == before
    assert account.secret not in err


def test_a_key_revoked_after_saving_marks_the_connector_with_the_same_sentence(bitunix: Simulator,
                                                                               capsys: pytest.CaptureFixture[str]
                                                                               ) -> None:
    code, out, _ = _add(bitunix, capsys)
    assert code == 0 and "saved: bitunix / futures" in out
    bitunix.revoke(bitunix.accounts[0].id)
    report = sync_connectors(SYSTEM)
    result = report.results[0]
    assert not result.success and result.attention
    assert result.error == exchanges.describe_error(ccxt.AuthenticationError("bitunix"))
    with session_scope() as session:
        assert session.scalars(select(Connector)).one().exchange_id == "bitunix"


def test_the_dialect_pages_as_documented(bitunix: Simulator) -> None:
    """limit 1..100 (default 10), skip pages newest first, an unknown pair is 20001, and an
    unsigned private request is refused."""
    account = bitunix.accounts[0]
    ex = exchanges.build_exchange(exchanges.ConnectionSpec("bitunix", account.credentials(), account.api_url))
    ex.load_markets()
    trades = ex.privateGetApiV1FuturesTradeGetHistoryTrades
    rows = [t["tradeId"] for t in trades({})["data"]["tradeList"]]
    assert len(rows) == 10
    paged = [t["tradeId"] for skip in range(0, 30, 7)
             for t in trades({"skip": skip, "limit": 7})["data"]["tradeList"]]
    truth = [f["id"] for f in sorted(bitunix.truth(account.id).fills, key=lambda f: (f["timestamp"], int(f["id"])))]
    assert paged == truth[::-1][:len(paged)] and rows == paged[:10]
    with pytest.raises(ccxt.BadRequest):
        trades({"limit": 101})
    with pytest.raises(ccxt.BadSymbol):
        trades({"symbol": "XYZUSDT"})
    with urlopen(f"{account.api_url}/api/v1/futures/account?marginCoin=USDT") as answer:  # no headers at all
        assert json.load(answer)["code"] == 10003


def test_a_cut_off_answer_is_a_bad_response_not_an_empty_page(bitunix: Simulator) -> None:
    account = bitunix.accounts[0]
    ex = exchanges.build_exchange(exchanges.ConnectionSpec("bitunix", account.credentials(), account.api_url))
    ex.load_markets()
    assert ex.fetch_my_trades(limit=100)
    bitunix.faults.set(rate=1.0, kinds=("malformed",), path="get_history_trades")
    with pytest.raises(ccxt.BadResponse):
        ex.fetch_my_trades(limit=100)
    assert exchanges.is_retryable(ccxt.BadResponse("bitunix"))


def test_orders_and_positions_page_shows_the_bitunix_positions(database_url: str, sim: Simulator) -> None:
    """The page reads what the sync stored, as for OKX: symbols, sides, contracts and the
    unrealised P&L Bitunix reports."""
    account = sim.accounts[0]
    add_connectors(sim)
    assert sync_connectors(SYSTEM).successful == 1
    with session_scope() as session:
        admin = create_user(session, SYSTEM, "desk", "admin", secrets.token_urlsafe(16)).id
    st.cache_data.clear()
    at = AppTest.from_file(str(PROJECT_ROOT / "pages" / "portfolio" / "orders.py"), default_timeout=60)
    at.session_state["auth_user_id"] = admin
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    shown = at.dataframe[1].value
    truth = sim.truth(account.id).positions
    assert sorted(shown["Symbol"]) == sorted(p["symbol"] for p in truth)
    assert set(shown["Exchange"]) == {"bitunix"} and set(shown["Side"]) == {"long"}
    assert "not reported" not in set(shown["Unrealized P&L"])
    st.cache_data.clear()
