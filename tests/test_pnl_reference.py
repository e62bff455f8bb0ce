"""The vectorised engine against a plain Decimal loop that reads PNL.md's table literally.

The reference walks events one by one with a deque of lots (FIFO) or one pool (average
cost). Random ledgers (hypothesis, and a few larger seeded ones) mix cash and non-cash
quotes, fees in base, quote and third assets (cash and not, rebates too), deposits,
withdrawals, opening lots, ties in time and oversells.
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from dataclasses import dataclass, field
from decimal import Decimal, getcontext

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lib.pnl import compute_pnl
from lib.prices import DEFAULT_USD_LIKE

getcontext().prec = 50
ZERO = Decimal(0)

COINS = ["BTC", "ETH", "SOL", "BNB", "XRP"]
CASH = ["USDT", "USDC"]
QUOTES = ["USDT", "USDC", "BTC", "ETH"]
AMOUNTS = [0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0]
PRICES = [0.5, 2.0, 10.0, 300.0, 3000.0, 40000.0, 52000.0]


def dec(x: float) -> Decimal:
    return Decimal(repr(float(x)))


def known(x: float) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


# --------------------------------------------------------------------------- reference


@dataclass
class Book:
    """Lots of one pool of one asset: [units, cost, is_opening] (FIFO) or one pooled lot (average)."""

    method: str
    lots: deque = field(default_factory=deque)
    opening: Decimal = ZERO  # average cost: opening units in the pool

    def acquire(self, units: Decimal, cost: Decimal, is_opening: bool) -> None:
        if self.method == "fifo":
            self.lots.append([units, cost, is_opening])
        elif self.lots:
            self.lots[0][0] += units
            self.lots[0][1] += cost
        else:
            self.lots.append([units, cost, False])
        self.opening += units if is_opening and self.method == "average" else ZERO

    def dispose(self, units: Decimal) -> tuple[Decimal, Decimal]:
        """(basis, unmatched units)."""
        basis, left = ZERO, units
        while left > 0 and self.lots:
            lot = self.lots[0]
            take = min(left, lot[0])
            part = lot[1] * take / lot[0]
            if self.method == "average":
                self.opening -= self.opening * take / lot[0]
            lot[0] -= take
            lot[1] -= part
            basis += part
            left -= take
            if lot[0] == 0:
                self.lots.popleft()
        return basis, left

    def state(self) -> tuple[Decimal, Decimal, Decimal]:
        units = sum((lot[0] for lot in self.lots), ZERO)
        cost = sum((lot[1] for lot in self.lots), ZERO)
        opening = self.opening if self.method == "average" else sum((lot[0] for lot in self.lots if lot[2]), ZERO)
        return units, cost, opening


@dataclass
class Reference:
    disposals: list = field(default_factory=list)  # (source_id, asset, units, proceeds, basis, unmatched)
    unmatched: dict = field(default_factory=lambda: defaultdict(lambda: ZERO))
    cash_flow: Decimal = ZERO
    transfer_basis: Decimal = ZERO
    books: dict = field(default_factory=dict)


def fill_legs(f: dict, usd_like: frozenset[str]) -> tuple[list, list, Decimal]:
    """PNL.md's table for one fill: (lot legs, conversion rows, cash flow)."""
    buy = f["side"] == "buy"
    amount, cost = dec(f["amount"]), dec(f["cost"])
    G, g, R, r = (f["quote"], cost, f["base"], amount) if buy else (f["base"], amount, f["quote"], cost)
    g_cash, r_cash = G in usd_like, R in usd_like
    quote_usd = Decimal(1) if f["quote"] in usd_like else dec(f["quote_usd"]) if known(f["quote_usd"]) else None
    valued = g_cash or r_cash or quote_usd is not None
    X = g if g_cash else r if r_cash else cost * quote_usd if quote_usd is not None else ZERO
    F = f["fee_currency"]
    fee = dec(f["fee_cost"]) if F is not None and known(f["fee_cost"]) else ZERO
    V, where = ZERO, None
    if fee != 0:
        where = "G" if F == G else "R" if F == R else "F"
        if F in usd_like:
            unit = Decimal(1)
        elif valued and f["base"] == F and amount != 0:  # the fill's own price, at its timestamp
            unit = X / amount
        elif valued and f["quote"] == F and cost != 0:
            unit = X / cost
        elif known(f["fee_usd"]):
            unit = dec(f["fee_usd"])
        else:
            unit = ZERO
        V = fee * unit
    if where == "G":
        disp, acq = (g + fee, X + V if not r_cash else X), (r, X + V)
    elif where == "R":
        disp, acq = (g, X if not r_cash else X - V), (r - fee, X)
    elif where == "F":
        disp, acq = (g, X if not r_cash else X - V), (r, X + V)
    else:
        disp, acq = (g, X), (r, X)
    legs, conversions = [], []
    if not g_cash:
        legs.append(("dispose", G, *disp, "trade"))
    if not r_cash:
        legs.append(("acquire", R, *acq, "trade"))
    if where == "F" and F not in usd_like:
        legs.append(("dispose", F, fee, V, "fee") if fee > 0 else ("acquire", F, -fee, -V, "fee"))
    if g_cash and r_cash:
        proceeds = r - (fee if where == "R" else ZERO) - (V if where == "F" and F not in usd_like else ZERO)
        basis = g + (fee if where == "G" else ZERO) + (V if where == "F" and F in usd_like else ZERO)
        conversions.append((G, disp[0], proceeds, basis))
    cash = (r if r_cash else ZERO) - (g if g_cash else ZERO) - (V if fee != 0 and F in usd_like else ZERO)
    return legs, conversions, cash


