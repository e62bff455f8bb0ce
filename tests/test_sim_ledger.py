"""The account ledger of the OKX, Bybit and crypto.com dialects through ccxt's unified fetch_ledger.

Each ledger is walked in windows the exchange allows, with explicit bounds on every call, and
compared entry by entry with the ground truth (``GroundTruth.ledger``); the entries add up to the
balance change the history implies (a scenario account, so part of it sits in the funding account);
limits and window rules answer as the exchanges document them.

What ccxt 4.5.90 sends (so what a walk must pass itself):
- OKX: ``since`` is never sent (ccxt filters after the fact): the lower bound is ``begin``; ``until``
  becomes ``end``; ``instType=SPOT`` is always sent (the simulator lets transfer bills through it);
  the 3-month archive is ``method: privateGetAccountBillsArchive``; amounts come signed.
- Bybit: ``since`` becomes ``startTime`` but ``until`` is not translated: the upper bound is ``endTime``.
- crypto.com: ``since`` and ``until`` become ``start_time`` and ``end_time``; ccxt's ``id`` is the
  order id.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import ccxt
import pytest

from lib.exchanges import ConnectionSpec, build_exchange
from lib.simulator import GroundTruth, Simulator, SimulatorConfig
from lib.simulator.bybit import RETENTION_MS as BYBIT_RETENTION_MS
from lib.simulator.cryptocom import NS_PER_MS
from lib.simulator.market import DAY_MS, SATS
from lib.simulator.okx import ASSET_BILLS_RETENTION_MS, BILLS_RETENTION_MS

pytestmark = pytest.mark.timeout(180)

WEEK_MS = 7 * DAY_MS
CONFIG = SimulatorConfig(seed=7, accounts=3, days=60, fills_per_account=300,
                         dialects=("okx", "bybit", "cryptocom"), scenarios=True)
#: OKX trading bills of the last 3 months
OKX_ARCHIVE = {"method": "privateGetAccountBillsArchive"}


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(CONFIG) as simulator:
        yield simulator


def exchange(account: Any) -> Any:
    """A real ccxt exchange for ``account`` that keeps the last JSON answer (rows as sent)."""
    ex = build_exchange(ConnectionSpec(account.dialect, account.credentials(), api_url=account.api_url,
                                       timeout_ms=3000))
    ex.enableRateLimit = False
    ex.enableLastJsonResponse = True
    return ex


def account_of(sim: Simulator, dialect: str) -> Any:
    return next(a for a in sim.accounts if a.dialect == dialect)


def view(entry: dict[str, Any]) -> tuple:
    """The fields the truth pins down; ccxt.okx reports amounts signed, the others absolute."""
    return (entry["id"], entry["currency"], abs(entry["amount"]), entry["direction"], entry["type"],
            entry["timestamp"], entry["referenceId"])


def net(entries: list[dict[str, Any]]) -> dict[str, float]:
    """In minus out per currency."""
    total: dict[str, float] = defaultdict(float)
    for e in entries:
        total[e["currency"]] += abs(e["amount"]) * (1 if e["direction"] == "in" else -1)
    return total


def implied_change(truth: GroundTruth) -> dict[str, float]:
    """What deposits, withdrawals and fills say the account gained, per currency."""
    total: dict[str, float] = defaultdict(float)
    for d in truth.deposits:
        if d["status"] == "ok":
            total[d["currency"]] += d["amount"]
    for w in truth.withdrawals:
        total[w["currency"]] -= w["amount"] + w["fee"]["cost"]
    for f in truth.fills:
        base, quote = f["symbol"].split("/")
        sign = 1 if f["side"] == "buy" else -1
        total[base] += sign * f["amount"]
        total[quote] -= sign * f["cost"]
        total[f["fee"]["currency"]] -= f["fee"]["cost"]
    return total


def assert_adds_up(entries: list[dict[str, Any]], truth: GroundTruth) -> None:
    """The ledger explains the history, and so what the trading and funding accounts hold together."""
    got, implied = net(entries), implied_change(truth)
    held: dict[str, float] = defaultdict(float)
    for balances in truth.balances_by_type.values():
        for asset, row in balances.items():
            held[asset] += row["total"]
    for asset in set(got) | set(implied) | set(held):
        assert got[asset] == pytest.approx(implied[asset], rel=1e-9, abs=1e-8), asset
        assert got[asset] == pytest.approx(held[asset], rel=1e-9, abs=1e-8), asset


def windows(start: int, stop: int, span: int) -> Iterator[tuple[int, int]]:
    """[lo, hi] inclusive windows of ``span`` ms from ``start`` until ``stop`` is covered."""
    for lo in range(start, stop + 1, span):
        yield lo, lo + span - 1


# --- OKX -------------------------------------------------------------------------------

def walk_okx_bills(ex: Any, start: int, stop: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    """Every trading bill in [start, stop]: 10-day windows (OKX names no longest span) bounded
    by ``begin``/``until``, each paged by billId with ``after``."""
    got: list[dict[str, Any]] = []
    full_pages = 0
    for lo, hi in windows(start, stop, 10 * DAY_MS):
        params: dict[str, Any] = {**OKX_ARCHIVE, "begin": lo, "until": hi}
        while True:
            page = ex.fetch_ledger(None, lo, limit, params)
            rows = ex.last_json_response["data"]
            ids = [int(r["billId"]) for r in rows]
            assert len(rows) <= limit and ids == sorted(ids, reverse=True)  # newest first
            assert all(lo <= int(r["ts"]) <= hi for r in rows)
            got += page
            if len(rows) < limit:
                break
            full_pages += 1
            params = {**params, "after": rows[-1]["billId"]}
    return got, full_pages


def test_okx_bills_equal_truth_and_add_up(sim: Simulator) -> None:
    account = account_of(sim, "okx")
    ex = exchange(account)
    now = ex.milliseconds()
    got, full_pages = walk_okx_bills(ex, sim.world.start_ms - DAY_MS, now, 100)
    truth = sim.truth(account.id)
    assert full_pages and len(got) == len({e["id"] for e in got})
    assert {e["id"] for e in got} == {e["id"] for e in truth.ledger}
    assert sorted(map(view, got)) == sorted(map(view, truth.ledger))
    assert {e["type"] for e in got} == {"trade", "transfer"}
    assert_adds_up(got, truth)
    fills = [e for e in got if e["type"] == "trade"]
    assert len(fills) == 2 * len(truth.fills)  # base and quote, the fee inside the leg it is charged in
    assert all(float(e["info"]["balChg"]) == pytest.approx(float(e["info"]["sz"]) * (1 if e["direction"] == "in"
                                                                                     else -1) + float(e["info"]["fee"]))
               for e in fills)


def test_okx_default_call_7_days_and_limit(sim: Simulator) -> None:
    """ccxt's default reads account/bills (instType=SPOT): the bills of the last 7 days only."""
    account = account_of(sim, "okx")
    ex = exchange(account)
    before_call = ex.milliseconds()
    start = sim.world.start_ms
    got: list[dict[str, Any]] = []
    params: dict[str, Any] = {"begin": start, "until": before_call + 60_000}
    while True:
        page = ex.fetch_ledger(None, None, 100, params)
        got += page
        if len(page) < 100:
            break
        params = {**params, "after": min(e["id"] for e in page)}
    truth = sim.truth(account.id).ledger
    recent = [e for e in truth if e["timestamp"] >= ex.milliseconds() - BILLS_RETENTION_MS]
    assert recent and any(e["timestamp"] < before_call - BILLS_RETENTION_MS for e in truth)
    assert ex.last_request_url.count("instType=SPOT") == 1
    assert all(e["timestamp"] >= before_call - BILLS_RETENTION_MS for e in got)
    assert {e["id"] for e in recent} <= {e["id"] for e in got}
    with pytest.raises(ccxt.BadRequest, match="51000"):
        ex.fetch_ledger(None, None, 101, OKX_ARCHIVE)
    assert len(ex.fetch_ledger(None, None, None, {**OKX_ARCHIVE, "begin": start})) == 100  # the default


