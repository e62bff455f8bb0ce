"""The period identity on random ledgers: closing - opening - net flows is explained exactly by
realized + change in unrealized (+ the unrealized gain withdrawals carried out, - the basis
change of unpriced holdings), for any window, method and pooling (lib.pnl.period)."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lib.pnl import compute_pnl
from lib.pnl.period import period_pnl
from tests.test_pnl_reference import COINS, Ledger, ledgers, random_ledger

MARKS = st.dictionaries(st.sampled_from(COINS), st.sampled_from([1.5, 600.0, 45000.0]))
EDGES = st.one_of(st.none(), st.integers(0, 13).map(lambda t: t * 1000 + 500))


def _scale(ledger: Ledger) -> float:
    """The ledger's turnover in USD-ish units, to size the round-off allowance."""
    fills = ledger.fills
    return float((fills["cost"].abs() * 60000).sum() + (ledger.transfers["amount"].abs() * 60000).sum()) + 1.0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ledger=ledgers(), marks_start=MARKS, start=EDGES, length=st.integers(1, 14000),
       method=st.sampled_from(["fifo", "average"]), pool=st.sampled_from(["scope", "connector"]))
def test_identity_holds_on_random_ledgers(ledger: Ledger, marks_start: dict, start: int | None, length: int,
                                          method: str, pool: str) -> None:
    end = None if start is None and length > 13000 else (start or 0) + length
    period = period_pnl(ledger.fills, ledger.transfers, ledger.opening, marks_start, ledger.marks, start=start,
                        end=end, method=method, pool=pool)
    totals = period.totals
    assert abs(totals.identity_gap) <= 1e-9 * _scale(ledger), totals
    assert totals.unrealized_change == pytest.approx(totals.unrealized_end - totals.unrealized_start)
    if start is None:
        assert totals.opening_value == 0.0 and totals.unrealized_start == 0.0


@pytest.mark.parametrize("method", ["fifo", "average"])
def test_window_realized_and_edges_match_the_engine(method: str) -> None:
    """Realized is the window's disposals only; the start edge is the whole history up to it."""
    ledger = random_ledger(7, 400)
    marks_start = {asset: mark * 0.9 for asset, mark in ledger.marks.items()}
    start, end = 60_000, 150_000
    period = period_pnl(ledger.fills, ledger.transfers, ledger.opening, marks_start, ledger.marks, start=start,
                        end=end, method=method)
    everything = compute_pnl(ledger.fills, ledger.transfers, ledger.opening, ledger.marks, method=method,
                             end=end - 1)
    before = compute_pnl(ledger.fills, ledger.transfers, ledger.opening, marks_start, method=method, end=start - 1)
    totals = period.totals
    assert totals.realized == pytest.approx(everything.totals.realized - before.totals.realized)
    assert totals.unrealized_start == pytest.approx(before.totals.unrealized)
    assert totals.unrealized_end == pytest.approx(everything.totals.unrealized)
    assert abs(totals.identity_gap) <= 1e-9 * _scale(ledger)
    assert math.isfinite(totals.opening_value) and totals.opening_value != 0.0


def test_withdrawal_carries_its_gain_out() -> None:
    """Buy 1 BTC at 40,000 with deposited cash, withdraw it when it is worth 50,000: no realized P&L
    (PNL.md), the flow counts 50,000 out, and the 10,000 left as withdrawn unrealized."""
    import pandas as pd

    from lib.pnl import FILL_COLUMNS, OPENING_COLUMNS, TRANSFER_COLUMNS

    fills = pd.DataFrame([[1, 1, "1", 2000, "BTC/USDT", "BTC", "USDT", "buy", 1.0, 40000.0, 40000.0, 0.0, None,
                           1.0, math.nan]], columns=list(FILL_COLUMNS))
    transfers = pd.DataFrame([[1, 1, "d", 1000, "deposit", "USDT", 40000.0, 1.0],
                              [1, 1, "w", 3000, "withdrawal", "BTC", 1.0, 50000.0]], columns=list(TRANSFER_COLUMNS))
    opening = pd.DataFrame(columns=list(OPENING_COLUMNS))
    totals = period_pnl(fills, transfers, opening, {}, {"BTC": 55000.0}, start=None, end=None).totals
    assert (totals.opening_value, totals.closing_value) == (0.0, 0.0)
    assert (totals.deposits, totals.withdrawals, totals.net_flows) == (40000.0, 50000.0, -10000.0)
    assert (totals.realized, totals.unrealized_change) == (0.0, 0.0)
    assert totals.withdrawn_unrealized == pytest.approx(10000.0)
    assert totals.identity_gap == pytest.approx(0.0)