def _id_key(source_id: str) -> tuple[int, int | str]:
    """Integer ids numerically, before any other id, which compare as text."""
    return (0, int(source_id)) if source_id.isdigit() else (1, source_id)


def _opening_time(row: dict, fills: pd.DataFrame, transfers: pd.DataFrame) -> int:
    """A positive opening lot sits 1 ms before its connector's first fill or transfer."""
    own = [int(t) for f in (fills, transfers) for t in f.loc[f["connector_id"] == row["connector_id"], "timestamp"]]
    return min(row["timestamp"], min(own) - 1) if own and row["amount"] > 0 else row["timestamp"]


def reference_pnl(
    fills: pd.DataFrame,
    transfers: pd.DataFrame,
    opening: pd.DataFrame,
    *,
    method: str,
    pool: str,
    start: int | None = None,
    usd_like: frozenset[str] = DEFAULT_USD_LIKE,
) -> Reference:
    """Walk every event in order, one at a time."""
    events = []  # (timestamp, order, id, row, what)
    for row in opening.to_dict("records"):
        events.append((_opening_time(row, fills, transfers), 2, "opening", row, "opening"))
    for row in transfers.to_dict("records"):
        events.append((row["timestamp"], 0 if row["type"] == "deposit" else 2, row["transfer_id"], row, "transfer"))
    for row in fills.to_dict("records"):
        events.append((row["timestamp"], 1, row["trade_id"], row, "fill"))
    events.sort(key=lambda e: (e[0], e[1], _id_key(str(e[2]))))

    ref = Reference()

    def book(row: dict, asset: str) -> Book:
        return ref.books.setdefault((row["connector_id"] if pool == "connector" else None, asset), Book(method))

    for ts, _, source_id, row, what in events:
        inside = start is None or ts >= start
        if what == "opening" and row["asset"] not in usd_like:
            units = dec(row["amount"])
            if units > 0:
                cost = units * dec(row["usd"]) if known(row["usd"]) else ZERO
                book(row, row["asset"]).acquire(units, cost, True)
                ref.transfer_basis += cost if inside else ZERO
            else:
                basis, left = book(row, row["asset"]).dispose(-units)
                ref.unmatched[row["asset"]] += left
                ref.transfer_basis -= basis if inside else ZERO
        elif what == "transfer" and row["currency"] not in usd_like:
            units = abs(dec(row["amount"]))
            if row["type"] == "deposit":
                cost = units * dec(row["usd"]) if known(row["usd"]) else ZERO
                book(row, row["currency"]).acquire(units, cost, False)
                ref.transfer_basis += cost if inside else ZERO
            else:
                basis, left = book(row, row["currency"]).dispose(units)
                ref.unmatched[row["currency"]] += left
                ref.transfer_basis -= basis if inside else ZERO
        elif what == "fill":
            legs, conversions, cash = fill_legs(row, usd_like)
            ref.cash_flow += cash if inside else ZERO
            for action, asset, units, value, _kind in legs:
                if units <= 0:
                    continue
                if action == "acquire":
                    book(row, asset).acquire(units, value, False)
                    continue
                basis, left = book(row, asset).dispose(units)
                ref.unmatched[asset] += left
                if inside:
                    ref.disposals.append((source_id, asset, units, value, basis, left))
            if inside:
                ref.disposals += [(source_id, a, u, p, b, ZERO) for a, u, p, b in conversions]
    return ref


# --------------------------------------------------------------------------- random ledgers


@dataclass
class Ledger:
    fills: pd.DataFrame
    transfers: pd.DataFrame
    opening: pd.DataFrame
    marks: dict[str, float]