def test_okx_asset_bills_one_month(sim: Simulator) -> None:
    """The funding account's bills (deposits, withdrawals and their fees, transfers to and from
    trading) page by time: a page cut inside one millisecond is overlapped and deduplicated."""
    account = account_of(sim, "okx")
    ex = exchange(account)
    now = ex.milliseconds()
    lo, limit = now - ASSET_BILLS_RETENTION_MS + DAY_MS, 5
    got: dict[str, dict[str, Any]] = {}
    params: dict[str, Any] = {"method": "privateGetAssetBills", "before": lo - 1, "after": now + 1}
    while True:
        page = ex.fetch_ledger(None, lo, limit, params)
        rows = ex.last_json_response["data"]
        stamps = [int(r["ts"]) for r in rows]
        assert len(rows) <= limit and stamps == sorted(stamps, reverse=True)
        new = {e["id"]: e for e in page if e["id"] not in got}
        got.update(new)
        if len(rows) < limit:
            break
        assert new, "a full page must bring something new"
        params = {**params, "after": stamps[-1] + 1}  # the oldest millisecond again: it may go on
    funding = [e for e in sim.truth(account.id).ledger_by_type["funding"] if e["timestamp"] >= lo]
    assert len(funding) > limit
    assert sorted(map(view, got.values())) == sorted(map(view, funding))
    assert {e["info"]["type"] for e in got.values()} <= {"1", "2", "130", "131", "221"}
    # ccxt reads asset bill types with the trading account's table: a deposit is a "transfer",
    # a withdrawal a "trade"
    assert {(e["info"]["type"], e["type"]) for e in got.values()} & {("1", "transfer"), ("2", "trade")}
    older = [e for e in sim.truth(account.id).ledger_by_type["funding"]
             if e["timestamp"] < now - ASSET_BILLS_RETENTION_MS - DAY_MS]
    oldest_kept = ex.fetch_ledger(None, None, 100, {"method": "privateGetAssetBills", "before": 0})
    assert older and oldest_kept and min(e["timestamp"] for e in oldest_kept) >= now - ASSET_BILLS_RETENTION_MS
    with pytest.raises(ccxt.BadRequest, match="51000"):
        ex.fetch_ledger(None, None, 101, {"method": "privateGetAssetBills"})


