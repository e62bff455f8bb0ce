"""One connector's implied balance per asset as sums, cheaply: what a sync needs of it.

Every sync records whether the connector's history explains its newest balance snapshot
(``connector_status``: the moves up to it against it, with reconciliation's tolerance), and the
first sync books opening balances for what the history does not explain (``exact_totals``: every
move added up, exactly). Both are per-asset sums of the moves ``lib.rebuild`` defines, but
``rebuild.balance_moves`` builds one row per move in pandas (Python ``Decimal`` objects when
exact): tens of milliseconds per connector, for every connector of every run, on the sync's one
database thread. Here the result is the same from a few rows:

- fills (nearly all of the rows) are summed per group of everything the rule reads besides the
  amounts: symbol, base, quote, side, fee currency, the fee's sign, whether realised P&L is
  reported, and (for the status) whether the fill is later than the snapshot. The rule is
  linear in the amounts with one sign per group, so the group's sums go through
  ``rebuild.fill_changes`` itself (the rule stays written once) and move each asset by the sum
  of its fills' moves. The fee's sign and the P&L's presence are in the key so a group never
  cancels to nothing an asset its fills name (rebuild names an asset moved by +1 and -1), and
  each group's first fill is a fill that moves a balance (it dates the opening balances);
- transfers, ledger income and opening balances are few per connector: read row by row, the
  database keeping only the ones that count (the filters of ``lib.rebuild``).

Exactness: ``exact_totals`` adds ``Decimal`` in Python on both dialects. SQLite stores amounts as
decimal text (``lib.models.Amount``) and its SUM would convert them to float; PostgreSQL's
NUMERIC SUM would be exact, but one Python path keeps the two dialects' figures the same by
construction and costs a few milliseconds for a thousand fills. ``connector_status`` sums in
float64 in SQL, as reconciliation does (amounts cast to double by the database): its sums differ
from ``balance_moves``' only in the order of the additions, a round-off far inside
reconciliation's tolerance, which is what bounds it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from typing import Any

import pandas as pd
from sqlalchemy import ColumnElement, Double, and_, case, cast, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from lib.models import BalanceSnapshot, LedgerEntry, OpeningBalance, Trade, Transfer, to_decimal
from lib.queries import driver_rows
from lib.rebuild import DEAD_STATUSES, EXACT_DIGITS, LEDGER_INCOME_TYPES, fill_changes
from lib.reconcile import Status, tolerance

#: what ``rebuild.fill_changes`` reads of a fill, besides ``connector_id``
FILL_COLUMNS = ["timestamp", "symbol", "base", "quote", "side", "amount", "cost", "fee_cost", "fee_currency",
                "realized_pnl"]
#: one balance move: (asset, time in ms, signed change)
Move = tuple[str, int, Any]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _number(value: Any, exact: bool) -> Any:  # noqa: ANN401 - Decimal or float
    """A stored amount as ``rebuild`` reads it: ``Decimal`` (exact) or float; None is 0."""
    if exact:
        return Decimal(0) if value is None else to_decimal(value)
    return 0.0 if value is None else float(value)


def _amount(column: InstrumentedAttribute[Any], exact: bool) -> ColumnElement[Any]:
    """The column as stored (exact) or cast to double by the database (as ``rebuild`` reads it)."""
    return column if exact else cast(column, Double)



def _moves(frames: Iterable[pd.DataFrame]) -> Iterator[Move]:
    """The moves of ``fill_changes`` frames that name an asset."""
    for frame in frames:
        named = frame[frame["asset"].notna()]
        yield from zip(named["asset"].astype(str), named["timestamp"].astype(int), named["change"], strict=True)


# --- fills --------------------------------------------------------------------------------

def _exact_fill_groups(session: Session, connector_id: int) -> pd.DataFrame:
    """The connector's fills summed per group (see the module's note) with ``Decimal`` sums;
    ``timestamp`` is the group's first fill. Realised P&L stays None where none is reported."""
    query = select(Trade.timestamp, Trade.symbol, Trade.base, Trade.quote, Trade.side, Trade.fee_currency,
                   Trade.amount, Trade.cost, Trade.fee_cost, Trade.realized_pnl).where(
        Trade.connector_id == connector_id)
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for at, symbol, base, quote, side, fee_currency, amount, cost, fee, pnl in driver_rows(session, query):
        fee = _number(fee, True)
        key = (symbol, base, quote, side, fee_currency, (fee > 0) - (fee < 0), pnl is None)
        group = groups.get(key)
        if group is None:
            groups[key] = group = [at, Decimal(0), Decimal(0), Decimal(0), None if pnl is None else Decimal(0)]
        group[0] = min(group[0], at)
        group[1] += _number(amount, True)
        group[2] += _number(cost, True)
        group[3] += fee
        if pnl is not None:
            group[4] += _number(pnl, True)
    rows = [(at, *key[:4], amount, cost, fee, key[4], pnl)
            for key, (at, amount, cost, fee, pnl) in groups.items()]
    return pd.DataFrame.from_records(rows, columns=FILL_COLUMNS).assign(connector_id=connector_id)