def _fill(
    trade_id: int,
    connector: int,
    ts: int,
    base: str,
    quote: str,
    side: str,
    amount: float,
    price: float,
    fee_where: str,
    fee_scale: float,
    quote_usd: float,
    fee_usd: float,
) -> dict:
    cost = amount * price
    fee_currency = {"none": None, "base": base, "quote": quote}.get(fee_where, fee_where)
    fee_cost = {"none": 0.0, "base": amount * fee_scale, "quote": cost * fee_scale}.get(
        fee_where, 0.01 * fee_scale * 1000
    )
    return {
        "connector_id": connector,
        "client_id": 10 + connector // 2,
        "trade_id": str(trade_id),
        "timestamp": ts,
        "symbol": f"{base}/{quote}",
        "base": base,
        "quote": quote,
        "side": side,
        "amount": amount,
        "price": price,
        "cost": cost,
        "fee_cost": fee_cost,
        "fee_currency": fee_currency,
        "quote_usd": quote_usd if quote not in CASH else 0.999,  # cash must be 1.0 whatever this says
        "fee_usd": fee_usd if fee_currency is not None else math.nan,
    }


fill_args = st.tuples(
    st.sampled_from([1, 2, 3]),
    st.integers(0, 12),
    st.sampled_from(COINS + ["USDC"]),
    st.sampled_from(QUOTES),
    st.sampled_from(["buy", "buy", "sell"]),
    st.sampled_from(AMOUNTS),
    st.sampled_from(PRICES),
    st.sampled_from(["none", "base", "quote", "BNB", "USDT", "USDC", "SOL"]),
    st.sampled_from([0.001, 0.0005, -0.0002]),
    st.sampled_from([40000.0, 2500.0, math.nan]),
    st.sampled_from([1.0, 320.0, 51000.0, math.nan]),
)
transfer_args = st.tuples(
    st.sampled_from([1, 2, 3]),
    st.integers(0, 12),
    st.sampled_from(["deposit", "withdrawal"]),
    st.sampled_from(COINS + CASH),
    st.sampled_from(AMOUNTS),
    st.sampled_from([100.0, 20000.0, math.nan]),
)
opening_args = st.tuples(
    st.sampled_from([1, 2, 3]),
    st.integers(0, 12),
    st.sampled_from(COINS + CASH),
    st.sampled_from(AMOUNTS + [-0.2]),
    st.sampled_from([50.0, 30000.0, math.nan]),
)