# --- Bybit -----------------------------------------------------------------------------

def test_bybit_log_equals_truth_and_adds_up(sim: Simulator) -> None:
    account = account_of(sim, "bybit")
    ex = exchange(account)
    now, limit = ex.milliseconds(), 50
    got: list[dict[str, Any]] = []
    full_pages = 0
    for lo, hi in windows(sim.world.start_ms - DAY_MS, now, WEEK_MS):
        params: dict[str, Any] = {"endTime": hi}
        while True:
            page = ex.fetch_ledger(None, lo, limit, params)
            result = ex.last_json_response["result"]
            stamps = [int(r["transactionTime"]) for r in result["list"]]
            assert len(stamps) <= limit and stamps == sorted(stamps, reverse=True)
            assert all(lo <= s <= hi for s in stamps)
            got += page
            if not result["nextPageCursor"]:
                break
            full_pages += 1
            params = {"endTime": hi, "cursor": result["nextPageCursor"]}
    truth = sim.truth(account.id)
    assert full_pages and len(got) == len({e["id"] for e in got})
    assert {e["id"] for e in got} == {e["id"] for e in truth.ledger}
    assert sorted(map(view, got)) == sorted(map(view, truth.ledger))
    assert {e["type"] for e in got} == {"trade", "transaction"}
    assert {e["info"]["type"] for e in got} == {"TRADE", "TRANSFER_IN", "TRANSFER_OUT"}
    assert_adds_up(got, truth)