def _float_fill_groups(session: Session, connector_id: int, cut: int) -> pd.DataFrame:
    """The connector's fills summed in float64 by the database per group (see the module's
    note), fills up to ``cut`` (ms) apart from later ones; ``timestamp`` is the group's first
    fill. Each group comes twice, told apart by ``connector_id`` (one connector here): 0 with
    the sums, 1 with the sums of absolute values (its turnover), so one pass of the rule moves
    both."""
    amount, cost, fee, pnl = (cast(c, Double) for c in (Trade.amount, Trade.cost, Trade.fee_cost, Trade.realized_pnl))
    fee_sign = case((fee > 0, 1), (fee < 0, -1), else_=0)
    query = (select(func.min(Trade.timestamp), Trade.symbol, Trade.base, Trade.quote, Trade.side,
                    Trade.fee_currency, func.sum(amount), func.sum(cost), func.sum(fee), func.sum(pnl),
                    func.sum(func.abs(amount)), func.sum(func.abs(cost)), func.sum(func.abs(fee)),
                    func.sum(func.abs(pnl)))
             .where(Trade.connector_id == connector_id)
             .group_by(Trade.symbol, Trade.base, Trade.quote, Trade.side, Trade.fee_currency, fee_sign,
                       Trade.realized_pnl.is_(None), Trade.timestamp > cut))
    rows = driver_rows(session, query)
    twice = [(half, at, symbol, base, quote, side, *sums[4 * half:4 * half + 3], fee_currency, sums[4 * half + 3])
             for half in (0, 1) for at, symbol, base, quote, side, fee_currency, *sums in rows]
    return pd.DataFrame.from_records(twice, columns=["connector_id", *FILL_COLUMNS])


# --- transfers, ledger income, opening balances -------------------------------------------

