"""lib.pnl.state: a state resumed with later fills gives a full recompute's figures, on random
ledgers in one or several steps; a back-dated fill (or one a full run would word differently)
declines, and the caller's full recompute then gives the same figures as always."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.pnl import compute_pnl
from lib.pnl.result import PnlResult
from lib.pnl.state import PnlState, resume, start
from tests.test_pnl import fill, frame
from tests.test_pnl_reference import Ledger, ledgers, random_ledger

TOTALS = ["realized", "unrealized", "fees", "net", "market_value", "net_cash_flow", "transfer_basis",
          "unpriced_cost_basis", "withdrawn_basis"]


def close(a: float, b: float, scale: float = 1.0) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= 1e-6 * max(abs(a), abs(b), scale)


def resumed_fill_by_fill(fills: pd.DataFrame, first: int, marks: dict[str, float], method: str,
                         pool: str = "scope", scale: float = 1.0) -> PnlState:
    """Start on the first ``first`` fills, resume with each later one, each result the same as a full
    run over the fills so far (``assert_same``); returns the last state."""
    _, state = start(fills.iloc[:first], marks=marks, method=method, pool=pool)
    for step in range(first, len(fills)):
        more = resume(state, fills.iloc[[step]], marks)
        assert more is not None
        result, state = more
        assert_same(result, compute_pnl(fills.iloc[: step + 1], marks=marks, method=method, pool=pool), scale)
    return state


def assert_same(got: PnlResult, want: PnlResult, scale: float = 1.0) -> None:
    """Equal to 1e-6 relative, or absolute 1e-6 x ``scale`` (USD figures of a long history carry
    round-off of its size)."""
    for name in TOTALS:
        assert close(getattr(got.totals, name), getattr(want.totals, name), scale), name
    a, b = (r.per_asset.sort_values("asset").reset_index(drop=True) for r in (got, want))
    assert list(a["asset"]) == list(b["asset"])
    for column in ("quantity", "cost_basis", "market_value", "realized", "unrealized", "fees", "unmatched_quantity",
                   "opening_quantity"):
        assert all(close(x, y, scale) for x, y in zip(a[column], b[column], strict=True)), column
    assert list(a["priced"]) == list(b["priced"])
    keys = ["connector_id", "client_id", "asset"]
    a, b = (r.holdings.sort_values(keys).reset_index(drop=True) for r in (got, want))
    assert a[keys].astype(str).equals(b[keys].astype(str))
    for column in ("quantity", "cost_basis", "market_value", "opening_quantity"):
        assert all(close(x, y, scale) for x, y in zip(a[column], b[column], strict=True)), column
    a, b = got.disposals, want.disposals
    assert list(a["source_id"]) == list(b["source_id"]) and list(a["kind"]) == list(b["kind"])
    assert list(a["asset"]) == list(b["asset"])
    for column in ("units", "proceeds", "unmatched_units"):
        assert all(close(x, y) for x, y in zip(a[column], b[column], strict=True)), column
    # to 1e-6 of the disposal's value: queue positions are cumulative units, so a resumed run's
    # round-off differs from a full run's by a few ulps of the history's size
    scale = np.maximum(np.abs(b["proceeds"].to_numpy(float)), np.abs(b["basis"].to_numpy(float)))
    for column in ("basis", "gain"):
        assert all(close(x, y, s) for x, y, s in zip(a[column], b[column], scale, strict=True)), column
    a, b = (r.flows.groupby(keys)[["fees", "net_cash_flow"]].sum() for r in (got, want))
    assert a.index.equals(b.index)
    assert np.allclose(a.to_numpy(), b.to_numpy(), rtol=1e-9, atol=1e-6)
    assert got.unpriced_assets == want.unpriced_assets
    assert got.unmatched.keys() == want.unmatched.keys()
    assert all(close(got.unmatched[k], want.unmatched[k]) for k in got.unmatched)
    assert got.warnings == want.warnings


def valued(ledger: Ledger) -> Ledger:
    """The ledger with every fill valued (an unvalued fill is a note, which makes resume decline)."""
    fills = ledger.fills.assign(quote_usd=ledger.fills["quote_usd"].fillna(2500.0),
                                fee_usd=ledger.fills["fee_usd"].fillna(300.0))
    return Ledger(fills, ledger.transfers, ledger.opening, ledger.marks)


def split(ledger: Ledger, cut: int) -> tuple[Ledger, list[pd.DataFrame]]:
    """History up to ``cut`` (transfers and opening lots too), and the later fills."""
    fills = ledger.fills
    early = fills["timestamp"].to_numpy() <= cut
    history = Ledger(fills[early].reset_index(drop=True),
                     ledger.transfers[ledger.transfers["timestamp"].to_numpy() <= cut].reset_index(drop=True),
                     ledger.opening, ledger.marks)
    return history, fills[~early].reset_index(drop=True)


def chunks(later: pd.DataFrame, parts: int) -> list[pd.DataFrame]:
    """Later fills in time order, cut into ``parts`` steps that never split one timestamp."""
    later = later.sort_values("timestamp", kind="stable").reset_index(drop=True)
    stamps = later["timestamp"].to_numpy()
    bounds = sorted({int(np.searchsorted(stamps, stamps[len(later) * k // parts])) for k in range(1, parts)} if len(
        later) else set())
    edges = [0, *bounds, len(later)]
    return [later.iloc[lo:hi].sample(frac=1, random_state=lo) for lo, hi in zip(edges, edges[1:], strict=False)]


def resumed(history: Ledger, steps: list[pd.DataFrame], method: str, pool: str) -> tuple[PnlResult, PnlState, int]:
    """start() on the history, then resume() step by step; a declined step recomputes in full, as
    lib.reports does. Returns the last result and state and how many steps were resumed."""
    seen = history.fills
    result, state = start(history.fills, history.transfers, history.opening, history.marks, method=method, pool=pool)
    went = 0
    for step in steps:
        seen = pd.concat([seen, step], ignore_index=True)
        more = resume(state, step, history.marks)
        if more is None:
            result, state = start(seen, history.transfers, history.opening, history.marks, method=method, pool=pool)
        else:
            result, state = more
            went += 1
    return result, state, went


def full(history: Ledger, steps: list[pd.DataFrame], method: str, pool: str) -> PnlResult:
    fills = pd.concat([history.fills, *steps], ignore_index=True)
    return compute_pnl(fills, history.transfers, history.opening, history.marks, method=method, pool=pool)


@pytest.mark.parametrize("pool", ["scope", "connector", "client"])
@pytest.mark.parametrize("method", ["fifo", "average"])
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_resumed_state_equals_a_full_recompute(seed: int, method: str, pool: str) -> None:
    ledger = valued(random_ledger(seed, 600))
    for cut, parts in ((150_000, 1), (200_000, 3), (280_000, 5)):
        history, later = split(ledger, cut)
        steps = chunks(later, parts)
        got, state, went = resumed(history, steps, method, pool)
        assert went == len(steps)  # every step continued the state: no full recompute happened
        assert state.fills == len(ledger.fills)
        assert_same(got, full(history, steps, method, pool))


@pytest.mark.parametrize("method", ["fifo", "average"])
def test_a_back_dated_fill_declines_and_the_recompute_counts_it(method: str) -> None:
    ledger = valued(random_ledger(5, 400))
    history, later = split(ledger, 150_000)
    cut = int(later["timestamp"].sort_values().iloc[10])
    first, rest = later[later["timestamp"] < cut], later[later["timestamp"] >= cut]  # never split a timestamp
    _, state = start(history.fills, history.transfers, history.opening, history.marks, method=method)
    back = history.fills.iloc[[3]].assign(trade_id="backdated", timestamp=int(history.fills["timestamp"].min()))
    assert resume(state, back, history.marks) is None
    same_time = later.iloc[[0]].assign(timestamp=state.watermark)  # ties could go before a withdrawal then
    assert resume(state, same_time, history.marks) is None
    steps = [first, back, rest]
    got, _, went = resumed(history, steps, method, "scope")
    assert went == 2  # the later fills continued, the back-dated one recomputed everything
    assert_same(got, full(history, steps, method, "scope"))


def test_a_note_declines() -> None:
    """A fill the engine cannot value makes a note a full run words once for all history."""
    ledger = valued(random_ledger(6, 200))
    history, later = split(ledger, 60_000)
    _, state = start(history.fills, history.transfers, history.opening, history.marks)
    unvalued = later.iloc[:5].assign(quote="SOL", symbol="BTC/SOL", quote_usd=math.nan, fee_currency=None)
    assert resume(state, unvalued, history.marks) is None


def test_new_marks_with_no_new_fill_revalue_the_holdings() -> None:
    ledger = valued(random_ledger(7, 300))
    first, state = start(ledger.fills, ledger.transfers, ledger.opening, ledger.marks)
    marks = {asset: price * 1.5 for asset, price in ledger.marks.items()}
    again = resume(state, ledger.fills.iloc[:0], marks)
    assert again is not None
    assert again[0].totals.market_value != pytest.approx(first.totals.market_value)
    assert_same(again[0], compute_pnl(ledger.fills, ledger.transfers, ledger.opening, marks))


@settings(max_examples=40, deadline=None)
@given(ledger=ledgers(max_fills=30), cut=st.integers(0, 60), parts=st.integers(1, 3),
       method=st.sampled_from(["fifo", "average"]), pool=st.sampled_from(["scope", "connector", "client"]))
def test_resumed_state_equals_a_full_recompute_on_drawn_ledgers(ledger: Ledger, cut: int, parts: int, method: str,
                                                                 pool: str) -> None:
    history, later = split(ledger, cut * 1000)
    steps = chunks(later, parts)
    got, _, _ = resumed(history, steps, method, pool)
    assert_same(got, full(history, steps, method, pool))


@pytest.mark.parametrize("method", ["fifo", "average"])
@pytest.mark.parametrize("oversold", [0.0, 3.0])
def test_units_below_the_dust_of_a_long_history_resume_as_a_full_run_counts_them(method: str,
                                                                                   oversold: float) -> None:
    """With 8e6 BTC of turnover, 0.0005 BTC is dust (below 0.0008): a full run zeroes the pool's first
    0.0005 but its shortfall arithmetic still counts it, so the second buy holds one; the state carries that."""
    big = 4_000_000.0
    rows = [fill("1", 1000, "BTC/USDT", "buy", big, 1.0), fill("2", 2000, "BTC/USDT", "sell", big + oversold, 1.0)]
    rows += [fill(str(10 + i), 10_000 + 1000 * i, "BTC/USDT", "buy", 0.0005, 60000.0) for i in range(4)]
    rows += [fill("20", 20_000, "BTC/USDT", "sell", 0.0007, 60000.0)]
    fills = frame(rows)
    marks = {"BTC": 60000.0}
    # 4e6 USD went through: the full run's own round-off is ~1e-5 USD; missing the ghost is 30 USD
    resumed_fill_by_fill(fills, 2, marks, method, scale=100.0)


@pytest.mark.parametrize("method", ["fifo", "average"])
def test_one_state_resumed_twice_gives_each_branch_its_own_figures(method: str) -> None:
    """Resumed states share the room after their disposals' last row: the second branch from one
    state must move to fresh room, and neither branch's frame changes the other's rows."""
    ledger = valued(random_ledger(8, 400))
    history, later = split(ledger, 150_000)
    assert len(later) > 20
    later = later.sort_values("timestamp", kind="stable").reset_index(drop=True)
    stamps = later["timestamp"].to_numpy()
    cut = int(np.searchsorted(stamps, stamps[len(later) // 2]))
    first, second = later.iloc[:cut], later.iloc[cut:]
    _, state = start(history.fills, history.transfers, history.opening, history.marks, method=method)
    one = resume(state, first, history.marks)
    assert one is not None
    kept = one[0].disposals.copy()
    two = resume(state, second, history.marks)  # the same state again, with other fills
    assert two is not None
    pd.testing.assert_frame_equal(one[0].disposals, kept)
    assert_same(one[0], full(history, [first], method, "scope"))
    assert_same(two[0], full(history, [second], method, "scope"))
    kept_two = two[0].disposals.copy()
    more = resume(one[1], second, history.marks)  # the first branch continues in the room after its rows
    assert more is not None
    pd.testing.assert_frame_equal(one[0].disposals, kept)
    pd.testing.assert_frame_equal(two[0].disposals, kept_two)
    assert_same(more[0], full(history, [first, second], method, "scope"))
    with pytest.raises(ValueError, match="read-only"):  # a frame handed out cannot change another's rows
        more[0].disposals.loc[0, "gain"] = 0.0


@pytest.mark.parametrize("pool", ["scope", "connector"])
@pytest.mark.parametrize("method", ["fifo", "average"])
def test_a_new_fill_of_an_asset_never_seen_resumes_as_a_full_run(method: str, pool: str) -> None:
    """ETH sorts between BTC and USDT: the state's asset codes move, its untouched pools keep their figures."""
    rows = [fill("1", 1000, "BTC/USDT", "buy", 2.0, 30000.0, connector=1),
            fill("2", 2000, "BTC/USDT", "buy", 1.0, 31000.0, fee=0.001, fee_currency="BTC", fee_usd=31000.0,
                 connector=2),
            fill("3", 3000, "BTC/USDT", "sell", 1.5, 32000.0, connector=1),
            fill("4", 4000, "ETH/BTC", "buy", 10.0, 0.05, quote_usd=33000.0, connector=2),
            fill("5", 5000, "ETH/USDT", "sell", 4.0, 1700.0, connector=1),
            fill("6", 6000, "BTC/USDT", "sell", 0.2, 34000.0, connector=2)]
    fills = frame(rows)
    marks = {"BTC": 35000.0, "ETH": 1800.0}
    assert resumed_fill_by_fill(fills, 3, marks, method, pool).assets == ["BTC", "ETH", "USDT"]


