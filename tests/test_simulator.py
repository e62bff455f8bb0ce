"""The exchange simulator against the real, unmodified ccxt classes.

Exchanges are built by ``lib.exchanges`` with only the API URL pointed at the simulator;
every answer is compared with the simulator's ground truth.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import ccxt
import pytest

from lib.exchanges import ConnectionSpec, build_async_exchange
from lib.simulator import Simulator, SimulatorConfig
from lib.simulator.accounts import World
from lib.simulator.market import DAY_MS, DIALECT_SYMBOLS, LISTED_SYMBOLS
from lib.simulator.server import is_loopback
from tests.sim_helpers import exchange, fill_view, loaded, no_faults  # noqa: F401 - no_faults is autouse

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    """binance-1 and okx-2 with thousands of fills; binance-3 and okx-4 small, for mutations."""
    config = SimulatorConfig(seed=11, accounts=4, days=30, fills_per_account=2500)
    with Simulator(config) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def binance(sim: Simulator) -> Any:
    return loaded(sim, "binance-1")


@pytest.fixture(scope="module")
def okx(sim: Simulator) -> Any:
    return loaded(sim, "okx-2")


def assert_balances(balance: dict[str, Any], truth: dict[str, dict[str, float]]) -> None:
    held = {asset for asset, row in truth.items() if row["total"]}
    assert held, "an account without funds proves nothing"
    for asset in held:
        got = {key: balance[asset][key] for key in ("free", "used", "total")}
        assert got == truth[asset], asset
    extra = {a for a, v in balance["total"].items() if v} - held
    assert not extra


# --- generation -------------------------------------------------------------------------

def test_worlds_are_deterministic_and_seed_dependent() -> None:
    anchor = 1_700_000_000_000 // DAY_MS * DAY_MS
    config = SimulatorConfig(seed=5, accounts=2, days=10, fills_per_account=200, anchor_ms=anchor)
    a, b = World(config), World(config)
    other = World(SimulatorConfig(**{**config.__dict__, "seed": 6}))
    assert [x.credentials() for x in a.accounts] == [x.credentials() for x in b.accounts]
    assert a.truth("okx-2") == b.truth("okx-2")
    assert a.accounts[0].api_key != other.accounts[0].api_key
    assert a.truth("binance-1").fills != other.truth("binance-1").fills
    assert [x.dialect for x in a.accounts] == ["binance", "okx"]
    assert a.accounts[1].password and a.accounts[0].password is None


def test_balances_are_what_the_history_implies() -> None:
    anchor = 1_700_000_000_000 // DAY_MS * DAY_MS
    world = World(SimulatorConfig(seed=9, accounts=2, days=20, fills_per_account=3000, anchor_ms=anchor))
    for account in world.accounts:
        truth = world.truth(account.id)
        total: dict[str, float] = defaultdict(float)
        for d in truth.deposits:
            total[d["currency"]] += d["amount"]
        for w in truth.withdrawals:
            total[w["currency"]] -= w["amount"] + w["fee"]["cost"]
        base_quote = lambda symbol: symbol.split("/")  # noqa: E731
        for f in truth.fills:
            base, quote = base_quote(f["symbol"])
            sign = 1 if f["side"] == "buy" else -1
            total[base] += sign * f["amount"]
            total[quote] -= sign * f["cost"]
            total[f["fee"]["currency"]] -= f["fee"]["cost"]
        used: dict[str, float] = defaultdict(float)
        for o in truth.open_orders:
            base, quote = base_quote(o["symbol"])
            if o["side"] == "buy":
                used[quote] += o["amount"] * o["price"]
            else:
                used[base] += o["amount"]
        assert len(truth.fills) == 3000 and truth.open_orders and truth.withdrawals
        assert all(anchor - 20 * DAY_MS <= f["timestamp"] < anchor for f in truth.fills)
        for asset, row in truth.balances.items():
            assert row["free"] >= 0 and row["used"] >= 0
            assert row["total"] == pytest.approx(total[asset], rel=1e-9, abs=1e-6), asset
            assert row["used"] == pytest.approx(used[asset], rel=1e-9, abs=1e-6), asset
        fee_currencies = {f["fee"]["currency"] for f in truth.fills}
        assert {"USDT", "BTC"} <= fee_currencies
        assert ("BNB" in fee_currencies) == (account.dialect == "binance")
        assert any(f["symbol"] == "ETH/BTC" for f in truth.fills)


# --- Binance ---------------------------------------------------------------------------

def test_binance_balance_equals_truth(sim: Simulator, binance: Any) -> None:
    assert_balances(binance.fetch_balance(), sim.truth("binance-1").balances)


def test_binance_every_fill_once_with_from_id(sim: Simulator, binance: Any) -> None:
    truth = sim.truth("binance-1").fills
    got: list[dict[str, Any]] = []
    pages = 0
    for symbol in DIALECT_SYMBOLS["binance"]:
        from_id = 0
        while True:
            page = binance.fetch_my_trades(symbol, limit=200, params={"fromId": from_id})
            pages += 1
            got += page
            if len(page) < 200:
                break
            from_id = max(int(t["id"]) for t in page) + 1
    assert pages > 10
    assert sorted(map(fill_view, got)) == sorted(map(fill_view, truth))


def test_binance_since_in_24h_windows(sim: Simulator, binance: Any) -> None:
    truth = [f for f in sim.truth("binance-1").fills if f["symbol"] == "ETH/BTC"]
    got = []
    for day_start in range(sim.world.start_ms, sim.world.anchor_ms, DAY_MS):
        page = binance.fetch_my_trades("ETH/BTC", since=day_start, limit=1000,
                                       params={"until": day_start + DAY_MS - 1})
        assert len(page) < 1000
        got += page
    assert [t["id"] for t in got] == [f["id"] for f in truth]
    with pytest.raises(ccxt.BadRequest, match="-1127"):
        binance.fetch_my_trades("ETH/BTC", since=sim.world.start_ms, params={"until": sim.world.start_ms + 2 * DAY_MS})
    with pytest.raises(ccxt.ArgumentsRequired):
        binance.fetch_my_trades()


def test_binance_orders_equal_truth(sim: Simulator, binance: Any) -> None:
    truth = sim.truth("binance-1")
    open_orders = binance.fetch_open_orders()
    key = lambda o: (o["id"], o["symbol"], o["side"], o["price"], o["amount"], o["filled"], o["status"])  # noqa: E731
    assert sorted(map(key, open_orders)) == sorted(map(key, truth.open_orders))
    closed = binance.fetch_closed_orders("SOL/USDT")
    expected = [o for o in truth.closed_orders if o["symbol"] == "SOL/USDT"][-500:]
    assert closed and [key(o) + (o["cost"],) for o in closed] == [key(o) + (o["cost"],) for o in expected]
    assert binance.fetch_positions() == []


def test_binance_transfers_equal_truth(sim: Simulator, binance: Any) -> None:
    truth = sim.truth("binance-1")
    since = sim.world.start_ms - DAY_MS
    deposits = binance.fetch_deposits(since=since)
    withdrawals = binance.fetch_withdrawals(since=since)
    view = lambda t: (t["id"], t["txid"], t["currency"], t["amount"], t["timestamp"], t["status"])  # noqa: E731
    assert sorted(map(view, deposits)) == sorted(map(view, truth.deposits))
    assert sorted(map(view, withdrawals)) == sorted(map(view, truth.withdrawals))
    assert [w["fee"]["cost"] for w in sorted(withdrawals, key=lambda w: w["timestamp"])] == [
        w["fee"]["cost"] for w in truth.withdrawals]


# --- OKX -------------------------------------------------------------------------------

def test_okx_balance_equals_truth(sim: Simulator, okx: Any) -> None:
    assert_balances(okx.fetch_balance(), sim.truth("okx-2").balances)


def test_okx_every_fill_once_paging_by_bill_id(sim: Simulator, okx: Any) -> None:
    truth = sim.truth("okx-2").fills
    got: list[dict[str, Any]] = []
    params: dict[str, str] = {}
    while True:
        page = okx.fetch_my_trades(None, None, 100, params)
        got += page
        if len(page) < 100:
            break
        params = {"after": min(t["info"]["billId"] for t in page)}
    assert len(got) == len(truth) == 2500
    assert sorted(map(fill_view, got)) == sorted(map(fill_view, truth))
    with pytest.raises(ccxt.BadRequest, match="51000"):
        okx.fetch_my_trades(None, None, 101)


def test_okx_orders_and_transfers_equal_truth(sim: Simulator, okx: Any) -> None:
    truth = sim.truth("okx-2")
    key = lambda o: (o["id"], o["symbol"], o["side"], o["price"], o["amount"], o["filled"], o["status"])  # noqa: E731
    assert sorted(map(key, okx.fetch_open_orders())) == sorted(map(key, truth.open_orders))
    closed: list[dict[str, Any]] = []
    params: dict[str, str] = {}
    while True:
        page = okx.fetch_closed_orders(None, None, 100, params)
        closed += page
        if len(page) < 100:
            break
        params = {"after": min(o["id"] for o in page)}
    assert sorted(map(key, closed)) == sorted(map(key, truth.closed_orders))
    assert okx.fetch_positions() == []
    view = lambda t: (t["id"], t["txid"], t["currency"], t["amount"], t["timestamp"], t["status"])  # noqa: E731
    assert sorted(map(view, okx.fetch_deposits())) == sorted(map(view, truth.deposits))
    assert sorted(map(view, okx.fetch_withdrawals())) == sorted(map(view, truth.withdrawals))


# --- market data -----------------------------------------------------------------------

def test_tickers_and_ohlcv_agree_across_dialects(binance: Any, okx: Any) -> None:
    for ex, symbols in ((binance, LISTED_SYMBOLS["binance"]), (okx, LISTED_SYMBOLS["okx"])):
        tickers = ex.fetch_tickers()
        assert set(tickers) == set(symbols)
        for t in tickers.values():
            assert t["low"] <= t["last"] <= t["high"] and t["bid"] < t["ask"]
    since = (binance.milliseconds() - 3 * DAY_MS) // 3_600_000 * 3_600_000
    b = binance.fetch_ohlcv("BTC/USDT", "1h", since=since, limit=24)
    o = okx.fetch_ohlcv("BTC/USDT", "1h", since=since, limit=24)
    assert len(b) == 24 and b == o
    assert [c[0] for c in b] == [since + i * 3_600_000 for i in range(24)]
    assert all(c[2] >= max(c[1], c[4]) and c[3] <= min(c[1], c[4]) for c in b)
    recent = okx.fetch_ohlcv("ETH/BTC", "1d")
    assert recent and recent[-1][0] <= okx.milliseconds() < recent[-1][0] + DAY_MS
    assert abs(binance.fetch_time() - binance.milliseconds()) < 5000
    assert abs(okx.fetch_time() - okx.milliseconds()) < 5000


# --- authentication --------------------------------------------------------------------

def test_wrong_credentials_raise_authentication_error(sim: Simulator) -> None:
    b, o = sim.account("binance-1"), sim.account("okx-2")
    with pytest.raises(ccxt.AuthenticationError, match="-1022"):
        exchange(b, secret=b.secret[::-1]).fetch_balance()
    with pytest.raises(ccxt.AuthenticationError, match="-2015"):
        exchange(b, apiKey="0" * 64).fetch_balance()
    with pytest.raises(ccxt.AuthenticationError, match="50113"):
        exchange(o, secret=o.secret[::-1]).fetch_balance()
    with pytest.raises(ccxt.AuthenticationError, match="50105"):
        exchange(o, password="wrong-passphrase").fetch_balance()
    with pytest.raises(ccxt.AuthenticationError, match="50111"):
        exchange(o, apiKey=b.api_key).fetch_balance()


def test_clock_skew_raises_invalid_nonce(sim: Simulator) -> None:
    for account_id, code in (("binance-1", "-1021"), ("okx-2", "50102")):
        ex = exchange(sim.account(account_id))
        ex.load_markets()
        ex.options["timeDifference"] = 60_000
        with pytest.raises(ccxt.InvalidNonce, match=code):
            ex.fetch_balance()


def test_revoked_key_raises_authentication_error(sim: Simulator) -> None:
    for account_id in ("binance-3", "okx-4"):
        used_before = exchange(sim.account(account_id))
        used_before.fetch_balance()
        sim.revoke(account_id)
        with pytest.raises(ccxt.AuthenticationError):
            exchange(sim.account(account_id)).fetch_balance()
        if account_id.startswith("binance"):
            # ccxt 4.5.90 quirk: after one successful private call, Binance's -2015 is read
            # as a temporary ban (DDoSProtection), not as a bad key
            with pytest.raises(ccxt.DDoSProtection, match="-2015"):
                used_before.fetch_balance()
        else:
            with pytest.raises(ccxt.AuthenticationError):
                used_before.fetch_balance()
        sim.world.revoked.discard(account_id)


# --- faults ----------------------------------------------------------------------------

def test_injected_faults_map_to_ccxt_errors(sim: Simulator, binance: Any, okx: Any) -> None:
    sim.faults.timeout_s = 3.0
    cases = [
        ("429", okx, ccxt.RateLimitExceeded),
        # ccxt.binance turns every HTTP 429/418 into DDoSProtection (RateLimitExceeded's parent)
        ("429", binance, ccxt.DDoSProtection),
        ("5xx", binance, ccxt.ExchangeNotAvailable),
        ("5xx", okx, ccxt.ExchangeNotAvailable),
        ("timeout", okx, ccxt.RequestTimeout),
        ("drop", binance, ccxt.NetworkError),
    ]
    for kind, ex, error in cases:
        account_id = "binance-1" if ex is binance else "okx-2"
        sim.faults.set(rate=1.0, kinds=(kind,), account_id=account_id)
        with pytest.raises(error):
            ex.fetch_balance()
        if kind == "429":
            assert ex.last_response_headers["Retry-After"] == "1"
        sim.faults.clear()
    assert okx.fetch_balance()["total"]


def test_malformed_json_is_not_detected_by_ccxt(sim: Simulator, okx: Any) -> None:
    """ccxt 4.5.90 raises nothing for truncated JSON: callers must check the response."""
    sim.faults.set(rate=1.0, kinds=("malformed",), account_id="okx-2")
    balance = okx.fetch_balance()
    assert isinstance(balance["info"], str) and okx.last_json_response is None
    assert not balance["total"]


def test_fault_scope_count_and_latency(sim: Simulator, binance: Any, okx: Any) -> None:
    sim.faults.set(rate=1.0, kinds=("5xx",), path="/myTrades", times=2)
    assert binance.fetch_balance()["total"]  # other paths are untouched
    for _ in range(2):
        with pytest.raises(ccxt.ExchangeNotAvailable):
            binance.fetch_my_trades("BTC/USDT", limit=1)
    assert len(binance.fetch_my_trades("BTC/USDT", limit=1)) == 1  # the rule is spent
    sim.faults.set(rate=1.0, kinds=("429",), account_id="binance-1")
    assert okx.fetch_balance()["total"]  # another account is untouched
    sim.faults.clear()
    sim.faults.set(latency_ms=300, account_id="okx-2")
    okx.fetch_time()  # public: no account, no latency
    started = okx.milliseconds()
    okx.fetch_balance()
    assert okx.milliseconds() - started >= 300


def test_fault_rate_is_seeded(sim: Simulator) -> None:
    from lib.simulator.faults import Faults

    picks = []
    for _ in range(2):
        faults = Faults(seed=3, rate=0.5)
        picks.append([faults.decide("x", "/binance/api/v3/account").kind for _ in range(200)])
    assert picks[0] == picks[1]
    assert 60 < sum(k is not None for k in picks[0]) < 140
    assert {k for k in picks[0] if k} == {"429", "5xx", "timeout", "drop", "malformed"}


# --- new fills -------------------------------------------------------------------------

def test_add_fills_visible_incrementally(sim: Simulator) -> None:
    b, o = exchange(sim.account("binance-3")), exchange(sim.account("okx-4"))
    last_binance = {s: int(b.fetch_my_trades(s, limit=1)[-1]["id"]) for s in DIALECT_SYMBOLS["binance"]}
    last_bill = o.fetch_my_trades(None, None, 1)[-1]["info"]["billId"]

    added_b, added_o = sim.add_fills("binance-3", 7), sim.add_fills("okx-4", 7)
    assert len(added_b) == len(added_o) == 7

    new_b = [t for s, last in last_binance.items() for t in b.fetch_my_trades(s, params={"fromId": last + 1})]
    assert sorted(map(fill_view, new_b)) == sorted(map(fill_view, added_b))
    new_o = o.fetch_my_trades(None, None, 100, {"before": last_bill})
    assert sorted(map(fill_view, new_o)) == sorted(map(fill_view, added_o))
    assert_balances(b.fetch_balance(), sim.truth("binance-3").balances)
    assert_balances(o.fetch_balance(), sim.truth("okx-4").balances)


# --- async ccxt ------------------------------------------------------------------------

def test_async_exchanges_concurrently(sim: Simulator) -> None:
    sim.faults.set(latency_ms=50)

    async def run(account_id: str) -> tuple[dict, list, list]:
        account = sim.account(account_id)
        ex = build_async_exchange(ConnectionSpec(account.dialect, account.credentials(), api_url=account.api_url))
        try:
            balance, trades, tickers = await asyncio.gather(
                ex.fetch_balance(), ex.fetch_my_trades("BTC/USDT", limit=5), ex.fetch_tickers())
            return balance, trades, list(tickers)
        finally:
            await ex.close()

    async def main() -> list:
        return await asyncio.gather(*(run(a) for a in ids))

    ids = ("binance-1", "okx-2", "binance-3", "okx-4")
    for account_id, (balance, trades, tickers) in zip(ids, asyncio.run(main()), strict=True):
        truth = sim.truth(account_id)
        assert_balances(balance, truth.balances)
        btc = [f for f in truth.fills if f["symbol"] == "BTC/USDT"][-5:]
        assert sorted(map(fill_view, trades)) == sorted(map(fill_view, btc))
        assert "BTC/USDT" in tickers


# --- control endpoints and CLI ---------------------------------------------------------

def test_control_endpoints(sim: Simulator) -> None:
    with urllib.request.urlopen(sim.url + "/_sim/accounts") as answer:
        accounts = json.load(answer)
    assert [a["id"] for a in accounts] == [a.id for a in sim.accounts]
    assert accounts[1]["password"] == sim.account("okx-2").password
    with urllib.request.urlopen(sim.url + "/_sim/truth/okx-2") as answer:
        truth = json.load(answer)
    assert truth["balances"] == sim.truth("okx-2").balances
    assert is_loopback("127.0.0.1") and is_loopback("::1")
    assert not is_loopback("10.1.2.3") and not is_loopback(None)


def test_cli_prints_url_without_secrets() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "lib.simulator", "--port", "0", "--accounts", "2", "--fills-per-account", "50"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line.split()[line.split().index("listening") + 2] if "listening" in line else ""
        assert url.startswith("http://127.0.0.1:") and "/_sim/accounts" in line
        with urllib.request.urlopen(url + "/_sim/accounts") as answer:
            accounts = json.load(answer)
        assert len(accounts) == 2 and accounts[0]["secret"] not in line
    finally:
        proc.terminate()
        proc.wait(timeout=10)
