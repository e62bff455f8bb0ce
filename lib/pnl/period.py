"""Period P&L for a window [start, end): what the holdings were worth at both edges, what came
in and went out, and how the change splits into realized and unrealized P&L.

The figures are built from the same lots as ``compute_pnl`` (run once up to the window's
start and once up to its end), so the identity below holds exactly, not approximately:

    closing - opening - net_flows
        = realized + unrealized_change + withdrawn_unrealized - unpriced_basis_change

- opening / closing value: USD-like cash (at 1.0) plus the market value of every priced lot
  pool at the edge's marks (``marks_start`` / ``marks_end``, from candles at that moment).
- net flows = value in - value out. In: cash deposits and cash opening balances at 1.0,
  non-cash deposits and opening lots at the value their lots were booked at (the market
  value at their time per PNL.md; 0 when there was no price, which ``lib.pnl`` warns about).
  Out: cash withdrawals at 1.0, non-cash withdrawals (and negative opening rows) at market
  value at their time (``usd``; 0 and named in ``unpriced_withdrawals`` when unknown).
- realized: disposals inside the window (fees are already inside proceeds and basis).
- unrealized_change: unrealized P&L at the end minus at the start (priced holdings).
- withdrawn_unrealized: a withdrawal takes its units out at their cost basis without
  realizing anything (PNL.md), while the flow counts them at market value; the difference
  (market value - basis of the withdrawn units) is the unrealized gain that left with them.
  Zero when nothing non-cash was withdrawn.
- unpriced_basis_change: holdings without a mark are left out of both values and of
  unrealized; their remaining cost basis at the end minus at the start closes the books.
  Zero when every holding is priced at both edges.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lib.pnl import compute_pnl
from lib.pnl.ledger import OPENING_COLUMNS, TRANSFER_COLUMNS, date_opening_lots
from lib.pnl.matching import Method
from lib.pnl.result import PnlResult
from lib.prices import DEFAULT_USD_LIKE


@dataclass(frozen=True)
class PeriodTotals:
    """The window's figures in USD; see the module docstring for each definition."""

    opening_value: float
    closing_value: float
    deposits: float
    withdrawals: float
    net_flows: float
    realized: float
    unrealized_start: float
    unrealized_end: float
    unrealized_change: float
    withdrawn_unrealized: float
    unpriced_basis_change: float
    fees: float

    @property
    def identity_gap(self) -> float:
        """(closing - opening - net flows) minus its explanation; zero up to float round-off."""
        explained = self.realized + self.unrealized_change + self.withdrawn_unrealized - self.unpriced_basis_change
        return self.closing_value - self.opening_value - self.net_flows - explained


@dataclass(frozen=True)
class Period:
    totals: PeriodTotals
    window: PnlResult  # realized, fees and disposals inside the window; holdings at its end
    unpriced_withdrawals: list[str]  # assets withdrawn in the window with no price at the time
    unpriced_at_start: list[str]  # assets held at the start with no mark then (not in the opening value)
    at_start: PnlResult | None = None  # holdings just before the window (None: the window starts at history's)


def _cash(frame: pd.DataFrame, column: str, usd_like: frozenset[str]) -> np.ndarray:
    return frame[column].isin(usd_like).to_numpy(bool)


def _cash_level(transfers: pd.DataFrame, opening: pd.DataFrame, cut: int | None, net_cash_flow: float,
                usd_like: frozenset[str]) -> float:
    """USD-like units held at ``cut`` (inclusive): opening cash, cash transfers and the trades' cash flow."""
    def upto(frame: pd.DataFrame) -> pd.DataFrame:
        return frame if cut is None else frame[frame["timestamp"].to_numpy(np.int64) <= cut]

    moves, lots = upto(transfers), upto(opening)
    sign = np.where(moves["type"].to_numpy() == "deposit", 1.0, -1.0)
    moved = np.abs(moves["amount"].to_numpy(np.float64, na_value=0.0)) * sign
    held = lots["amount"].to_numpy(np.float64, na_value=0.0)
    return float(moved[_cash(moves, "currency", usd_like)].sum() + held[_cash(lots, "asset", usd_like)].sum()
                 + net_cash_flow)


@dataclass(frozen=True)
class _Flows:
    value_in: float
    value_out: float
    cash_out: float  # the part of value_out that is cash (no lot, so no basis)
    unpriced: list[str]  # non-cash assets that left with no price at the time