def test_bybit_window_and_limit_rules(sim: Simulator) -> None:
    account = account_of(sim, "bybit")
    ex = exchange(account)
    truth = sim.truth(account.id).ledger
    start = sim.world.start_ms
    with pytest.raises(ccxt.BadRequest, match="10001"):
        ex.fetch_ledger(None, start, None, {"endTime": start + WEEK_MS + 1})
    assert isinstance(ex.fetch_ledger(None, start, None, {"endTime": start + WEEK_MS}), list)  # 7 days is fine
    with pytest.raises(ccxt.BadRequest, match="10001"):
        ex.fetch_ledger(None, start, 51, {"endTime": start + DAY_MS})

    def served(since: int | None, params: dict[str, Any]) -> set[str]:
        """Every id of the window that ``since`` and ``params`` ask for, by cursor."""
        ids: set[str] = set()
        while True:
            ids |= {e["id"] for e in ex.fetch_ledger(None, since, 50, params)}
            cursor = ex.last_json_response["result"]["nextPageCursor"]
            if not cursor:
                return ids
            params = {**params, "cursor": cursor}

    busy = max(range(start, sim.world.anchor_ms - DAY_MS, DAY_MS),
               key=lambda d: sum(d <= e["timestamp"] <= d + DAY_MS for e in truth))
    one_day = {e["id"] for e in truth if busy <= e["timestamp"] <= busy + DAY_MS}
    assert len(one_day) > 20
    # only since (ccxt's until is not sent): since .. since + 24 hours
    assert served(busy, {"until": busy + WEEK_MS}) == one_day
    assert served(None, {"endTime": busy + DAY_MS}) == one_day  # only endTime: the 24 hours before it
    ex.fetch_ledger(None, busy, None, {"endTime": busy + DAY_MS})
    assert len(ex.last_json_response["result"]["list"]) == 20  # the documented default
    before = ex.milliseconds()
    sim.world.trade(account.id, "BTC/USDT", True, 0.01)
    latest = served(None, {})  # no bounds: the last 24 hours
    after = sim.truth(account.id).ledger
    assert {e["id"] for e in after if e["timestamp"] >= ex.milliseconds() - DAY_MS} <= latest
    assert latest <= {e["id"] for e in after if e["timestamp"] >= before - DAY_MS}
    assert len(after) == len(truth) + 2


def test_bybit_two_years_back() -> None:
    config = SimulatorConfig(seed=19, accounts=1, days=740, fills_per_account=40, dialects=("bybit",))
    with Simulator(config) as old:
        account = old.account("bybit-1")
        ex = exchange(account)
        truth = old.truth(account.id).ledger
        cutoff = ex.milliseconds() - BYBIT_RETENTION_MS
        gone = [e for e in truth if e["timestamp"] < cutoff - WEEK_MS]
        kept = [e for e in truth if cutoff + DAY_MS <= e["timestamp"] < old.world.anchor_ms - DAY_MS]
        assert gone and kept
        first, last = gone[0]["timestamp"], kept[0]["timestamp"]
        assert ex.fetch_ledger(None, first, 50, {"endTime": first + DAY_MS}) == []
        assert kept[0]["id"] in {e["id"] for e in ex.fetch_ledger(None, last, 50, {"endTime": last + DAY_MS})}


# --- crypto.com ------------------------------------------------------------------------