def _other_moves(session: Session, connector_id: int, first_fill: int | None, exact: bool) -> list[Move]:
    """Credited transfers, ledger income and opening balances as moves, by ``lib.rebuild``'s
    rule; ``first_fill``: the time of the first fill that moves a balance (ms), which with the
    first transfer, ledger entry and snapshot dates the opening balances."""
    moves: list[Move] = []
    deposit = Transfer.type == "deposit"
    credited = or_(and_(deposit, or_(Transfer.status.is_(None), Transfer.status == "ok")),
                   and_(~deposit, or_(Transfer.status.is_(None), Transfer.status.not_in(DEAD_STATUSES))))
    transfers = select(Transfer.type, Transfer.timestamp, Transfer.currency, _amount(Transfer.amount, exact),
                       _amount(Transfer.fee_cost, exact), Transfer.fee_currency).where(
        Transfer.connector_id == connector_id, credited)
    for kind, at, currency, amount, fee, fee_currency in session.execute(transfers):
        if kind == "deposit":
            moves.append((currency, at, _number(amount, exact)))
        else:  # a withdrawal, with its fee when paid in the withdrawn currency
            paid = _number(fee, exact) if fee_currency is None or fee_currency == currency else 0
            moves.append((currency, at, -_number(amount, exact) - paid))
    ledger = select(LedgerEntry.timestamp, LedgerEntry.currency, _amount(LedgerEntry.amount, exact),
                    LedgerEntry.direction).where(LedgerEntry.connector_id == connector_id,
                                                 func.lower(LedgerEntry.type).in_(LEDGER_INCOME_TYPES))
    for at, currency, amount, direction in session.execute(ledger):
        value = _number(amount, exact)
        # unsigned with a direction; without one, the amount's own sign
        out = direction == "out" or (direction != "in" and value < 0)
        moves.append((currency, at, -abs(value) if out else abs(value)))
    opening = session.execute(select(OpeningBalance.asset, _amount(OpeningBalance.amount, exact),
                                     OpeningBalance.timestamp).where(OpeningBalance.connector_id == connector_id)).all()
    if opening:
        starts = [at for _, _, at in opening] + [at for _, at, _ in moves]
        starts += [] if first_fill is None else [first_fill]
        taken = session.scalar(select(func.min(BalanceSnapshot.taken_at)).where(
            BalanceSnapshot.connector_id == connector_id))
        starts += [] if taken is None else [(taken - _EPOCH) // timedelta(milliseconds=1)]
        start = min(starts)
        moves += [(asset, start, _number(amount, exact)) for asset, amount, _ in opening]
    return [m for m in moves if m[0] is not None]


# --- the sync's two uses ------------------------------------------------------------------

def exact_totals(session: Session, connector_id: int) -> dict[str, Decimal]:
    """What the whole stored history of one connector adds up to per asset, exactly: every move of
    ``rebuild.balance_moves`` added up (opening balances included), which the first sync compares
    with the exchange's holdings to book opening balances (tests/test_implied_totals.py compares
    it with that long way)."""
    totals: dict[str, Decimal] = {}
    with localcontext(prec=EXACT_DIGITS):  # exact sums of 24-digit amounts need more than 28 digits
        fills = list(_moves(fill_changes(_exact_fill_groups(session, connector_id), exact=True)))
        first = min((at for _, at, _ in fills), default=None)
        for asset, _, change in (*fills, *_other_moves(session, connector_id, first, exact=True)):
            totals[str(asset)] = totals.get(str(asset), Decimal(0)) + change
    return totals


def _implied(session: Session, connector_id: int, cut: int) -> dict[str, tuple[float, float]]:
    """Per asset the history names: (implied balance, turnover = sum of |change|) over the moves
    up to ``cut`` (ms, inclusive), float64; (0, 0) for an asset moved only later."""
    implied: dict[str, list[float]] = {}
    first: int | None = None
    for frame in fill_changes(_float_fill_groups(session, connector_id, cut)):
        named = frame[frame["asset"].notna()]
        for swing, asset, at, change in zip(named["connector_id"], named["asset"].astype(str),
                                            named["timestamp"].astype(int), named["change"], strict=True):
            sums = implied.setdefault(asset, [0.0, 0.0])
            first = at if first is None else min(first, at)
            if at <= cut:
                sums[swing] += abs(change) if swing else change
    for asset, at, change in _other_moves(session, connector_id, first, exact=False):
        sums = implied.setdefault(asset, [0.0, 0.0])
        if at <= cut:
            sums[0] += change
            sums[1] += abs(change)
    return {asset: (balance, turnover) for asset, (balance, turnover) in implied.items()}


def connector_status(session: Session, connector_id: int) -> tuple[Status, int]:
    """What a sync records for its connector: "unbalanced" with how many assets; else "unknown"
    when nothing can be compared or a reported asset has no history at all; else "balanced".
    Only the newest snapshot decides it: the moves up to it against it, asset by asset, within
    ``reconcile.tolerance`` (so this runs once per connector per sync without the page's per-day
    comparison, USD values or causes)."""
    newest = session.scalar(select(func.max(BalanceSnapshot.taken_at)).where(
        BalanceSnapshot.connector_id == connector_id))
    if newest is None:
        return "unknown", 0
    reported: dict[str, float] = {}
    for asset, total in session.execute(select(BalanceSnapshot.asset, cast(BalanceSnapshot.total, Double)).where(
            BalanceSnapshot.connector_id == connector_id, BalanceSnapshot.taken_at == newest)):
        reported[asset] = reported.get(asset, 0.0) + float(total or 0.0)
    implied = _implied(session, connector_id, int(newest.timestamp() * 1000))
    unbalanced = unknown = 0
    for asset in implied.keys() | reported.keys():
        held = reported.get(asset, 0.0)
        balance, turnover = implied.get(asset, (0.0, 0.0))
        if abs(held - balance) > tolerance(turnover, held):
            unbalanced += asset in implied
            unknown += asset not in implied
    if unbalanced:
        return "unbalanced", unbalanced
    return ("unknown", 0) if unknown or not (implied.keys() | reported.keys()) else ("balanced", 0)
