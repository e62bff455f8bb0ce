"""History scenarios of the simulator: the hard cases a complete sync must survive.

Each is checked through the ground truth (it exists, the books still balance), then served
to the real ccxt classes: canceled orders with each exchange's own status, and the funding
account as ``fetch_balance({'type': 'funding'})`` reads it.
"""

from __future__ import annotations

import hashlib
import json
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import pytest

from lib.exchanges import ConnectionSpec, build_exchange
from lib.simulator import GroundTruth, Simulator, SimulatorConfig, futures
from lib.simulator.__main__ import parse_args
from lib.simulator.accounts import DIALECTS, World
from lib.simulator.history import FUNDING_DIALECTS
from lib.simulator.market import DAY_MS
from lib.simulator.protocol import Call
from lib.simulator.server import DIALECT_MODULES

pytestmark = pytest.mark.timeout(120)

#: 2026-01-01 00:00 UTC: a fixed end, so generated worlds are comparable across runs
ANCHOR = 1_767_225_600_000
#: sha256 of the seed-1 truths measured before scenarios existed (see ``truth_digest``)
SEED1_DEFAULT_DIGEST = "11e309cc7be32efc8d310af4625830460890dfe3e922c7ae6723a8346fd2d103"
SEED1_ALL_DIALECTS_DIGEST = "334dc9cdc77a0bfb0e0beb42d5112b8f4ef835a23ff075215b064780c66790c3"
#: spot wallets; a futures account's truth (realised P&L, margin) is tested in tests/test_plugin_bitunix.py
SPOT_DIALECTS = [d for d in DIALECTS if d not in futures.FUTURES_DIALECTS]
CONFIG = SimulatorConfig(seed=3, accounts=len(DIALECTS), days=60, fills_per_account=300, dialects=DIALECTS,
                         scenarios=True)


def truth_digest(world: World) -> str:
    """One hash over every account's balances, fills, orders, transfers and positions."""
    digest = hashlib.sha256()
    for account in world.accounts:
        truth = world.truth(account.id)
        parts = ("balances", "fills", "open_orders", "closed_orders", "deposits", "withdrawals", "positions")
        digest.update(json.dumps({k: getattr(truth, k) for k in parts}, sort_keys=True).encode())
    return digest.hexdigest()


def has_real_handle(dialect: str) -> bool:
    """False while a dialect module is still the placeholder that answers "not implemented"."""
    world = World(SimulatorConfig(accounts=1, days=1, anchor_ms=ANCHOR))
    probe = Call(world, "GET", "/__probe__", "/__probe__", "", {}, {}, "", ANCHOR)
    return DIALECT_MODULES[dialect].handle(probe).payload != {"code": 404, "msg": "not implemented"}


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(CONFIG) as simulator:
        yield simulator


def account_of(sim: Simulator, dialect: str) -> Any:
    return next(a for a in sim.accounts if a.dialect == dialect)


def exchange(account: Any) -> Any:
    ex = build_exchange(ConnectionSpec(account.dialect, account.credentials(), api_url=account.api_url,
                                       timeout_ms=3000))
    ex.enableRateLimit = False
    return ex


def events(truth: GroundTruth) -> list[int]:
    """Every fill and transfer time, in order."""
    return sorted([f["timestamp"] for f in truth.fills] + [t["timestamp"] for t in truth.deposits + truth.withdrawals])


def longest_quiet(truth: GroundTruth) -> int:
    times = events(truth)
    return max(b - a for a, b in zip(times, times[1:], strict=False))


def implied_totals(truth: GroundTruth) -> dict[str, float]:
    """What the history says each asset's total (all account types) must be."""
    total: dict[str, float] = defaultdict(float)
    for d in truth.deposits:
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


# --- the scenarios exist, in every dialect ------------------------------------------------

