"""The simulator's crypto.com Exchange v1 dialect against the real, unmodified ccxt classes.

Exchanges are built by ``lib.exchanges`` with only the API URL pointed at the simulator;
every answer is compared with the simulator's ground truth, and the documented limits
(1-day windows, 100 rows, one ticker instrument, retention) are shown to bite.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import ccxt
import pytest

from lib.exchanges import ConnectionSpec, build_async_exchange, http_status
from lib.simulator import Simulator, SimulatorConfig
from lib.simulator.cryptocom import NS_PER_MS, RETENTION_MS
from lib.simulator.market import DAY_MS, LISTED_SYMBOLS, MARKETS
from tests.sim_helpers import exchange, fill_view, loaded, no_faults  # noqa: F401 - no_faults is autouse

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    """cryptocom-1 is only read; cryptocom-2 gets new fills; cryptocom-3 is revoked."""
    config = SimulatorConfig(seed=13, accounts=3, days=20, fills_per_account=300, dialects=("cryptocom",))
    with Simulator(config) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def cdc(sim: Simulator) -> Any:
    return loaded(sim, "cryptocom-1")


def raw_rows(ex: Any) -> list[dict[str, Any]]:
    """The rows of the last answer as the exchange sent them (ccxt re-sorts oldest first)."""
    return ex.last_json_response["result"]["data"]


def order_view(order: dict[str, Any]) -> tuple:
    return (order["id"], order["symbol"], order["side"], order["price"], order["amount"], order["filled"],
            order["status"], order["timestamp"])


def transfer_view(transfer: dict[str, Any]) -> tuple:
    return (transfer["id"], transfer["txid"], transfer["currency"], transfer["amount"], transfer["timestamp"],
            transfer["status"], transfer["fee"]["cost"])


def walk_days(fetch: Any, ex: Any, start: int, stop: int, limit: int, time_key: str) -> tuple[list[Any], int]:
    """Every record from ``start`` to ``stop`` (ms): 1-day windows, each paged by its end_time.

    Pages after the first pass end_time (ns, as a string) themselves: ccxt's ``until`` goes
    through a float and rounds a nanosecond time by up to +-128 ns.
    """
    got: list[Any] = []
    pages = 0
    for day in range(start, stop, DAY_MS):
        end_ns = (day + DAY_MS) * NS_PER_MS
        params: dict[str, Any] = {"until": day + DAY_MS}
        while True:
            page = fetch(None, day, limit, params)
            rows = raw_rows(ex)
            pages += 1
            stamps = [int(r[time_key]) for r in rows]
            assert len(rows) <= min(limit, 100) and stamps == sorted(stamps, reverse=True)  # newest first
            assert all(day * NS_PER_MS <= s < end_ns for s in stamps)
            got += page
            if len(rows) < limit:
                break
            end_ns = stamps[-1]  # exclusive: the next page ends where this one stopped
            params = {"end_time": str(end_ns)}
    return got, pages


# --- markets and authentication ---------------------------------------------------------

def test_markets_and_currencies(cdc: Any) -> None:
    assert set(cdc.markets) == set(LISTED_SYMBOLS["cryptocom"])
    btc = cdc.market("BTC/USDT")
    assert btc["id"] == "BTC_USDT" and btc["spot"] and btc["precision"]["amount"] == 1e-5
    assert cdc.currencies["BTC"]["networks"]["BTC"]["fee"] == 0.0002


def test_wrong_credentials_raise_authentication_error(sim: Simulator) -> None:
    account = sim.account("cryptocom-1")
    with pytest.raises(ccxt.AuthenticationError, match="40101"):
        exchange(account, secret=account.secret[::-1]).fetch_balance()
    with pytest.raises(ccxt.AuthenticationError, match="40101"):
        exchange(account, apiKey="0" * 64).fetch_balance()
    skewed = exchange(account)
    skewed.load_markets()
    skewed.nonce = lambda: skewed.milliseconds() - 120_000
    with pytest.raises(ccxt.InvalidNonce, match="40102"):
        skewed.fetch_balance()


def test_revoked_key_raises_authentication_error(sim: Simulator) -> None:
    used_before = exchange(sim.account("cryptocom-3"))
    assert used_before.fetch_balance()["total"]
    sim.revoke("cryptocom-3")
    try:
        with pytest.raises(ccxt.AuthenticationError, match="40101"):
            used_before.fetch_balance()
        with pytest.raises(ccxt.AuthenticationError, match="40101"):
            exchange(sim.account("cryptocom-3")).load_markets()
    finally:
        sim.world.revoked.discard("cryptocom-3")


# --- balances, fills and orders ---------------------------------------------------------

def test_balance_equals_truth(sim: Simulator, cdc: Any) -> None:
    truth = sim.truth("cryptocom-1").balances
    balance = cdc.fetch_balance()
    held = {asset for asset, row in truth.items() if row["total"]}
    assert held and {a for a, v in balance["total"].items() if v} == held
    for asset in held:
        assert {k: balance[asset][k] for k in ("free", "used", "total")} == truth[asset], asset


def test_every_fill_once_by_day_windows(sim: Simulator, cdc: Any) -> None:
    truth = sim.truth("cryptocom-1").fills
    world = sim.world
    got, pages = walk_days(cdc.fetch_my_trades, cdc, world.start_ms, world.anchor_ms, 10, "create_time_ns")
    assert pages > world.config.days  # some windows needed more than one page
    assert len(got) == len({t["id"] for t in got}) == len(truth) == 300
    assert sorted(map(fill_view, got)) == sorted(map(fill_view, truth))
    day = world.start_ms + 10 * DAY_MS
    eth = cdc.fetch_my_trades("ETH/USDT", day, 100, {"until": day + DAY_MS})
    assert [t["id"] for t in eth] == [f["id"] for f in truth if f["symbol"] == "ETH/USDT"
                                      and day <= f["timestamp"] < day + DAY_MS]


def test_windows_longer_than_a_day_are_refused(sim: Simulator, cdc: Any) -> None:
    start = sim.world.start_ms
    for fetch in (cdc.fetch_my_trades, cdc.fetch_closed_orders):
        with pytest.raises(ccxt.BadRequest, match="40005"):
            fetch(None, start, None, {"until": start + 2 * DAY_MS})
        with pytest.raises(ccxt.BadRequest, match="40005"):
            fetch(None, start)  # end_time defaults to now: since alone spans weeks
        assert isinstance(fetch(None, start, None, {"until": start + DAY_MS}), list)  # one day is fine


def test_no_start_means_the_last_day_and_pages_are_capped_at_100(sim: Simulator) -> None:
    ex = exchange(sim.account("cryptocom-2"))
    added = sim.add_fills("cryptocom-2", 150)
    assert len({t["timestamp"] for t in added}) == 1  # one millisecond: only ns times page them
    ex.fetch_my_trades(limit=500)
    first = raw_rows(ex)
    assert [r["trade_id"] for r in first] == [t["id"] for t in reversed(added)][:100]
    end = int(first[-1]["create_time_ns"])
    assert ex.safe_integer({"until": end}, "until") != end  # why end_time is passed, not ccxt's until
    ex.fetch_my_trades(params={"end_time": str(end)})  # no start_time: the day before end_time
    second = raw_rows(ex)
    day_start = end // NS_PER_MS - DAY_MS
    served = {r["trade_id"] for r in first}
    truth = sim.truth("cryptocom-2").fills
    expected = [f["id"] for f in reversed(truth) if f["timestamp"] >= day_start and f["id"] not in served]
    assert [r["trade_id"] for r in second] == expected and 50 <= len(second) < 100
    assert any(f["timestamp"] < day_start for f in truth)
    journal_ids: list[str] = []
    traded: set[str] = set()
    params: dict[str, str] = {}
    while True:  # the whole ledger (no longest window) pages through that millisecond as exactly
        entries = ex.fetch_ledger(None, sim.world.start_ms, 100, params)
        rows = raw_rows(ex)
        journal_ids += [r["journal_id"] for r in rows]
        traded |= {e["referenceId"] for e in entries if e["type"] == "trade"}
        if len(rows) < 100:
            break
        params = {"end_time": rows[-1]["event_timestamp_ns"]}
    assert len(journal_ids) == len(set(journal_ids)) > 3 * 300
    assert traded == {f["id"] for f in truth}


def test_history_older_than_retention_is_gone() -> None:
    config = SimulatorConfig(seed=17, accounts=1, days=200, fills_per_account=200, dialects=("cryptocom",))
    with Simulator(config) as old:
        ex = exchange(old.account("cryptocom-1"))
        truth = old.truth("cryptocom-1").fills
        cutoff = ex.milliseconds() - RETENTION_MS
        oldest = truth[0]["timestamp"]
        assert oldest < cutoff - DAY_MS
        assert ex.fetch_my_trades(None, oldest, None, {"until": oldest + DAY_MS}) == []
        recent = next(f["timestamp"] for f in truth if f["timestamp"] > cutoff + DAY_MS)
        got = ex.fetch_my_trades(None, recent, None, {"until": recent + DAY_MS})
        assert [t["id"] for t in got] == [f["id"] for f in truth if recent <= f["timestamp"] < recent + DAY_MS]


def test_orders_equal_truth(sim: Simulator, cdc: Any) -> None:
    truth = sim.truth("cryptocom-1")
    world = sim.world
    closed, pages = walk_days(cdc.fetch_closed_orders, cdc, world.start_ms, world.anchor_ms, 5, "create_time_ns")
    assert pages > world.config.days
    assert sorted(map(order_view, closed)) == sorted(map(order_view, truth.closed_orders))
    costs = {o["id"]: o["cost"] for o in truth.closed_orders}
    assert all(o["cost"] == costs[o["id"]] for o in closed)
    assert {o["info"]["status"] for o in closed} == {"FILLED"}
    assert sorted(map(order_view, cdc.fetch_open_orders())) == sorted(map(order_view, truth.open_orders))


def test_ledger_adds_up_to_the_balances(sim: Simulator, cdc: Any) -> None:
    truth = sim.truth("cryptocom-1")
    since = sim.world.start_ms - DAY_MS
    params: dict[str, str] = {}
    entries: list[dict[str, Any]] = []
    while True:
        page = cdc.fetch_ledger(None, since, 100, params)
        rows = raw_rows(cdc)
        stamps = [int(r["event_timestamp_ns"]) for r in rows]
        assert len(rows) <= 100 and stamps == sorted(stamps, reverse=True) and len(set(stamps)) == len(stamps)
        entries += page
        if len(rows) < 100:
            break
        params = {"end_time": str(stamps[-1])}
    total: dict[str, float] = defaultdict(float)
    for entry in entries:
        total[entry["currency"]] += entry["amount"] * (1 if entry["direction"] == "in" else -1)
    for asset, row in truth.balances.items():
        assert total[asset] == pytest.approx(row["total"], rel=1e-9, abs=1e-8), asset
    assert {e["referenceId"] for e in entries if e["type"] == "trade"} == {f["id"] for f in truth.fills}


# --- deposits and withdrawals ----------------------------------------------------------

def test_transfers_equal_truth(sim: Simulator, cdc: Any) -> None:
    truth = sim.truth("cryptocom-1")
    assert sorted(map(transfer_view, cdc.fetch_deposits())) == sorted(map(transfer_view, truth.deposits))
    assert sorted(map(transfer_view, cdc.fetch_withdrawals())) == sorted(map(transfer_view, truth.withdrawals))
    middle = sim.world.start_ms + 10 * DAY_MS
    early = cdc.fetch_deposits(None, sim.world.start_ms, None, {"until": middle})
    assert [d["id"] for d in early] == [d["id"] for d in truth.deposits if d["timestamp"] < middle]
    newest_first = [d["id"] for d in reversed(truth.deposits)]
    assert [d["id"] for d in cdc.fetch_deposits(None, None, 1, {"page": 1})] == newest_first[1:2]


# --- market data -----------------------------------------------------------------------

def test_tickers_one_instrument_per_call(cdc: Any) -> None:
    ticker = cdc.fetch_ticker("BTC/USDT")
    assert ticker["symbol"] == "BTC/USDT" and ticker["bid"] < ticker["last"] < ticker["ask"]
    assert set(cdc.fetch_tickers()) == set(LISTED_SYMBOLS["cryptocom"])
    with pytest.raises(ccxt.BadRequest):
        cdc.fetch_tickers(["BTC/USDT", "ETH/USDT"])
    with pytest.raises(ccxt.ExchangeError, match="209"):
        cdc.v1PublicGetPublicGetTickers({"instrument_name": "BTC_USDT,ETH_USDT"})


def test_ohlcv_follows_the_price_book(sim: Simulator, cdc: Any) -> None:
    since = (cdc.milliseconds() - 3 * DAY_MS) // 3_600_000 * 3_600_000
    candles = cdc.fetch_ohlcv("BTC/USDT", "1h", since=since, limit=24)
    assert [c[0] for c in candles] == [since + i * 3_600_000 for i in range(24)]
    book = sim.world.book.candles("BTC/USDT", 60, since, 24, cdc.milliseconds())
    tick = MARKETS["BTC/USDT"].tick
    assert [round(c[4] * 10**8 / tick) * tick for c in candles] == [b[4] for b in book]
    recent = cdc.fetch_ohlcv("ETH/BTC", "1d")
    assert recent and recent[-1][0] <= cdc.milliseconds() < recent[-1][0] + DAY_MS


# --- faults and async ------------------------------------------------------------------

def test_injected_faults_map_to_ccxt_errors(sim: Simulator, cdc: Any) -> None:
    """The key is in the JSON body, so faults are scoped by path, not by account."""
    sim.faults.set(rate=1.0, kinds=("5xx",), path="/cryptocom/")
    with pytest.raises(ccxt.ExchangeError, match="50001") as outage:
        cdc.fetch_balance()
    assert not isinstance(outage.value, ccxt.NetworkError) and http_status(outage.value) == 500
    for kind, expected in (("429", ccxt.RateLimitExceeded), ("denied", ccxt.PermissionDenied)):
        sim.faults.set(rate=1.0, kinds=(kind,), path="/cryptocom/")
        with pytest.raises(expected):
            cdc.fetch_balance()
    sim.faults.clear()
    assert cdc.fetch_balance()["total"]


def test_async_exchange(sim: Simulator) -> None:
    account = sim.account("cryptocom-1")

    async def run() -> tuple[dict, list]:
        ex = build_async_exchange(ConnectionSpec("cryptocom", account.credentials(), api_url=account.api_url))
        try:
            day = sim.world.anchor_ms - DAY_MS
            return await asyncio.gather(ex.fetch_balance(), ex.fetch_my_trades(None, day, 100, {"until": day + DAY_MS}))
        finally:
            await ex.close()

    balance, trades = asyncio.run(run())
    truth = sim.truth("cryptocom-1")
    assert balance["total"]["USDT"] == truth.balances["USDT"]["total"]
    day = sim.world.anchor_ms - DAY_MS
    assert [t["id"] for t in trades] == [f["id"] for f in truth.fills if f["timestamp"] >= day]