@pytest.mark.parametrize("pool", ["scope", "connector", "client"])
@pytest.mark.parametrize("method", ["fifo", "average"])
def test_fills_with_no_lot_events_or_contract_rows_resume_as_a_full_run(method: str, pool: str) -> None:
    """A cash-to-cash fill makes no lot event (nothing is matched again); a contract fill makes a realized
    row the disposals sort among the events; a third-asset fee and a new connector touch new pools."""
    rows = [fill("1", 1000, "BTC/USDT", "buy", 2.0, 30000.0),
            fill("2", 2000, "USDC/USDT", "buy", 100.0, 1.001, fee=0.1, fee_currency="USDT"),
            fill("3", 3000, "BTC/USDT", "sell", 0.5, 31000.0, fee=0.0001, fee_currency="BNB", fee_usd=300.0),
            fill("4", 4000, "BTC/USDT:USDT", "buy", 1.0, 32000.0, fee=1.0, fee_currency="USDT"),
            fill("5", 5000, "BTC/USDT", "sell", 0.5, 33000.0, connector=2, client=2)]
    fills = frame(rows).assign(realized_pnl=[math.nan, math.nan, math.nan, 12.5, math.nan])
    marks = {"BTC": 35000.0, "BNB": 310.0}
    resumed_fill_by_fill(fills, 1, marks, method, pool)
