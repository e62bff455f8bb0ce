"""The balances the stored history implies, per (connector, asset) and over time.

Reconciliation (``lib.reconcile``) compares them with what the exchange reported; the equity
curve values them on past days. One rule, written here, decides what moves a balance:

- an opening balance (``opening_balances``, booked at the first sync for holdings older
  history would explain) stands at the start of the connector's history: at its first stored
  event or first balance snapshot, whichever is earlier (and never after its own booking);
- a spot fill moves its base (+amount on a buy, -amount on a sell) and its quote (-cost on a
  buy, +cost on a sell); a fill of a contract (ccxt's ``BTC/USDT:USDT``) moves no base or
  quote but adds its realised P&L (``Trade.realized_pnl``, as the exchange reported it) to its
  settle currency (after the colon); where the exchange reported none, nothing (``lib.reconcile``
  names that cause); every fill's fee leaves the fee currency (``fill_changes``, also the rule
  of the P&L's holdings weights in ``lib.reports``);
- a deposit counts once credited (status ``ok`` or none reported); a pending one counts only
  when it settles (``pending_transfers`` lists them); failed and canceled ones never count;
- a withdrawal counts unless it failed or was canceled (an exchange debits it when it is
  requested), with its fee when the fee is paid in the withdrawn currency; this is the rule
  of ``lib.reports.as_balance_moves`` and of the first sync's opening balances;
- an account-ledger entry counts only when its type is one that no other stream carries
  (``LEDGER_INCOME_TYPES``: funding, interest, rebates, rewards...); trades, fees, deposits,
  withdrawals and transfers in the ledger are the same money as the fills and transfers
  above, and counting them again would double it.

Account types: the history cannot place money in one account type. Fills happen in the
default (trading) account, but deposits land where the exchange puts them (OKX and Bybit:
the funding account) and internal transfers between account types appear in no stream ccxt
unifies for history (the simulator does not record them either). So a connector's implied
balance of an asset is compared with the sum of its account types (``lib.reconcile``).

Use: ``balance_moves(session, connector_ids)`` gives every change (``MOVE_COLUMNS``): the
fills' (``fill_changes``) and the others' (``other_moves``), so a caller that keeps the first
can re-read only the second. ``lib.balance_index`` answers the balance of each (connector,
asset) at any moment from them. Amounts are summed in float64 (the database casts them), and
reconciliation's tolerance covers the round-off; ``exact=True`` keeps ``Decimal`` (the first
sync's opening balances, balances at a past day).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, localcontext
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import ColumnElement, Double, cast, func, select, true
from sqlalchemy.orm import InstrumentedAttribute, Session

from lib import queries
from lib.access import SYSTEM
from lib.models import BalanceSnapshot, LedgerEntry, OpeningBalance, Trade, Transfer, to_decimal
from lib.pnl.ledger import settle_currency
from lib.queries import driver_frame

#: one signed change of one asset's balance: ``kind`` is opening, fill, fee, deposit,
#: withdrawal or ledger
MOVE_COLUMNS = ["connector_id", "asset", "timestamp", "change", "kind"]
#: ccxt's unified ledger types that move a balance and appear in no other stream
#: (https://docs.ccxt.com/#/README?id=ledger-entry-structure: "trade", "transaction", "fee",
#: "rebate", "cashback", "referral", "transfer", "airdrop", "reward", "funding", ...)
LEDGER_INCOME_TYPES = ("funding", "interest", "rebate", "cashback", "referral", "airdrop", "reward", "bonus")
#: transfer statuses that never moved money
DEAD_STATUSES = ("failed", "canceled")
#: significant digits of exact sums: 24-digit amounts with room for any number of them
EXACT_DIGITS = 60
#: up to this many connectors, fills are read from SQL rather than the whole fill store
SQL_CONNECTORS = 5
PENDING_COLUMNS = ["connector_id", "asset", "timestamp", "type", "amount", "transfer_id"]


def _within(column: ColumnElement[int], ids: Sequence[int] | None) -> ColumnElement[bool]:
    return true() if ids is None else column.in_(list(ids))



def _amount(column: InstrumentedAttribute[Any], exact: bool) -> ColumnElement[Any]:
    """An amount column as stored (exact: Decimal on PostgreSQL, decimal text on SQLite), or
    converted to a double by the database, the fast way to float64."""
    return column if exact else cast(column, Double).label(column.key)


def _numbers(values: pd.Series, exact: bool = False) -> np.ndarray:
    """Amounts as float64, or with ``exact`` as ``Decimal`` objects, whether the column holds
    floats, Decimals, decimal text (SQLite) or None (0)."""
    if exact:
        return np.array([Decimal(0) if v is None or (isinstance(v, float) and np.isnan(v)) else to_decimal(v)
                         for v in values], dtype=object)
    if pd.api.types.is_float_dtype(values):  # cast to a double by the database (``_amount``)
        return values.fillna(0.0).to_numpy(float)
    return pd.to_numeric(values.astype(object).where(values.notna(), 0), errors="coerce").fillna(0.0).to_numpy(float)


def _text(column: pd.Series) -> pd.api.extensions.ExtensionArray:
    """A text column's own array; a categorical one (the fill store's) as the ``str`` array of its values,
    taken from its few categories by code (no Python string per row), so the moves of several such
    columns, each with its own categories, join as one ``str`` column and not as Python objects."""
    if not isinstance(column.dtype, pd.CategoricalDtype):
        return column.array
    return pd.array(column.cat.categories.array, dtype="str").take(column.cat.codes.to_numpy(), allow_fill=True)


def _frame(connector: pd.Series, asset: pd.Series, timestamp: pd.Series, change: np.ndarray,
           kind: str) -> pd.DataFrame:
    # the asset column's own array: a million codes converted to Python strings and back took a second
    return pd.DataFrame({"connector_id": connector.to_numpy(np.int64), "asset": _text(asset),
                         "timestamp": timestamp.to_numpy(np.int64), "change": change, "kind": kind})


def _fills(session: Session, ids: Sequence[int] | None, exact: bool) -> pd.DataFrame:
    """Fills of the connectors: from SQL for exact amounts or a few connectors, else from the
    P&L fill store (``queries.pnl_fills``: an Arrow file kept in step with the table), which
    loads a million fills in a fraction of the seconds SQL takes."""
    if exact or (ids is not None and len(ids) <= SQL_CONNECTORS):
        return driver_frame(session, select(Trade.connector_id, Trade.timestamp, Trade.symbol, Trade.base, Trade.quote,
                                     Trade.side,
                                     _amount(Trade.amount, exact), _amount(Trade.cost, exact),
                                     _amount(Trade.fee_cost, exact), Trade.fee_currency,
                                     _amount(Trade.realized_pnl, exact))
                     .where(_within(Trade.connector_id, ids)))
    fills = queries.pnl_fills(session, SYSTEM)
    return fills if ids is None else fills[fills["connector_id"].isin(list(ids))]


def fill_changes(fills: pd.DataFrame, exact: bool = False) -> list[pd.DataFrame]:
    """How fills move balances (the module's rule), as ``MOVE_COLUMNS`` frames: a spot fill's base
    and quote, a contract fill's realised P&L in its settle currency (none where not reported),
    every fill's fee. ``fills`` has connector_id, timestamp, symbol, base, quote, side, amount,
    cost, fee_cost, fee_currency and realized_pnl (floats, or with ``exact`` exact amounts)."""
    if fills.empty:
        return []
    sign = np.where(fills["side"] == "buy", 1, -1)
    fee = _numbers(fills["fee_cost"], exact)
    charged = fills["fee_currency"].notna() & (fee != 0)
    settle = settle_currency(fills["symbol"])
    spot = settle.isna().to_numpy(bool)
    contract = ~spot & fills["realized_pnl"].notna().to_numpy(bool)
    return [
        _frame(fills["connector_id"][spot], fills["base"][spot], fills["timestamp"][spot],
               (sign * _numbers(fills["amount"], exact))[spot], "fill"),
        _frame(fills["connector_id"][spot], fills["quote"][spot], fills["timestamp"][spot],
               (-sign * _numbers(fills["cost"], exact))[spot], "fill"),
        _frame(fills["connector_id"][contract], settle[contract], fills["timestamp"][contract],
               _numbers(fills["realized_pnl"], exact)[contract], "fill"),
        _frame(fills["connector_id"][charged], fills["fee_currency"][charged], fills["timestamp"][charged],
               -fee[charged.to_numpy()], "fee"),
    ]


def _transfers(session: Session, ids: Sequence[int] | None, exact: bool) -> pd.DataFrame:
    return driver_frame(session, select(Transfer.connector_id, Transfer.transfer_id, Transfer.timestamp, Transfer.type,
                                 Transfer.currency, _amount(Transfer.amount, exact), _amount(Transfer.fee_cost, exact),
                                 Transfer.fee_currency, Transfer.status)
                 .where(_within(Transfer.connector_id, ids)))


def _credited(moves: pd.DataFrame) -> pd.Series:
    """Deposits once credited (``ok`` or no status); withdrawals unless failed or canceled."""
    deposit = moves["type"] == "deposit"
    settled = moves["status"].isna() | (moves["status"] == "ok")
    return (deposit & settled) | (~deposit & ~moves["status"].isin(DEAD_STATUSES))


def _transfer_moves(transfers: pd.DataFrame, exact: bool) -> list[pd.DataFrame]:
    if transfers.empty:
        return []
    counted = transfers[_credited(transfers)]
    deposit = (counted["type"] == "deposit").to_numpy()
    fee = _numbers(counted["fee_cost"], exact)
    same = (counted["fee_currency"].isna() | (counted["fee_currency"] == counted["currency"])).to_numpy()
    change = np.where(deposit, 1, -1) * _numbers(counted["amount"], exact) - np.where(~deposit & same, fee, 0)
    return [_frame(counted["connector_id"], counted["currency"], counted["timestamp"], change, "")
            .assign(kind=np.where(deposit, "deposit", "withdrawal"))]


def _ledger_moves(session: Session, ids: Sequence[int] | None, exact: bool) -> list[pd.DataFrame]:
    entries = driver_frame(session, select(LedgerEntry.connector_id, LedgerEntry.timestamp, LedgerEntry.currency,
                                    _amount(LedgerEntry.amount, exact), LedgerEntry.direction)
                    .where(_within(LedgerEntry.connector_id, ids),
                           func.lower(LedgerEntry.type).in_(LEDGER_INCOME_TYPES)))
    if entries.empty:
        return []
    amount = _numbers(entries["amount"], exact)
    # ccxt reports the amount unsigned with a direction; without one, the amount's own sign
    sign = np.where(entries["direction"] == "out", -1, np.where(entries["direction"] == "in", 1,
                                                                 np.where(amount < 0, -1, 1)))
    return [_frame(entries["connector_id"], entries["currency"], entries["timestamp"], sign * np.abs(amount),
                   "ledger")]


def _opening_moves(session: Session, ids: Sequence[int] | None, events: pd.DataFrame,
                   exact: bool) -> list[pd.DataFrame]:
    """Opening balances at the start of each connector's history (see the module's rule)."""
    opening = driver_frame(session, select(OpeningBalance.connector_id, OpeningBalance.asset,
                                    _amount(OpeningBalance.amount, exact), OpeningBalance.timestamp)
                    .where(_within(OpeningBalance.connector_id, ids)))
    if opening.empty:
        return []
    first_snapshot = driver_frame(session, select(BalanceSnapshot.connector_id,
                                           func.min(BalanceSnapshot.taken_at).label("taken_at"))
                           .where(_within(BalanceSnapshot.connector_id, ids))
                           .group_by(BalanceSnapshot.connector_id))
    starts = opening.groupby("connector_id")["timestamp"].min().astype("int64")
    if not events.empty:
        starts = pd.concat([starts, events.groupby("connector_id")["timestamp"].min()]).groupby(level=0).min()
    if not first_snapshot.empty:
        taken = pd.to_datetime(first_snapshot["taken_at"], utc=True)
        taken_ms = (taken - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
        starts = pd.concat([starts, pd.Series(taken_ms.to_numpy(np.int64),
                                              index=first_snapshot["connector_id"].to_numpy())]).groupby(level=0).min()
    at = opening["connector_id"].map(starts).astype("int64")
    return [_frame(opening["connector_id"], opening["asset"], at, _numbers(opening["amount"], exact), "opening")]


def joined(parts: Sequence[pd.DataFrame], exact: bool = False) -> pd.DataFrame:
    """Frames of moves as one (``MOVE_COLUMNS``), in their order; moves of no asset left out."""
    parts = [p for p in parts if not p.empty]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(MOVE_COLUMNS, (np.int64, object, np.int64,
                                                                             float, object), strict=True)})
    moves = pd.concat(parts, ignore_index=True)
    return moves[moves["asset"].notna()].astype({"connector_id": np.int64, "timestamp": np.int64,
                                                 "change": object if exact else float})


def _sorted(parts: list[pd.DataFrame], exact: bool) -> pd.DataFrame:
    return joined(parts, exact).sort_values(["connector_id", "asset", "timestamp"], kind="stable", ignore_index=True)


def other_moves(session: Session, connector_ids: Sequence[int] | None, first_fills: pd.Series,
                exact: bool = False) -> pd.DataFrame:
    """Every balance change that is not a fill's (transfers, ledger income, opening balances),
    sorted like ``balance_moves``; ``first_fills``: each connector's first fill move (ms), which
    with these dates the opening balances (see the module's rule)."""
    if connector_ids is not None and not connector_ids:
        return _sorted([], exact)
    with localcontext(prec=EXACT_DIGITS):  # exact sums of 24-digit amounts need more than 28 digits
        events = [*_transfer_moves(_transfers(session, connector_ids, exact), exact),
                  *_ledger_moves(session, connector_ids, exact)]
    firsts = [pd.DataFrame({"connector_id": first_fills.index.to_numpy(np.int64),
                            "timestamp": first_fills.to_numpy(np.int64)}), *events]
    dated = pd.concat([f[["connector_id", "timestamp"]] for f in firsts if not f.empty], ignore_index=True) \
        if any(not f.empty for f in firsts) else pd.DataFrame(columns=["connector_id", "timestamp"])
    return _sorted([*events, *_opening_moves(session, connector_ids, dated, exact)], exact)


def first_moves(moves: pd.DataFrame) -> pd.Series:
    """Each connector's first move (ms), by connector id."""
    return moves.groupby("connector_id")["timestamp"].min().astype(np.int64)


def balance_moves(session: Session, connector_ids: Sequence[int] | None = None, exact: bool = False) -> pd.DataFrame:
    """Every balance change the stored history implies (``MOVE_COLUMNS``), sorted by connector,
    asset and time; ``connector_ids`` None means every connector (callers scope it first).

    ``change`` is float64 for vectorised work, or with ``exact`` the ``Decimal`` the amounts
    add up to digit for digit (slower: Python objects)."""
    if connector_ids is not None and not connector_ids:
        return _sorted([], exact)
    with localcontext(prec=EXACT_DIGITS):
        fills = joined(fill_changes(_fills(session, connector_ids, exact), exact), exact)
    return _sorted([fills, other_moves(session, connector_ids, first_moves(fills), exact)], exact)


def pending_transfers(session: Session, connector_ids: Sequence[int] | None = None) -> pd.DataFrame:
    """Transfers not settled yet (``PENDING_COLUMNS``): a deposit not yet credited, or a
    withdrawal still in flight. ``amount`` is what the exchange's balance would show beyond
    the history's while the exchange counts it ahead of time: a deposit's amount, or a
    withdrawal's amount and fee not yet debited."""
    transfers = _transfers(session, connector_ids, False) if connector_ids is None or connector_ids else (
        pd.DataFrame())
    if transfers.empty:
        return pd.DataFrame(columns=PENDING_COLUMNS)
    settled = transfers["status"].isna() | transfers["status"].isin(("ok", *DEAD_STATUSES))
    pending = transfers[~settled]
    fee = _numbers(pending["fee_cost"])
    same = (pending["fee_currency"].isna() | (pending["fee_currency"] == pending["currency"])).to_numpy()
    deposit = (pending["type"] == "deposit").to_numpy()
    amount = _numbers(pending["amount"]) + np.where(~deposit & same, fee, 0.0)
    return pd.DataFrame({"connector_id": pending["connector_id"].to_numpy(np.int64),
                         "asset": pending["currency"].to_numpy(object), "timestamp": pending["timestamp"].to_numpy(
                             np.int64), "type": pending["type"].to_numpy(object), "amount": amount,
                         "transfer_id": pending["transfer_id"].to_numpy(object)})