@pytest.mark.parametrize("dialect", SPOT_DIALECTS)
def test_every_scenario_is_in_the_truth(sim: Simulator, dialect: str) -> None:
    truth = sim.truth(account_of(sim, dialect).id)
    start, anchor = sim.world.start_ms, sim.world.anchor_ms
    times = events(truth)
    assert start <= times[0] and times[-1] < anchor

    # a quiet gap longer than 10 days (and than a 7-day window) between two events
    assert longest_quiet(truth) >= 10 * DAY_MS

    # bursts: fills sharing one exact millisecond, at least 5 of them, more than once
    per_ms = Counter(f["timestamp"] for f in truth.fills)
    assert sum(1 for n in per_ms.values() if n >= 5) >= 3

    # fills exactly on UTC midnights, on several days, two of them exactly 7 days apart
    midnights = {f["timestamp"] for f in truth.fills if f["timestamp"] % DAY_MS == 0}
    assert len(midnights) >= 3
    assert any(m + 7 * DAY_MS in midnights for m in midnights)
    assert any(per_ms[m] >= 5 for m in midnights)  # a burst right on a window bound

    # the client token: deposited, traded both ways, gone by the end
    tkn_fills = [f for f in truth.fills if f["symbol"] == "TKN/USDT"]
    assert {f["side"] for f in tkn_fills} == {"buy", "sell"}
    assert [d["currency"] for d in truth.deposits].count("TKN") == 1
    assert [w["currency"] for w in truth.withdrawals].count("TKN") == 1
    assert truth.balances["TKN"]["total"] == 0 and "TKN" not in truth.balances_by_type.get("funding", {})
    assert max(f["timestamp"] for f in tkn_fills) < anchor - DAY_MS

    # canceled orders, some partly filled and some not at all; none holds anything
    canceled = [o for o in truth.closed_orders if o["status"] == "canceled"]
    assert any(o["filled"] > 0 for o in canceled) and any(o["filled"] == 0 for o in canceled)
    assert all(o["remaining"] > 0 for o in canceled)
    assert not {o["id"] for o in canceled} & {o["id"] for o in truth.open_orders}
    filled_by_order = Counter()
    for f in truth.fills:
        filled_by_order[f["order"]] += f["amount"]
    assert all(filled_by_order[o["id"]] == pytest.approx(o["filled"]) for o in canceled)

    # a second account type, where the exchange has one (crypto.com Exchange v1 has one wallet)
    assert truth.balances_by_type["trading"] == truth.balances
    assert bool(truth.balances_by_type.get("funding")) == (dialect in FUNDING_DIALECTS)


@pytest.mark.parametrize("dialect", SPOT_DIALECTS)
def test_balances_are_the_sum_of_the_history(sim: Simulator, dialect: str) -> None:
    truth = sim.truth(account_of(sim, dialect).id)
    expected = implied_totals(truth)
    funding = truth.balances_by_type.get("funding", {})
    assets = set(truth.balances) | set(funding)
    for asset in assets:
        held = truth.balances.get(asset, {}).get("total", 0.0) + funding.get(asset, {}).get("total", 0.0)
        assert held == pytest.approx(expected[asset], rel=1e-9, abs=1e-6), asset
    assert set(expected) <= assets


def test_scenarios_off_leave_histories_as_they_were() -> None:
    world = World(SimulatorConfig(seed=1, anchor_ms=ANCHOR))
    assert truth_digest(world) == SEED1_DEFAULT_DIGEST
    every = World(SimulatorConfig(seed=1, accounts=4, dialects=DIALECTS, anchor_ms=ANCHOR, positions=True))
    assert truth_digest(every) == SEED1_ALL_DIALECTS_DIGEST
    truth = world.truth("okx-2")
    assert truth.balances_by_type == {"trading": truth.balances}
    assert all(o["status"] == "closed" for o in truth.closed_orders)


def test_scenarios_are_deterministic_and_fit_a_long_history() -> None:
    config = SimulatorConfig(seed=4, accounts=2, days=800, fills_per_account=200, anchor_ms=ANCHOR, scenarios=True)
    a, b = World(config), World(config)
    for account in a.accounts:
        truth = a.truth(account.id)
        assert truth == b.truth(account.id)
        assert min(f["timestamp"] for f in truth.fills) < ANCHOR - 700 * DAY_MS
        assert longest_quiet(truth) >= 10 * DAY_MS
    with pytest.raises(ValueError, match="at least 40 days"):
        World(SimulatorConfig(days=30, scenarios=True)).truth("binance-1")


