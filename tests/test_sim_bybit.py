"""The simulator's Bybit v5 dialect against the real, unmodified ccxt.bybit classes.

Exchanges are built by ``lib.exchanges`` with only the API URL pointed at the simulator;
every answer is compared with the simulator's ground truth, and the documented window,
page and error rules are checked through ccxt.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import ccxt
import pytest

from lib.exchanges import ConnectionSpec, build_async_exchange
from lib.simulator import Simulator, SimulatorConfig
from lib.simulator.market import DAY_MS, LISTED_SYMBOLS, SATS
from tests.sim_helpers import exchange, fill_view, loaded, no_faults  # noqa: F401 - no_faults is autouse

pytestmark = pytest.mark.timeout(120)

WEEK_MS = 7 * DAY_MS
SPOT = {"type": "spot"}


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    """bybit-1 for reading (about 140 fills a week, so 100-row pages fill up); bybit-2 for changes."""
    config = SimulatorConfig(seed=21, accounts=2, days=30, fills_per_account=600, dialects=("bybit",))
    with Simulator(config) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def bybit(sim: Simulator) -> Any:
    return loaded(sim, "bybit-1")


def order_view(order: dict[str, Any]) -> tuple:
    return (order["id"], order["symbol"], order["side"], order["price"], order["amount"], order["filled"],
            order["status"], order["cost"], order["timestamp"])


def transfer_view(t: dict[str, Any]) -> tuple:
    return (t["id"], t["txid"], t["currency"], t["amount"], t["timestamp"], t["status"], t["type"])


def walk_window(fetch: Callable[[int, int], list[dict[str, Any]]], since: int, until: int, limit: int) -> dict:
    """Everything in [since, until]: a full page narrows ``until`` to its oldest row (rows that
    share that millisecond come again and are deduplicated by id)."""
    got: dict[str, dict[str, Any]] = {}
    end = until
    while True:
        page = fetch(since, end)
        assert len(page) <= limit
        got.update((row["id"], row) for row in page)
        if len(page) < limit:
            return got
        oldest = min(row["timestamp"] for row in page)
        assert since <= oldest < end, "a full page must move the window"
        end = oldest


def cursor_pages(call: Callable[[dict[str, str]], list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
    """Follow ``nextPageCursor`` to the last page; ccxt copies it into the info of the answer's
    first row, which its sort by time may move."""
    pages, params = [], {}
    while True:
        page = call(params)
        pages.append(page)
        cursor = next((row["info"]["nextPageCursor"] for row in page if "nextPageCursor" in row["info"]), None)
        if not cursor:
            return pages
        params = {"cursor": cursor}


def assert_balances(balance: dict[str, Any], truth: dict[str, dict[str, float]]) -> None:
    held = {asset for asset, row in truth.items() if row["total"]}
    assert held, "an account without funds proves nothing"
    for asset in held:
        assert {key: balance[asset][key] for key in ("free", "used", "total")} == truth[asset], asset
    assert not {a for a, v in balance["total"].items() if v} - held


# --- authentication and faults ---------------------------------------------------------

def test_wrong_credentials_raise_authentication_error(sim: Simulator) -> None:
    account = sim.account("bybit-1")
    with pytest.raises(ccxt.AuthenticationError, match="10004"):
        exchange(account, secret=account.secret[::-1]).fetch_balance()
    with pytest.raises(ccxt.AuthenticationError, match="10003"):
        exchange(account, apiKey="0" * 64).fetch_balance()
    skewed = exchange(account)
    skewed.options["timeDifference"] = 60_000
    with pytest.raises(ccxt.InvalidNonce, match="10002"):
        skewed.fetch_balance()


def test_revoked_key_raises_authentication_error(sim: Simulator) -> None:
    ex = exchange(sim.account("bybit-2"))
    assert ex.fetch_balance()["total"]
    sim.revoke("bybit-2")
    try:
        with pytest.raises(ccxt.AuthenticationError, match="10003"):
            ex.fetch_my_trades("BTC/USDT")
    finally:
        sim.world.revoked.discard("bybit-2")


def test_injected_faults_map_to_ccxt_errors(sim: Simulator, bybit: Any) -> None:
    cases = [("429", ccxt.RateLimitExceeded, "10006"), ("denied", ccxt.PermissionDenied, "10005"),
             ("5xx", ccxt.ExchangeError, "10016")]
    for kind, error, code in cases:
        sim.faults.set(rate=1.0, kinds=(kind,), account_id="bybit-1")
        with pytest.raises(error, match=code):
            bybit.fetch_my_trades("BTC/USDT")
        if kind == "429":  # Bybit sends no Retry-After, only its limit headers
            assert bybit.last_response_headers["X-Bapi-Limit-Status"] == "0"
            assert "Retry-After" not in bybit.last_response_headers
        sim.faults.clear()
    assert bybit.fetch_my_trades("BTC/USDT", limit=1)


# --- trades ----------------------------------------------------------------------------

def test_every_fill_once_in_7_day_windows(sim: Simulator, bybit: Any) -> None:
    truth = sim.truth("bybit-1").fills
    limit, got, full_pages = 40, {}, 0
    for since in range(sim.world.start_ms, sim.world.anchor_ms, WEEK_MS):
        def fetch(start: int, end: int) -> list[dict[str, Any]]:
            nonlocal full_pages
            page = bybit.fetch_my_trades(None, start, limit, {**SPOT, "until": end})
            full_pages += len(page) == limit
            return page
        got.update(walk_window(fetch, since, since + WEEK_MS - 1, limit))
    assert full_pages  # some windows held more than a page, so narrowing was needed
    assert sorted(map(fill_view, got.values())) == sorted(map(fill_view, truth))


def test_window_rules(sim: Simulator, bybit: Any) -> None:
    start = sim.world.start_ms
    assert len(bybit.fetch_my_trades(None, start, 100, {**SPOT, "until": start + WEEK_MS})) <= 100
    with pytest.raises(ccxt.BadRequest, match="10001"):
        bybit.fetch_my_trades(None, start, None, {**SPOT, "until": start + 8 * DAY_MS})
    with pytest.raises(ccxt.BadRequest, match="10001"):
        bybit.fetch_closed_orders(None, start, None, {**SPOT, "until": start + 8 * DAY_MS})
    with pytest.raises(ccxt.BadRequest, match="10001"):
        bybit.fetch_my_trades(None, None, 101, SPOT)
    # only since: since .. since + 7 days
    only_since = bybit.fetch_my_trades(None, start, 100, SPOT)
    assert only_since and all(start <= t["timestamp"] <= start + WEEK_MS for t in only_since)


def test_without_start_and_end_only_the_last_7_days(sim: Simulator, bybit: Any) -> None:
    truth = sim.truth("bybit-1").fills
    before = bybit.milliseconds()
    pages = cursor_pages(lambda params: bybit.fetch_my_trades(None, None, 100, {**SPOT, **params}))
    after = bybit.milliseconds()
    got = {t["id"] for page in pages for t in page}
    surely = {f["id"] for f in truth if f["timestamp"] >= after - WEEK_MS}
    maybe = {f["id"] for f in truth if f["timestamp"] >= before - WEEK_MS}
    assert surely and surely <= got <= maybe
    assert any(f["timestamp"] < before - WEEK_MS - DAY_MS for f in truth)


def test_pages_newest_first_at_most_100_and_cursor_walks_a_window(sim: Simulator, bybit: Any) -> None:
    since, until = sim.world.anchor_ms - WEEK_MS, sim.world.anchor_ms - 1
    in_window = [f for f in sim.truth("bybit-1").fills if since <= f["timestamp"] <= until]
    assert len(in_window) > 100

    raw: list[list[dict[str, Any]]] = []

    def page(params: dict[str, str]) -> list[dict[str, Any]]:
        trades = bybit.fetch_my_trades(None, since, 100, {**SPOT, "until": until, **params})
        raw.append(json.loads(bybit.last_http_response)["result"]["list"])
        return trades

    pages = cursor_pages(page)
    assert len(pages) >= 2 and all(len(p) <= 100 for p in pages) and len(pages[0]) == 100
    rows = [row for chunk in raw for row in chunk]
    times = [int(row["execTime"]) for row in rows]
    assert times == sorted(times, reverse=True)
    assert sorted(row["execId"] for row in rows) == sorted(f["id"] for f in in_window)
    bybit.fetch_my_trades(None, since, None, {**SPOT, "until": until})
    assert len(json.loads(bybit.last_http_response)["result"]["list"]) == 50  # the documented default


def test_symbol_filter_and_order_trades(sim: Simulator, bybit: Any) -> None:
    truth = sim.truth("bybit-1").fills
    since = sim.world.anchor_ms - WEEK_MS
    eth_btc = bybit.fetch_my_trades("ETH/BTC", since, 100)
    expected = [f for f in truth if f["symbol"] == "ETH/BTC" and f["timestamp"] >= since]
    assert eth_btc and sorted(map(fill_view, eth_btc)) == sorted(map(fill_view, expected))
    order = truth[-1]["order"]
    assert {t["id"] for t in bybit.fetch_order_trades(order, None, None, None, SPOT)} == {
        f["id"] for f in truth if f["order"] == order}


# --- orders ----------------------------------------------------------------------------

def test_orders_equal_truth(sim: Simulator, bybit: Any) -> None:
    truth = sim.truth("bybit-1")
    limit, got = 50, {}
    for since in range(sim.world.start_ms, sim.world.anchor_ms, WEEK_MS):
        got.update(walk_window(lambda s, e: bybit.fetch_closed_orders(None, s, limit, {**SPOT, "until": e}),
                               since, since + WEEK_MS - 1, limit))
    filled = [o for o in truth.closed_orders if o["status"] == "closed"]
    assert sorted(map(order_view, got.values())) == sorted(map(order_view, filled))
    assert all(o["fee"]["cost"] > 0 for o in got.values())
    assert bybit.fetch_canceled_orders(None, sim.world.start_ms, None, SPOT) == []
    open_orders = bybit.fetch_open_orders(None, None, 50, SPOT)
    assert open_orders and sorted(map(order_view, open_orders)) == sorted(map(order_view, truth.open_orders))
    assert bybit.fetch_open_orders() == []  # ccxt's default category is linear: no contracts here


# --- balances, transfers, market data --------------------------------------------------

def test_unified_and_fund_balances(sim: Simulator) -> None:
    ex = exchange(sim.account("bybit-2"))
    assert_balances(ex.fetch_balance(), sim.truth("bybit-2").balances)
    assert not ex.fetch_balance({"type": "funding"})["total"]
    ledger = sim.world.ledger("bybit-2")
    with ledger.lock:
        moved = ledger.free["USDT"] // 3 // SATS * SATS
        ledger.move_to_funding("USDT", moved)
    funding = ex.fetch_balance({"type": "funding"})
    assert {key: funding["USDT"][key] for key in ("free", "used", "total")} == {
        "free": moved / SATS, "used": 0.0, "total": moved / SATS}
    assert set(funding["total"]) == {"USDT"}
    assert_balances(ex.fetch_balance(), sim.truth("bybit-2").balances)


def test_transfers_equal_truth(sim: Simulator, bybit: Any) -> None:
    truth = sim.truth("bybit-1")
    window = 30 * DAY_MS
    deposits: dict[str, Any] = {}
    withdrawals: dict[str, Any] = {}
    for since in range(sim.world.start_ms - DAY_MS, bybit.milliseconds(), window):
        params = {"until": since + window - 1}
        deposits.update(walk_window(lambda s, e: bybit.fetch_deposits(None, s, 50, {"until": e}),
                                    since, params["until"], 50))
        withdrawals.update((w["id"], w) for w in bybit.fetch_withdrawals(None, since, 50, params))
    assert sorted(map(transfer_view, deposits.values())) == sorted(
        transfer_view({**d, "type": "deposit"}) for d in truth.deposits)
    assert sorted(map(transfer_view, withdrawals.values())) == sorted(
        transfer_view({**w, "type": "withdrawal"}) for w in truth.withdrawals)
    assert sorted((w["id"], w["fee"]["cost"]) for w in withdrawals.values()) == sorted(
        (w["id"], w["fee"]["cost"]) for w in truth.withdrawals)
    start = sim.world.start_ms
    with pytest.raises(ccxt.BadRequest, match="131002"):
        bybit.fetch_deposits(None, start, None, {"until": start + window})
    with pytest.raises(ccxt.BadRequest, match="131002"):
        bybit.fetch_withdrawals(None, start - DAY_MS)  # endTime defaults to now: over 30 days


def test_tickers_and_ohlcv(sim: Simulator, bybit: Any) -> None:
    tickers = bybit.fetch_tickers(params=SPOT)
    assert set(tickers) == set(LISTED_SYMBOLS["bybit"])
    assert bybit.fetch_tickers() == {}  # ccxt's default category is linear
    one = bybit.fetch_ticker("ETH/BTC")
    assert one["low"] <= one["last"] <= one["high"] and one["bid"] < one["ask"]
    since = (bybit.milliseconds() - 3 * DAY_MS) // 3_600_000 * 3_600_000
    candles = bybit.fetch_ohlcv("BTC/USDT", "1h", since=since, limit=24)
    assert [c[0] for c in candles] == [since + i * 3_600_000 for i in range(24)]
    assert all(c[2] >= max(c[1], c[4]) and c[3] <= min(c[1], c[4]) for c in candles)
    weeks = bybit.fetch_ohlcv("BTC/USDT", "1w", limit=2)
    assert len(weeks) == 2 and all(bybit.iso8601(w[0]).endswith("T00:00:00.000Z") for w in weeks)
    assert weeks[-1][0] % WEEK_MS == 4 * DAY_MS  # Monday (the epoch was a Thursday)
    assert abs(bybit.fetch_time() - bybit.milliseconds()) < 5000


def test_async_exchange(sim: Simulator) -> None:
    account = sim.account("bybit-1")

    async def run() -> tuple[dict, list]:
        ex = build_async_exchange(ConnectionSpec("bybit", account.credentials(), api_url=account.api_url))
        try:
            return await asyncio.gather(ex.fetch_balance(), ex.fetch_my_trades("BTC/USDT", limit=5))
        finally:
            await ex.close()

    balance, trades = asyncio.run(run())
    truth = sim.truth(account.id)
    assert_balances(balance, truth.balances)
    btc = [f for f in truth.fills if f["symbol"] == "BTC/USDT"][-5:]
    assert sorted(map(fill_view, trades)) == sorted(map(fill_view, btc))
