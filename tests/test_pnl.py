"""lib.pnl: PNL.md's test vector to 1e-6 USD, properties, and the documented choices."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.pnl import (
    DISPOSAL_COLUMNS,
    FILL_COLUMNS,
    OPENING_COLUMNS,
    PER_ASSET_COLUMNS,
    TRANSFER_COLUMNS,
    affine_scan,
    by_client,
    by_connector,
    compute_pnl,
)
from tests.test_pnl_reference import COINS, ledgers

TOL = 1e-6  # USD


def ms(day: str) -> int:
    return int(pd.Timestamp(day, tz="UTC").value // 1_000_000)


def fill(
    trade_id: str,
    ts: int,
    symbol: str,
    side: str,
    amount: float,
    price: float,
    fee: float = 0.0,
    fee_currency: str | None = None,
    quote_usd: float = 1.0,
    fee_usd: float = math.nan,
    connector: int = 1,
    client: int = 1,
) -> dict:
    base, quote = symbol.split("/")
    return {
        "connector_id": connector,
        "client_id": client,
        "trade_id": trade_id,
        "timestamp": ts,
        "symbol": symbol,
        "base": base,
        "quote": quote,
        "side": side,
        "amount": amount,
        "price": price,
        "cost": amount * price,
        "fee_cost": fee,
        "fee_currency": fee_currency,
        "quote_usd": quote_usd,
        "fee_usd": fee_usd,
    }


def frame(rows: list[dict], columns: tuple[str, ...] = FILL_COLUMNS) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(columns))


def transfer(
    transfer_id: str, ts: int, kind: str, currency: str, amount: float, usd: float, connector: int = 1, client: int = 1
) -> dict:
    return {
        "connector_id": connector,
        "client_id": client,
        "transfer_id": transfer_id,
        "timestamp": ts,
        "type": kind,
        "currency": currency,
        "amount": amount,
        "usd": usd,
    }


# --------------------------------------------------------------------------- PNL.md test vector

VECTOR = frame(
    [
        fill("T1", ms("2024-01-01"), "BTC/USDT", "buy", 1.0, 40000, 0.001, "BTC", fee_usd=40000),
        fill("T2", ms("2024-01-02"), "BNB/USDT", "buy", 2.0, 300, 0.6, "USDT", fee_usd=1.0),
        fill("T3", ms("2024-01-10"), "BTC/USDT", "buy", 0.5, 44000, 0.05, "BNB", fee_usd=320),
        fill("T4", ms("2024-02-01"), "ETH/BTC", "buy", 10, 0.05, 0.0005, "BTC", quote_usd=50000, fee_usd=50000),
        fill("T5", ms("2024-02-15"), "BTC/USDT", "sell", 0.6, 52000, 31.2, "USDT", fee_usd=1.0),
        fill("T6", ms("2024-03-01"), "ETH/USDT", "sell", 4, 3000, 0.02, "BNB", fee_usd=400),
        fill("T7", ms("2024-03-20"), "ETH/BTC", "sell", 3, 0.055, 0.000165, "BTC", quote_usd=60000, fee_usd=60000),
    ]
)
VECTOR_MARKS = {"BTC": 65000.0, "ETH": 3500.0, "BNB": 500.0}
FIFO_DISPOSALS = [  # source, asset, units, proceeds, basis, gain
    ("T3", "BNB", 0.05, 16, 15.015, 0.985),
    ("T4", "BTC", 0.5005, 25025, 20040.04004, 4984.95996),
    ("T5", "BTC", 0.6, 31168.8, 24429.20796, 6739.59204),
    ("T6", "ETH", 4, 11992, 10010, 1982),
    ("T6", "BNB", 0.02, 8, 6.006, 1.994),
    ("T7", "ETH", 3, 9900, 7507.5, 2392.5),
]
EXPECTED = {  # realized, remaining basis BTC / ETH / BNB, unrealized
    "fifo": (16102.031, {"BTC": 27446.752, "ETH": 7507.5, "BNB": 579.579}, 12547.944),
    "average": (15041.854050, {"BTC": 26386.575050, "ETH": 7507.5, "BNB": 579.579}, 13608.120950),
}


def test_vector_fifo_disposals() -> None:
    disposals = compute_pnl(VECTOR, marks=VECTOR_MARKS).disposals
    got = list(disposals[["source_id", "asset", "units", "proceeds", "basis", "gain"]].itertuples(index=False))
    assert len(got) == len(FIFO_DISPOSALS)
    for row, want in zip(got, FIFO_DISPOSALS, strict=True):
        assert tuple(row[:2]) == want[:2]
        assert row[2:] == pytest.approx(want[2:], abs=TOL)
    assert (disposals["unmatched_units"] == 0).all()
    assert list(disposals["kind"]) == ["fee", "trade", "trade", "trade", "fee", "trade"]


@pytest.mark.parametrize("method", ["fifo", "average"])
def test_vector_totals(method: str) -> None:
    result = compute_pnl(VECTOR, marks=VECTOR_MARKS, method=method)
    realized, basis, unrealized = EXPECTED[method]
    per_asset = result.per_asset.set_index("asset")
    assert result.totals.realized == pytest.approx(realized, abs=TOL)
    assert per_asset["realized"].sum() == pytest.approx(realized, abs=TOL)
    for asset, want in basis.items():
        assert per_asset.loc[asset, "cost_basis"] == pytest.approx(want, abs=TOL)
    assert result.totals.unrealized == pytest.approx(unrealized, abs=TOL)
    assert per_asset["quantity"].to_dict() == pytest.approx({"BTC": 0.563335, "ETH": 3, "BNB": 1.93}, abs=1e-12)
    assert result.totals.net_cash_flow == pytest.approx(-19431.8, abs=TOL)
    assert result.totals.market_value == pytest.approx(48081.775, abs=TOL)
    assert result.totals.net == pytest.approx(28649.975, abs=TOL)
    assert result.totals.realized + result.totals.unrealized == pytest.approx(
        result.totals.market_value + result.totals.net_cash_flow, abs=TOL
    )
    assert result.totals.invariant_gap == pytest.approx(0, abs=TOL)
    assert result.totals.fees == pytest.approx(40 + 0.6 + 16 + 25 + 31.2 + 8 + 9.9, abs=TOL)
    assert result.warnings == [] and result.unpriced_assets == [] and result.unmatched == {}


def test_vector_output_columns() -> None:
    result = compute_pnl(VECTOR, marks=VECTOR_MARKS)
    assert tuple(result.disposals.columns) == DISPOSAL_COLUMNS
    assert tuple(result.per_asset.columns) == PER_ASSET_COLUMNS


# --------------------------------------------------------------------------- properties


@pytest.mark.parametrize("method", ["fifo", "average"])
@settings(max_examples=150, deadline=None)
@given(ledger=ledgers(), pool=st.sampled_from(["scope", "connector"]))
def test_invariant_holds(ledger, method: str, pool: str) -> None:  # noqa: ANN001
    marks = {a: 100.0 + i for i, a in enumerate(COINS)}
    result = compute_pnl(ledger.fills, ledger.transfers, ledger.opening, marks, method=method, pool=pool)
    t = result.totals
    scale = 1.0 + result.disposals[["proceeds", "basis"]].abs().to_numpy().sum() + abs(t.market_value)
    assert abs(t.invariant_gap) <= 1e-9 * scale
    plain = compute_pnl(ledger.fills, marks=marks, method=method, pool=pool).totals  # no transfers, no opening
    assert plain.realized + plain.unrealized == pytest.approx(
        plain.market_value + plain.net_cash_flow, abs=1e-9 * scale
    )


@st.composite
def single_lot_ledgers(draw: st.DrawFn) -> pd.DataFrame:
    """One buy per asset (BNB first, as it pays fees), then partial sells and BNB-fee fills."""
    assets = ["BNB"] + draw(st.lists(st.sampled_from(["BTC", "ETH", "SOL"]), unique=True, min_size=1))
    rows = []
    for i, asset in enumerate(assets):
        fee = draw(st.sampled_from([(0.0, None), (0.001, asset), (0.5, "USDT")]))
        rows.append(fill(str(i), i, f"{asset}/USDT", "buy", 10.0, draw(st.sampled_from([3.0, 300.0])), *fee))
    for i in range(draw(st.integers(1, 6))):
        asset = draw(st.sampled_from(assets))
        fee = draw(st.sampled_from([(0.0, None), (0.01, "BNB", 1.0, 310.0), (0.2, "USDT")]))
        rows.append(
            fill(
                str(100 + i),
                100 + i,
                f"{asset}/USDT",
                "sell",
                draw(st.sampled_from([0.5, 1.0])),
                draw(st.sampled_from([2.0, 400.0])),
                *fee,
            )
        )
    return frame(rows)


@settings(max_examples=100, deadline=None)
@given(fills=single_lot_ledgers())
def test_fifo_and_average_agree_with_one_lot_per_asset(fills: pd.DataFrame) -> None:
    marks = {"BTC": 50.0, "ETH": 40.0, "SOL": 30.0, "BNB": 20.0}
    fifo, average = (compute_pnl(fills, marks=marks, method=m) for m in ("fifo", "average"))
    pd.testing.assert_frame_equal(fifo.disposals, average.disposals, atol=1e-9, rtol=1e-12)
    pd.testing.assert_frame_equal(fifo.per_asset, average.per_asset, atol=1e-9, rtol=1e-12)


@pytest.mark.parametrize("method", ["fifo", "average"])
@settings(max_examples=100, deadline=None)
@given(ledger=ledgers())
def test_unpriced_assets_are_never_valued_at_zero(ledger, method: str) -> None:  # noqa: ANN001
    result = compute_pnl(ledger.fills, ledger.transfers, ledger.opening, ledger.marks, method=method)
    held = result.per_asset[(result.per_asset["quantity"] > 0) & ~result.per_asset["asset"].isin(["USDT", "USDC"])]
    unpriced = held[~held["asset"].isin(list(ledger.marks))]
    assert sorted(unpriced["asset"]) == result.unpriced_assets
    assert unpriced["market_value"].isna().all() and unpriced["unrealized"].isna().all()
    assert not unpriced["priced"].any()
    for asset in result.unpriced_assets:
        rows = result.holdings[result.holdings["asset"] == asset]
        assert rows["market_value"].isna().all()
        assert any(asset in w for w in result.warnings)
    priced = result.per_asset["priced"]
    assert result.totals.market_value == pytest.approx(result.per_asset.loc[priced, "market_value"].sum())


# --------------------------------------------------------------------------- behaviours


def test_oversell_gets_zero_basis_and_is_flagged() -> None:
    fills = frame([fill("1", 1, "BTC/USDT", "buy", 1.0, 100.0), fill("2", 2, "BTC/USDT", "sell", 3.0, 150.0)])
    result = compute_pnl(fills, marks={"BTC": 200.0})
    row = result.disposals.iloc[0]
    assert (row.basis, row.proceeds, row.unmatched_units) == pytest.approx((100.0, 450.0, 2.0))
    assert result.unmatched == {"BTC": pytest.approx(2.0)}
    assert result.per_asset.loc[0, "quantity"] == 0  # never a short position
    assert any("2 BTC had no matching acquisition" in w for w in result.warnings)
    # a later buy opens a fresh lot
    later = compute_pnl(pd.concat([fills, frame([fill("3", 3, "BTC/USDT", "buy", 1.0, 120.0)])]), marks={"BTC": 200})
    assert later.per_asset.loc[0, ["quantity", "cost_basis"]].tolist() == pytest.approx([1.0, 120.0])


def test_selling_everything_leaves_no_dust() -> None:
    fills = frame(
        [
            fill("1", 1, "ETH/USDT", "buy", 0.1, 10.0),
            fill("2", 2, "ETH/USDT", "buy", 0.2, 10.0),
            fill("3", 3, "ETH/USDT", "sell", 0.3, 10.0),
        ]
    )
    for method in ("fifo", "average"):
        result = compute_pnl(fills, method=method)
        assert result.per_asset.loc[0, "quantity"] == 0 and result.unmatched == {} and result.unpriced_assets == []


def test_ties_in_time_follow_numeric_trade_ids() -> None:
    fills = frame([fill("10", 5, "BTC/USDT", "buy", 1.0, 100.0), fill("9", 5, "BTC/USDT", "sell", 1.0, 110.0)])
    result = compute_pnl(fills, marks={"BTC": 100.0})
    assert result.unmatched == {"BTC": 1.0}  # trade 9 comes before trade 10, though "10" < "9" as text



def opening_lot(connector: int, ts: int, asset: str, amount: float, usd: float) -> dict:
    return {"connector_id": connector, "client_id": 1, "timestamp": ts, "asset": asset, "amount": amount, "usd": usd}


def test_tie_order_does_not_depend_on_other_rows_at_that_time() -> None:
    """Opening rows ("opening" ids) at the same time once turned every tie into text order."""
    fills = frame([fill("10", 5, "BTC/USDT", "buy", 1.0, 100.0), fill("9", 5, "BTC/USDT", "sell", 1.0, 110.0)])
    opening = frame([opening_lot(2, 5, "ETH", 1.0, 10.0), opening_lot(2, 5, "SOL", 1.0, 1.0)], OPENING_COLUMNS)
    result = compute_pnl(fills, opening=opening, marks={"BTC": 100.0, "ETH": 10.0, "SOL": 1.0})
    assert result.unmatched == {"BTC": 1.0}


def test_trade_ids_beyond_int64_keep_their_order() -> None:
    big = 10**19  # above int64: a float conversion would make these two ids equal
    fills = frame([fill(str(big + 1), 5, "BTC/USDT", "buy", 1.0, 100.0),
                   fill(str(big), 5, "BTC/USDT", "sell", 1.0, 110.0)])
    assert compute_pnl(fills, marks={"BTC": 100.0}).unmatched == {"BTC": 1.0}


def test_opening_lot_of_one_connector_never_precedes_another_connectors_history() -> None:
    """Connector 2, first synced on day 100, must not lend its lot to a sale on day 2 at connector 1."""
    fills = frame([fill("1", ms("2024-01-01"), "BTC/USDT", "buy", 1.0, 100.0),
                   fill("2", ms("2024-01-02"), "BTC/USDT", "sell", 1.0, 200.0)])
    opening = frame([opening_lot(2, ms("2024-04-10"), "BTC", 1.0, 5000.0)], OPENING_COLUMNS)
    everything = compute_pnl(fills, opening=opening, marks={"BTC": 5000.0})
    before_it = compute_pnl(fills, opening=opening, marks={"BTC": 5000.0}, end=ms("2024-02-01"))
    per_connector = compute_pnl(fills, opening=opening, marks={"BTC": 5000.0}, pool="connector")
    assert everything.totals.realized == pytest.approx(100.0)
    assert before_it.totals.realized == pytest.approx(100.0)
    assert per_connector.totals.realized == pytest.approx(100.0)
    assert everything.per_asset.loc[0, ["quantity", "opening_quantity"]].tolist() == pytest.approx([1.0, 1.0])


def test_opening_lot_counts_in_a_window_that_ends_before_the_first_sync() -> None:
    """The lot stands for units held before the history: a sale before the first sync draws on it."""
    fills = frame([fill("1", ms("2024-01-05"), "SOL/USDT", "sell", 2.0, 30.0)])
    opening = frame([opening_lot(1, ms("2024-03-01"), "SOL", 5.0, 20.0)], OPENING_COLUMNS)
    window = compute_pnl(fills, opening=opening, marks={"SOL": 30.0}, end=ms("2024-02-01"))
    whole = compute_pnl(fills, opening=opening, marks={"SOL": 30.0})
    assert window.unmatched == whole.unmatched == {}
    assert window.totals.realized == whole.totals.realized == pytest.approx(2 * 30.0 - 2 * 20.0)


def test_a_fee_in_base_is_valued_at_the_fills_own_price_not_the_days_close() -> None:
    """The candle close of the day (fee_usd 45000) would value the 0.01 BTC fee at 450, not 400."""
    fills = frame([fill("1", 5, "BTC/USDT", "buy", 1.0, 40000.0, 0.01, "BTC", fee_usd=45000.0)])
    result = compute_pnl(fills, marks={"BTC": 40000.0})
    assert result.totals.fees == pytest.approx(400.0)
    assert result.per_asset.loc[0, ["quantity", "cost_basis"]].tolist() == pytest.approx([0.99, 40000.0])

def test_deposits_and_withdrawals_move_lots_without_pnl() -> None:
    fills = frame([fill("1", 3, "ETH/USDT", "sell", 1.0, 3000.0)])
    transfers = frame(
        [
            transfer("d", 1, "deposit", "ETH", 2.0, 2000.0),
            transfer("w", 2, "withdrawal", "ETH", 0.5, 2500.0),
            transfer("c", 2, "deposit", "USDT", 1000.0, 1.0),
        ],
        TRANSFER_COLUMNS,
    )
    result = compute_pnl(fills, transfers, marks={"ETH": 4000.0})
    assert result.disposals["gain"].tolist() == pytest.approx([1000.0])  # only the sale realizes
    assert result.per_asset.loc[0, ["quantity", "cost_basis"]].tolist() == pytest.approx([0.5, 1000.0])
    assert result.totals.transfer_basis == pytest.approx(4000.0 - 1000.0)
    assert result.totals.net_cash_flow == pytest.approx(3000.0)  # cash deposits are not trade cash flow
    assert result.totals.invariant_gap == pytest.approx(0.0, abs=TOL)


def test_opening_lots_are_oldest_and_labelled() -> None:
    opening = frame(
        [{"connector_id": 1, "client_id": 1, "timestamp": 100, "asset": "SOL", "amount": 5.0, "usd": 20.0}],
        OPENING_COLUMNS,
    )
    fills = frame([fill("1", 10, "SOL/USDT", "buy", 5.0, 10.0), fill("2", 50, "SOL/USDT", "sell", 2.0, 30.0)])
    fifo = compute_pnl(fills, opening=opening, marks={"SOL": 30.0})
    assert fifo.disposals["basis"].tolist() == pytest.approx([40.0])  # from the opening lot, at 20
    assert fifo.per_asset.loc[0, ["quantity", "opening_quantity"]].tolist() == pytest.approx([8.0, 3.0])
    average = compute_pnl(fills, opening=opening, marks={"SOL": 30.0}, method="average")
    assert average.per_asset.loc[0, "opening_quantity"] == pytest.approx(5.0 * 8.0 / 10.0)


def test_window_counts_realized_inside_but_builds_lots_from_all_history() -> None:
    fills = frame(
        [
            fill("1", 10, "BTC/USDT", "buy", 2.0, 100.0),
            fill("2", 20, "BTC/USDT", "sell", 1.0, 150.0),
            fill("3", 30, "BTC/USDT", "sell", 0.5, 200.0),
            fill("4", 40, "BTC/USDT", "buy", 9.0, 1.0),
        ]
    )
    result = compute_pnl(fills, marks={"BTC": 300.0}, start=25, end=35)
    assert result.disposals["source_id"].tolist() == ["3"]
    assert result.totals.realized == pytest.approx(50.0)
    assert result.per_asset.loc[0, ["quantity", "cost_basis"]].tolist() == pytest.approx([0.5, 50.0])
    assert result.totals.net_cash_flow == pytest.approx(100.0)


def test_cash_to_cash_conversion_is_realized() -> None:
    fills = frame([fill("1", 1, "USDC/USDT", "buy", 1000.0, 1.001, 0.5, "USDT")])
    result = compute_pnl(fills)
    row = result.disposals.iloc[0]
    assert (row.asset, row.kind) == ("USDT", "conversion")
    assert row.gain == pytest.approx(1000.0 - 1001.0 - 0.5)
    assert result.totals.realized == pytest.approx(result.totals.net_cash_flow)


def test_usd_like_is_configurable() -> None:
    fills = frame([fill("1", 1, "BTC/EUR", "buy", 1.0, 100.0, quote_usd=1.1)])
    as_cash = compute_pnl(fills, marks={"BTC": 120.0}, usd_like=frozenset({"EUR"}))
    assert as_cash.per_asset.set_index("asset").loc["BTC", "cost_basis"] == pytest.approx(100.0)
    as_asset = compute_pnl(fills, marks={"BTC": 120.0})
    assert as_asset.per_asset.set_index("asset").loc["BTC", "cost_basis"] == pytest.approx(110.0)
    assert as_asset.unpriced_assets == []  # EUR is not held: the buy disposed of it (unmatched)
    assert as_asset.unmatched == {"EUR": pytest.approx(100.0)}


def test_pooling_and_summaries() -> None:
    fills = frame(
        [
            fill("1", 1, "BTC/USDT", "buy", 1.0, 100.0, connector=1, client=7),
            fill("2", 2, "BTC/USDT", "buy", 1.0, 200.0, connector=2, client=8),
            fill("3", 3, "BTC/USDT", "sell", 1.0, 300.0, connector=2, client=8),
        ]
    )
    marks = {"BTC": 400.0}
    scope = compute_pnl(fills, marks=marks)
    per_connector = compute_pnl(fills, marks=marks, pool="connector")
    assert scope.totals.realized == pytest.approx(200.0)  # FIFO across connectors: the lot bought on 1
    assert per_connector.totals.realized == pytest.approx(100.0)  # connector 2's own lot
    for result in (scope, per_connector):
        for summary in (by_connector(result), by_client(result)):
            assert summary["realized"].sum() == pytest.approx(result.totals.realized)
            assert summary["unrealized"].sum() == pytest.approx(result.totals.unrealized)
        held = by_connector(result).set_index("connector_id")
        assert held.loc[1, "market_value"] == pytest.approx(400.0)  # the unit lies on connector 1
        assert held.loc[2, "realized"] == pytest.approx(result.totals.realized)
    assert by_client(scope).set_index("client_id").loc[7, "unrealized"] == pytest.approx(400.0 - 200.0)


def test_empty_input() -> None:
    result = compute_pnl(frame([]), marks={})
    assert result.totals.realized == 0 and result.per_asset.empty and result.disposals.empty
    assert tuple(result.disposals.columns) == DISPOSAL_COLUMNS
    assert by_connector(result).empty


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="side"):
        compute_pnl(frame([fill("1", 1, "BTC/USDT", "hold", 1.0, 1.0)]))
    with pytest.raises(ValueError, match="lacks columns"):
        compute_pnl(frame([]).drop(columns="quote_usd"))
    with pytest.raises(ValueError, match="transfer type"):
        compute_pnl(frame([]), frame([transfer("t", 1, "airdrop", "BTC", 1.0, 1.0)], TRANSFER_COLUMNS))
    with pytest.raises(ValueError, match="method"):
        compute_pnl(frame([]), method="lifo")  # type: ignore[arg-type]


def test_unvalued_fill_is_reported() -> None:
    fills = frame([fill("x1", 1, "ETH/BTC", "buy", 1.0, 0.05, quote_usd=math.nan)])
    result = compute_pnl(fills, marks={"ETH": 1.0, "BTC": 1.0})
    assert any("could not be valued" in w and "x1" in w for w in result.warnings)


@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1e6)), min_size=1, max_size=300))
def test_affine_scan_matches_the_loop(pairs: list[tuple[float, float]]) -> None:
    alpha, beta = np.array(pairs).T
    want, x = [], 0.0
    for a, b in pairs:
        x = a * x + b
        want.append(x)
    assert affine_scan(alpha, beta) == pytest.approx(want, rel=1e-9, abs=1e-6)


def test_a_zero_opening_lot_is_no_holding_and_no_error() -> None:
    """Regression: an empty per-asset frame used to adopt a row of NaNs (and crash on ``priced``)."""
    import numpy as np
    import pandas as pd

    from lib.pnl import FILL_COLUMNS, OPENING_COLUMNS, compute_pnl

    fills = pd.DataFrame({c: pd.Series(dtype=object) for c in FILL_COLUMNS})
    opening = pd.DataFrame([{"connector_id": 1, "client_id": 1, "timestamp": 2_000, "asset": "XYZ",
                             "amount": 0.0, "usd": np.nan}])[list(OPENING_COLUMNS)]
    result = compute_pnl(fills, None, opening, {})
    assert result.per_asset.empty and result.totals.realized == 0 and result.unpriced_assets == []