def _flows(transfers: pd.DataFrame, opening: pd.DataFrame, usd_like: frozenset[str]) -> _Flows:
    """What the window's transfers and opening rows brought in and took out, in USD."""
    units = np.abs(transfers["amount"].to_numpy(np.float64, na_value=0.0))
    cash = _cash(transfers, "currency", usd_like)
    price = np.where(cash, 1.0, transfers["usd"].to_numpy(np.float64, na_value=np.nan))
    deposit = transfers["type"].to_numpy() == "deposit"
    amount = opening["amount"].to_numpy(np.float64, na_value=0.0)
    lot_cash = _cash(opening, "asset", usd_like)
    lot_price = np.where(lot_cash, 1.0, opening["usd"].to_numpy(np.float64, na_value=np.nan))
    moved, booked = np.nan_to_num(units * price), np.nan_to_num(amount * lot_price)
    unpriced = set(transfers["currency"][~deposit & np.isnan(price)]) | set(
        opening["asset"][(amount < 0) & np.isnan(lot_price)])
    return _Flows(
        value_in=float(moved[deposit].sum() + booked[amount > 0].sum()),
        value_out=float(moved[~deposit].sum() - booked[amount < 0].sum()),
        cash_out=float(moved[~deposit & cash].sum() - booked[(amount < 0) & lot_cash].sum()),
        unpriced=sorted(map(str, unpriced)),
    )


def period_pnl(
    fills: pd.DataFrame,
    transfers: pd.DataFrame,
    opening: pd.DataFrame,
    marks_start: Mapping[str, float],
    marks_end: Mapping[str, float],
    *,
    start: int | None,
    end: int | None,
    method: Method = "fifo",
    pool: str = "scope",
    usd_like: frozenset[str] = DEFAULT_USD_LIKE,
) -> Period:
    """The window [start, end) (ms; None: from the first event / up to the last) of a ledger.

    ``transfers`` are the balance moves ``lib.pnl`` takes (a withdrawal's fee in its own
    currency inside ``amount``), ``opening`` its opening lots; both with ``usd`` per unit.
    """
    transfers = transfers[list(TRANSFER_COLUMNS)]
    opening = date_opening_lots(opening[list(OPENING_COLUMNS)], fills, transfers)  # as the engine dates them
    last = None if end is None else end - 1
    window = compute_pnl(fills, transfers, opening, marks_end, method=method, pool=pool, start=start, end=last,
                         usd_like=usd_like)
    at_start = None if start is None else compute_pnl(fills, transfers, opening, marks_start, method=method,
                                                      pool=pool, end=start - 1, usd_like=usd_like)
    return period_of(window, at_start, transfers, opening, start=start, end=end, usd_like=usd_like)


def period_of(window: PnlResult, at_start: PnlResult | None, transfers: pd.DataFrame, opening: pd.DataFrame, *,
              start: int | None, end: int | None, usd_like: frozenset[str] = DEFAULT_USD_LIKE) -> Period:
    """``period_pnl`` from its engine runs (the window's, and the one up to its start unless ``start``
    is None), however they were made: a resumed run (``lib.pnl.state``) gives the same figures.
    ``opening`` is dated as the engine dates it (``date_opening_lots``)."""
    transfers = transfers[list(TRANSFER_COLUMNS)]
    last = None if end is None else end - 1
    if at_start is None:
        before_cash, before, unpriced_at_start = 0.0, None, []
    else:
        before, unpriced_at_start = at_start.totals, list(at_start.unpriced_assets)
        before_cash = _cash_level(transfers, opening, start - 1, before.net_cash_flow, usd_like)
    after = window.totals
    closing_cash = _cash_level(transfers, opening, last, (before.net_cash_flow if before else 0.0)
                               + after.net_cash_flow, usd_like)

    def inside(frame: pd.DataFrame) -> pd.DataFrame:
        stamp = frame["timestamp"].to_numpy(np.int64)
        keep = np.ones(len(frame), bool) if start is None else stamp >= start
        return frame[keep & (True if last is None else stamp <= last)]

    flows = _flows(inside(transfers), inside(opening), usd_like)
    start_unrealized = before.unrealized if before else 0.0
    totals = PeriodTotals(
        opening_value=(before.market_value if before else 0.0) + before_cash,
        closing_value=after.market_value + closing_cash,
        deposits=flows.value_in,
        withdrawals=flows.value_out,
        net_flows=flows.value_in - flows.value_out,
        realized=after.realized,
        unrealized_start=start_unrealized,
        unrealized_end=after.unrealized,
        unrealized_change=after.unrealized - start_unrealized,
        withdrawn_unrealized=flows.value_out - flows.cash_out - after.withdrawn_basis,
        unpriced_basis_change=after.unpriced_cost_basis - (before.unpriced_cost_basis if before else 0.0),
        fees=after.fees,
    )
    return Period(totals, window, flows.unpriced, unpriced_at_start, at_start)