def make_ledger(fill_rows: list, transfer_rows: list, opening_rows: list, mark_rows: dict) -> Ledger:
    fills = [
        _fill(1000 + i, c, t * 1000, b, q if q != b else "USDT", *rest)
        for i, (c, t, b, q, *rest) in enumerate(fill_rows)
    ]
    transfers = [
        {
            "connector_id": c,
            "client_id": 10 + c // 2,
            "transfer_id": str(5000 + i),
            "timestamp": t * 1000,
            "type": kind,
            "currency": cur,
            "amount": amount,
            "usd": usd,
        }
        for i, (c, t, kind, cur, amount, usd) in enumerate(transfer_rows)
    ]
    opening = [
        {"connector_id": c, "client_id": 10 + c // 2, "timestamp": t * 1000, "asset": a, "amount": amount, "usd": usd}
        for c, t, a, amount, usd in opening_rows
    ]

    def frame(rows: list, columns: tuple) -> pd.DataFrame:
        return pd.DataFrame(rows, columns=list(columns))

    from lib.pnl import FILL_COLUMNS, OPENING_COLUMNS, TRANSFER_COLUMNS

    return Ledger(
        frame(fills, FILL_COLUMNS), frame(transfers, TRANSFER_COLUMNS), frame(opening, OPENING_COLUMNS), mark_rows
    )


@st.composite
def ledgers(draw: st.DrawFn, max_fills: int = 25) -> Ledger:
    return make_ledger(
        draw(st.lists(fill_args, min_size=1, max_size=max_fills)),
        draw(st.lists(transfer_args, max_size=5)),
        draw(st.lists(opening_args, max_size=3)),
        draw(st.dictionaries(st.sampled_from(COINS), st.sampled_from([1.5, 600.0, 45000.0]))),
    )


def random_ledger(seed: int, n: int) -> Ledger:
    """A larger seeded ledger built from the same ingredients."""
    rng = np.random.default_rng(seed)

    def pick(options: list):  # noqa: ANN202
        return options[rng.integers(len(options))]

    fill_rows = [
        (
            pick([1, 2, 3]),
            int(rng.integers(0, n // 2)),
            pick(COINS + ["USDC"]),
            pick(QUOTES),
            pick(["buy", "buy", "sell"]),
            pick(AMOUNTS),
            pick(PRICES),
            pick(["none", "base", "quote", "BNB", "USDT", "USDC", "SOL"]),
            pick([0.001, 0.0005, -0.0002]),
            pick([40000.0, 2500.0, math.nan]),
            pick([1.0, 320.0, 51000.0, math.nan]),
        )
        for _ in range(n)
    ]
    transfer_rows = [
        (
            pick([1, 2, 3]),
            int(rng.integers(0, n // 2)),
            pick(["deposit", "withdrawal"]),
            pick(COINS + CASH),
            pick(AMOUNTS),
            pick([100.0, 20000.0, math.nan]),
        )
        for _ in range(n // 10)
    ]
    opening_rows = [(c, 0, a, pick(AMOUNTS), pick([50.0, 30000.0])) for c in (1, 2) for a in COINS[:3]]
    return make_ledger(fill_rows, transfer_rows, opening_rows, {a: 100.0 * (i + 1) for i, a in enumerate(COINS)})


# --------------------------------------------------------------------------- comparison


def close(a: float, b: Decimal, scale: float = 0.0, floor: float = 1.0) -> bool:
    """Within 1e-6 relative to the larger of the two and ``scale``; below ``floor`` absolute 1e-6 x floor.

    USD amounts use floor 1 (agreement to 1e-6 USD, as for PNL.md's vector), units 1e-3.
    """
    b = float(b)
    return abs(a - b) <= 1e-6 * max(abs(a), abs(b), scale, floor)


def assert_agrees(ledger: Ledger, method: str, pool: str, start: int | None = None) -> None:
    result = compute_pnl(
        ledger.fills, ledger.transfers, ledger.opening, ledger.marks, method=method, pool=pool, start=start
    )
    ref = reference_pnl(ledger.fills, ledger.transfers, ledger.opening, method=method, pool=pool, start=start)

    got = result.disposals.sort_values(["source_id", "asset", "kind"]).reset_index(drop=True)
    want = sorted(ref.disposals, key=lambda d: (d[0], d[1], "conversion" if d[1] in CASH else "x"))
    assert len(got) == len(want)
    for row, (source_id, asset, units, proceeds, basis, unmatched) in zip(got.itertuples(), want, strict=True):
        scale = float(abs(proceeds) + abs(basis))
        assert (row.source_id, row.asset) == (source_id, asset)
        assert close(row.units, units, floor=1e-3)
        assert close(row.proceeds, proceeds, scale), (row, proceeds)
        assert close(row.basis, basis, scale), (row, basis)
        assert close(row.unmatched_units, unmatched, float(units), floor=1e-3), (row, unmatched)

    turnover = float(sum((abs(d[3]) + abs(d[4]) for d in ref.disposals), ZERO)) + 1.0
    assert close(result.totals.realized, sum((d[3] - d[4] for d in ref.disposals), ZERO), turnover)
    assert close(result.totals.net_cash_flow, ref.cash_flow, turnover)
    assert close(result.totals.transfer_basis, ref.transfer_basis, turnover)

    per_asset = result.per_asset.set_index("asset")
    by_asset: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO, ZERO])
    for (_, asset), lots in ref.books.items():
        for i, x in enumerate(lots.state()):
            by_asset[asset][i] += x
    for asset, (units, cost, opening) in by_asset.items():
        row = per_asset.loc[asset]
        assert close(row.quantity, units, floor=1e-3), (asset, row.quantity, units)
        assert close(row.cost_basis, cost), (asset, row.cost_basis, cost)
        assert close(row.opening_quantity, opening, floor=1e-3), (asset, row.opening_quantity, opening)
    assert set(result.unmatched) == {a for a, q in ref.unmatched.items() if q > Decimal("1e-9")}
    for asset, qty in result.unmatched.items():
        assert close(qty, ref.unmatched[asset], floor=1e-3)
    if pool == "connector":
        held = result.holdings.set_index(["connector_id", "asset"])
        for (connector, asset), lots in ref.books.items():
            units, cost, _ = lots.state()
            if (connector, asset) in held.index:
                assert close(held.loc[(connector, asset), "quantity"], units, floor=1e-3)
                assert close(held.loc[(connector, asset), "cost_basis"], cost)
            else:
                assert abs(units) < Decimal("1e-9") and abs(cost) < Decimal("1e-6")


METHODS_AND_POOLS = [("fifo", "scope"), ("average", "scope"), ("fifo", "connector"), ("average", "connector")]


@pytest.mark.parametrize(("method", "pool"), METHODS_AND_POOLS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ledger=ledgers())
def test_engine_matches_decimal_reference(ledger: Ledger, method: str, pool: str) -> None:
    assert_agrees(ledger, method, pool)


@pytest.mark.parametrize(("method", "pool"), METHODS_AND_POOLS)
@settings(max_examples=40, deadline=None)
@given(ledger=ledgers(), start=st.integers(0, 12))
def test_window_matches_reference(ledger: Ledger, method: str, pool: str, start: int) -> None:
    assert_agrees(ledger, method, pool, start=start * 1000)


@pytest.mark.parametrize(("method", "pool"), METHODS_AND_POOLS)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_engine_matches_reference_on_larger_ledgers(seed: int, method: str, pool: str) -> None:
    assert_agrees(random_ledger(seed, 600), method, pool)