def test_cryptocom_transactions_equal_truth_and_add_up(sim: Simulator) -> None:
    """7-day windows (the docs name no longest one), each paged back by its exclusive end_time in ns."""
    account = account_of(sim, "cryptocom")
    ex = exchange(account)
    now, limit = ex.milliseconds(), 100
    got: list[dict[str, Any]] = []
    journal: list[str] = []
    full_pages = 0
    for lo, hi in windows(sim.world.start_ms - DAY_MS, now, WEEK_MS):
        params: dict[str, Any] = {"until": hi + 1}
        while True:
            page = ex.fetch_ledger(None, lo, limit, params)
            rows = ex.last_json_response["result"]["data"]
            stamps = [int(r["event_timestamp_ns"]) for r in rows]
            assert len(rows) <= limit and stamps == sorted(stamps, reverse=True)
            assert all(lo * NS_PER_MS <= s < (hi + 1) * NS_PER_MS for s in stamps)
            got += page
            journal += [r["journal_id"] for r in rows]
            if len(rows) < limit:
                break
            full_pages += 1
            params = {"end_time": str(stamps[-1])}
    truth = sim.truth(account.id)
    assert full_pages and len(journal) == len(set(journal)) == len(got)
    # ccxt's id is the order id: a fill's entries share it, a transfer's is None
    assert Counter(e["id"] for e in got) == Counter(e["id"] for e in truth.ledger)
    assert sorted(map(view, got), key=repr) == sorted(map(view, truth.ledger), key=repr)
    assert {e["type"] for e in got} == {"trade", "fee", "ONCHAIN_DEPOSIT", "ONCHAIN_WITHDRAWAL"}
    assert_adds_up(got, truth)
    with pytest.raises(ccxt.BadRequest, match="40004"):
        ex.fetch_ledger(None, None, 0)
    ex.fetch_ledger(None, sim.world.start_ms, 500, {"until": now})  # more than 100: served as 100
    assert len(ex.last_json_response["result"]["data"]) == 100


# --- the truth itself ----------------------------------------------------------------------

def test_truth_ledger_follows_live_changes() -> None:
    """A pending deposit is booked once credited (at its own time); new fills book at once;
    every dialect's truth still adds up to what the history implies."""
    config = SimulatorConfig(seed=23, accounts=3, days=10, fills_per_account=60,
                             dialects=("okx", "bybit", "cryptocom"))
    with Simulator(config) as live:
        for account in live.accounts:
            before = live.truth(account.id).ledger
            deposit = live.add_transfer(account.id, "deposit", "USDT", 125.0, pending=True)
            assert live.truth(account.id).ledger == before
            live.complete_transfer(account.id, deposit["id"])
            added = live.add_fills(account.id, 3)
            truth = live.truth(account.id)
            credited = [e for e in truth.ledger if e["timestamp"] == deposit["timestamp"]
                        and e["amount"] == 125.0 and e["currency"] == "USDT"]
            assert len(credited) == 1 and credited[0]["direction"] == "in"
            fee_apart = account.dialect == "cryptocom"  # its own entry there, netted in a leg elsewhere
            legs = sum(2 + (fee_apart and f["fee"]["cost"] > 0) for f in added)
            assert len(truth.ledger) == len(before) + 1 + legs
            assert_adds_up(truth.ledger, truth)
            if account.dialect == "cryptocom":
                continue
            ex = exchange(account)
            since = deposit["timestamp"]
            params = {**OKX_ARCHIVE, "begin": since} if account.dialect == "okx" else {"endTime": ex.milliseconds()}
            recent = ex.fetch_ledger(None, since, 50, params)
            assert {e["id"] for e in recent} == {e["id"] for e in truth.ledger if e["timestamp"] >= since}
            # the balance after the newest entry of a currency (OKX "bal", Bybit "cashBalance") is what
            # the account holds: nothing was moved to funding here
            newest = {e["currency"]: e for e in sorted(recent, key=lambda e: int(e["id"]))}
            assert {c: e["after"] for c, e in newest.items()} == {c: truth.balances[c]["total"] for c in newest}
            if account.dialect == "okx":  # the funding account passes each deposit on to trading
                assert net(truth.ledger_by_type["funding"])["USDT"] == pytest.approx(0.0, abs=1 / SATS)