def test_cli_flag() -> None:
    assert parse_args(["--scenarios", "--days", "60"]).scenarios
    assert not parse_args([]).scenarios


# --- served to ccxt ------------------------------------------------------------------------



@pytest.mark.parametrize("dialect", FUNDING_DIALECTS)
def test_funding_balance_through_ccxt(sim: Simulator, dialect: str) -> None:
    if not has_real_handle(dialect):
        pytest.skip(f"the {dialect} dialect is not served yet")
    ex = exchange(account_of(sim, dialect))
    truth = sim.truth(account_of(sim, dialect).id)
    funding = ex.fetch_balance({"type": "funding"})
    expected = truth.balances_by_type["funding"]
    assert {a: {k: funding[a][k] for k in ("free", "used", "total")} for a in expected} == expected
    assert {a for a, v in funding["total"].items() if v} == set(expected)
    trading = ex.fetch_balance()
    assert {a for a, v in trading["total"].items() if v} == {a for a, v in truth.balances.items() if v["total"]}
    assert "TKN" not in {a for a, v in trading["total"].items() if v}


def test_move_to_funding_through_the_control_api(sim: Simulator) -> None:
    account = account_of(sim, "binance")
    before = sim.truth(account.id)
    request = urllib.request.Request(f"{sim.url}/_sim/accounts/{account.id}/funding?asset=USDT&amount=125.5",
                                     method="POST")
    with urllib.request.urlopen(request) as answer:
        funding = json.load(answer)["funding"]
    after = sim.truth(account.id)
    moved = before.balances_by_type["funding"]["USDT"]["total"] + 125.5
    assert funding["USDT"]["total"] == pytest.approx(moved) == after.balances_by_type["funding"]["USDT"]["total"]
    assert after.balances["USDT"]["free"] == pytest.approx(before.balances["USDT"]["free"] - 125.5)
    sim.world.move_to_funding(account.id, "ETH", 0.001)
    assert exchange(account).fetch_balance({"type": "funding"})["ETH"]["total"] == pytest.approx(0.001)
    with pytest.raises(ValueError, match="negative"):
        sim.world.move_to_funding(account.id, "TKN", 1.0)


def order_view(order: dict[str, Any]) -> tuple:
    return order["id"], order["symbol"], order["side"], order["amount"], order["filled"], order["status"]


def test_binance_serves_canceled_orders(sim: Simulator) -> None:
    account = account_of(sim, "binance")
    truth = sim.truth(account.id)
    ex = exchange(account)
    ex.load_markets()
    canceled = [o for o in truth.closed_orders if o["status"] == "canceled"]
    symbols = sorted({o["symbol"] for o in canceled})
    got = [o for s in symbols for o in ex.fetch_canceled_orders(s, limit=1000)]
    assert sorted(map(order_view, got)) == sorted(map(order_view, canceled))
    assert {o["info"]["status"] for o in got} == {"CANCELED"}
    closed = [o for s in symbols for o in ex.fetch_closed_orders(s, limit=1000)]
    assert closed and all(o["status"] == "closed" for o in closed)


def test_okx_serves_canceled_orders(sim: Simulator) -> None:
    account = account_of(sim, "okx")
    truth = sim.truth(account.id)
    ex = exchange(account)
    ex.load_markets()

    def every(fetch: Any) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        params: dict[str, str] = {}
        while True:
            page = fetch(None, None, 100, params)
            got += page
            if len(page) < 100:
                return got
            params = {"after": min(o["id"] for o in page)}

    canceled = every(ex.fetch_canceled_orders)
    assert sorted(map(order_view, canceled)) == sorted(
        order_view(o) for o in truth.closed_orders if o["status"] == "canceled")
    assert {o["info"]["state"] for o in canceled} == {"canceled"}
    closed = every(ex.fetch_closed_orders)
    assert sorted(map(order_view, closed)) == sorted(
        order_view(o) for o in truth.closed_orders if o["status"] == "closed")
