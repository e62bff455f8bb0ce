"""Contract fills in the P&L engine: no base acquired and no quote spent; the exchange's realised
P&L (settle currency, valued at the fill's time) less the fee is realized; a fill without its
realised P&L is named, never counted as 0 silently. The invariant and the period identity hold."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from lib.pnl import FILL_COLUMNS, compute_pnl
from lib.pnl.period import period_pnl
from tests.test_pnl import fill, frame, ms

COLUMNS = (*FILL_COLUMNS, "realized_pnl")


def contract(trade_id: str, ts: int, side: str, amount: float, price: float, pnl: float, fee: float,
             symbol: str = "BTC/USDT:USDT", fee_currency: str = "USDT", fee_usd: float = math.nan) -> dict:
    """A contract fill as lib.queries.pnl_fills gives it: quote without the settle suffix."""
    base, _, rest = symbol.partition("/")
    return {**fill(trade_id, ts, f"{base}/{rest.partition(':')[0]}", side, amount, price, fee, fee_currency,
                   fee_usd=fee_usd), "symbol": symbol, "realized_pnl": pnl}


def spot(trade_id: str, ts: int, side: str, amount: float, price: float) -> dict:
    return {**fill(trade_id, ts, "BTC/USDT", side, amount, price, 0.1, "USDT"), "realized_pnl": math.nan}


def ledger() -> pd.DataFrame:
    return frame([
        spot("1", ms("2024-01-01"), "buy", 0.5, 40000.0),
        contract("2", ms("2024-01-02"), "buy", 2.0, 41000.0, 0.0, 49.2),
        contract("3", ms("2024-01-05"), "sell", 1.0, 43000.0, 2000.0, 25.8),
        contract("4", ms("2024-01-09"), "sell", 1.0, 40000.0, -1000.0, 24.0),
    ], COLUMNS)


@pytest.mark.parametrize("method", ["fifo", "average"])
def test_a_contract_fill_books_its_realised_pnl_less_its_fee_and_no_lots(method: str) -> None:
    result = compute_pnl(ledger(), marks={"BTC": 50000.0}, method=method)
    btc = result.per_asset.set_index("asset").loc["BTC"]
    assert btc.quantity == pytest.approx(0.5)  # only the spot buy: the contracts acquired no BTC
    assert btc.cost_basis == pytest.approx(20000.1)
    rows = result.disposals[result.disposals["kind"] == "contract"]
    assert list(rows["asset"]) == ["BTC/USDT:USDT"] * 3
    assert list(rows["gain"]) == pytest.approx([-49.2, 2000.0 - 25.8, -1000.0 - 24.0])
    assert result.totals.realized == pytest.approx(2000.0 - 1000.0 - 49.2 - 25.8 - 24.0)
    # USDT: -20000 - 0.1 for the spot buy, then the contracts' P&L less fees
    assert result.totals.net_cash_flow == pytest.approx(-20000.1 + 1000.0 - 99.0)
    assert result.totals.invariant_gap == pytest.approx(0.0, abs=1e-6)
    assert result.warnings == []


def test_a_contract_fill_without_realised_pnl_is_named_and_only_its_fee_counts() -> None:
    fills = ledger()
    fills.loc[fills["trade_id"] == "3", "realized_pnl"] = math.nan
    result = compute_pnl(fills, marks={"BTC": 50000.0})
    assert result.totals.realized == pytest.approx(-1000.0 - 49.2 - 25.8 - 24.0)
    named = [w for w in result.warnings if "no realised P&L" in w]
    assert len(named) == 1 and "BTC/USDT:USDT" in named[0] and "1 contract fill(s)" in named[0] and "3" in named[0]
    assert "BTC" not in set(result.disposals["asset"])  # still no spot replay


def test_a_frame_without_the_column_names_every_contract_fill() -> None:
    fills = ledger().drop(columns="realized_pnl")
    result = compute_pnl(fills, marks={"BTC": 50000.0})
    assert any("3 contract fill(s)" in w for w in result.warnings)


def test_pnl_settled_in_a_non_cash_asset_moves_its_lots() -> None:
    """An inverse contract (BTC/USD:BTC): a gain in BTC is a BTC lot at its value then; a loss in BTC
    is a disposal of BTC at its value then; the BTC fee is a third-asset fee."""
    fills = frame([
        contract("1", ms("2024-01-01"), "sell", 100.0, 40000.0, 0.02, 0.0001, "BTC/USD:BTC", "BTC", 40000.0),
        contract("2", ms("2024-01-03"), "buy", 100.0, 45000.0, -0.005, 0.0001, "BTC/USD:BTC", "BTC", 45000.0),
    ], COLUMNS)
    result = compute_pnl(fills, marks={"BTC": 50000.0})
    btc = result.per_asset.set_index("asset").loc["BTC"]
    assert btc.quantity == pytest.approx(0.02 - 0.0001 - 0.005 - 0.0001)
    contract_gain = 0.02 * 40000 - 0.0001 * 40000 - 0.005 * 45000 - 0.0001 * 45000
    rows = result.disposals
    assert rows.loc[rows["asset"] == "BTC/USD:BTC", "gain"].sum() == pytest.approx(contract_gain)
    # the BTC paid out on day 3 (loss and fee) was bought on day 1 at 40000: a gain on the BTC itself
    assert rows.loc[rows["asset"] == "BTC", "gain"].sum() == pytest.approx(0.0051 * (45000 - 40000))
    assert result.totals.invariant_gap == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("method", ["fifo", "average"])
def test_the_period_identity_holds_with_contract_fills(method: str) -> None:
    empty_transfers = pd.DataFrame(columns=["connector_id", "client_id", "transfer_id", "timestamp", "type",
                                            "currency", "amount", "usd"])
    empty_opening = pd.DataFrame(columns=["connector_id", "client_id", "timestamp", "asset", "amount", "usd"])
    period = period_pnl(ledger(), empty_transfers, empty_opening, {"BTC": 42000.0}, {"BTC": 50000.0},
                        start=ms("2024-01-04"), end=ms("2024-01-10"), method=method)
    assert period.totals.realized == pytest.approx(2000.0 - 1000.0 - 25.8 - 24.0)
    assert period.totals.identity_gap == pytest.approx(0.0, abs=1e-6)
