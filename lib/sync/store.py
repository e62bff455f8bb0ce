"""Everything the sync writes or reads in the database, one short transaction per call.

Rows from exchanges are inserted with the dialect's ``INSERT ... ON CONFLICT`` so a
re-run, a retry or a crash half-way never duplicates anything. A cursor is written in
the same transaction as the rows it covers, so it can never run ahead of them.

Group commit: the sync's database thread (``lib.sync.connector.Db``) runs the calls queued by
many connectors in one transaction (``batch``), one COMMIT (and one write-version bump) for
them all instead of one each; a function marked ``batchable`` takes its session from ``unit``,
which is that batch's session inside one and a unit of work of its own outside. A cursor and
its rows still commit together; a crash loses at most the batch in flight.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from lib import implied_totals
from lib.db import session_scope
from lib.models import (
    BalanceSnapshot,
    Base,
    Candle,
    Connector,
    HistoryCoverage,
    LedgerEntry,
    OpeningBalance,
    Order,
    OrderHistory,
    Position,
    SyncCursor,
    Ticker,
    Trade,
    Transfer,
    to_decimal,
    utcnow,
)

#: a holding this close to what history explains is not an opening balance (one satoshi)
OPENING_TOLERANCE = Decimal("1e-8")

F = TypeVar("F", bound=Callable[..., Any])
_batch = threading.local()


def batchable(fn: F) -> F:
    """Mark ``fn`` safe to run inside a batch: every database access goes through ``unit``, and
    it has no effect besides the database, so a failed batch can run it again on its own."""
    fn.batchable = True  # type: ignore[attr-defined]
    return fn


def is_batchable(fn: Callable[..., Any]) -> bool:
    return getattr(fn, "batchable", False) is True


@contextmanager
def unit() -> Iterator[Session]:
    """The running batch's session in this thread (committed with the batch), else a unit of
    work of its own (``lib.db.session_scope``)."""
    session = getattr(_batch, "session", None)
    if session is not None:
        yield session
        return
    with session_scope() as session:
        yield session


@contextmanager
def batch() -> Iterator[Session]:
    """One transaction for every ``unit`` this thread opens inside it: commits at the end, rolls
    back everything on any error."""
    if getattr(_batch, "session", None) is not None:
        raise RuntimeError("a batch is already running in this thread")
    with session_scope() as session:
        _batch.session = session
        try:
            yield session
        finally:
            _batch.session = None


def _insert(session: Session, model: type[Base]) -> Any:
    """The dialect's INSERT for the model's table (Core: compiled once, cached, executemany)."""
    return _dialect_insert(session.get_bind().dialect.name, model)


@cache
def _dialect_insert(dialect: str, model: type[Base]) -> Any:
    """One INSERT object per dialect and table, shared by every call (statements are immutable)."""
    return (postgresql if dialect == "postgresql" else sqlite).insert(model.__table__)


@cache
def _ignoring(dialect: str, model: type[Base], keys: tuple[str, ...]) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING the primary key, built once per table and key:
    a statement object made anew for every window costs more Python than the window's rows
    (SQLAlchemy derives its cache key again each time)."""
    statement = _dialect_insert(dialect, model).on_conflict_do_nothing(index_elements=list(keys))
    return statement.returning(*model.__table__.primary_key.columns)


@cache
def _overwriting(dialect: str, model: type[Base], keys: tuple[str, ...], columns: tuple[str, ...]) -> Any:
    """INSERT ... ON CONFLICT DO UPDATE of ``columns``, built once per table, key and columns
    (its ``excluded`` alias alone costs half a millisecond to make)."""
    statement = _dialect_insert(dialect, model)
    return statement.on_conflict_do_update(index_elements=list(keys),
                                           set_={c: statement.excluded[c] for c in columns})


def insert_ignore(session: Session, model: type[Base], rows: Sequence[Mapping[str, Any]],
                  keys: Sequence[str]) -> int:
    """Insert rows, skipping those whose ``keys`` already exist; returns how many were new."""
    if not rows:
        return 0
    statement = _ignoring(session.get_bind().dialect.name, model, tuple(keys))
    return len(session.connection().execute(statement, [dict(r) for r in rows]).all())


def upsert(session: Session, model: type[Base], rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> None:
    """Insert rows, overwriting the non-key columns of rows that already exist."""
    if not rows:
        return
    columns = tuple(c for c in rows[0] if c not in keys)
    statement = _overwriting(session.get_bind().dialect.name, model, tuple(keys), columns)
    session.connection().execute(statement, [dict(r) for r in rows])


def _set_cursors(session: Session, connector_id: int, cursors: Mapping[str, str]) -> None:
    if cursors:
        rows = [{"connector_id": connector_id, "key": k, "value": v} for k, v in cursors.items()]
        upsert(session, SyncCursor, rows, ("connector_id", "key"))


# --- reads --------------------------------------------------------------------------------

@batchable
def cursors(connector_id: int) -> dict[str, str]:
    with unit() as session:
        rows = session.execute(select(SyncCursor.key, SyncCursor.value).where(SyncCursor.connector_id == connector_id))
        return {key: value for key, value in rows}


def _held_assets(session: Session, connector_id: int) -> set[str]:
    """Every asset in any of the connector's balance snapshots."""
    return set(session.scalars(
        select(BalanceSnapshot.asset).where(BalanceSnapshot.connector_id == connector_id).distinct()))


def _traded_symbols(session: Session, connector_id: int) -> set[str]:
    """Every symbol the connector has fills on (walks the (connector, symbol, id) unique index)."""
    return set(session.scalars(select(Trade.symbol).where(Trade.connector_id == connector_id).distinct()))


@batchable
def known_assets_and_symbols(connector_id: int) -> tuple[set[str], set[str]]:
    """Assets ever held (any account type), moved or in a ledger entry, and symbols ever
    traded: where to look for fills."""
    with unit() as session:
        assets = _held_assets(session, connector_id)
        assets |= set(session.scalars(
            select(Transfer.currency).where(Transfer.connector_id == connector_id).distinct()))
        assets |= set(session.scalars(
            select(LedgerEntry.currency).where(LedgerEntry.connector_id == connector_id).distinct()))
        return assets, _traded_symbols(session, connector_id)


@batchable
def oldest_fill(connector_id: int) -> int | None:
    with unit() as session:
        return session.scalar(select(func.min(Trade.timestamp)).where(Trade.connector_id == connector_id))


@batchable
def fill_date_ranges(connector_id: int, cash: frozenset[str]) -> dict[str, tuple[int, int]]:
    """Assets whose past USD price P&L needs -> (first, last) time it is needed.

    Non-cash quote and fee currencies of fills (the value exchanged and the fee's value) and
    transferred currencies (a deposit opens a lot at its market value at deposit time).
    Also every non-cash asset traded as a base or held in a balance snapshot, over the whole
    fill/snapshot range: the equity curve and the 24h-30d changes value holdings on every
    past day, and a base-only asset (a client's own token) would otherwise have no past price.
    """
    ranges: dict[str, tuple[int, int]] = {}
    sources = [(Trade.quote, Trade.timestamp, Trade.connector_id),
               (Trade.fee_currency, Trade.timestamp, Trade.connector_id),
               (Transfer.currency, Transfer.timestamp, Transfer.connector_id)]
    with unit() as session:
        for column, timestamp, owner in sources:
            query = (select(column, func.min(timestamp), func.max(timestamp))
                     .where(owner == connector_id, column.is_not(None)).group_by(column))
            for asset, first, last in session.execute(query):
                if asset in cash:
                    continue
                old = ranges.get(asset, (first, last))
                ranges[asset] = (min(old[0], first), max(old[1], last))
        fills = session.execute(select(func.min(Trade.timestamp), func.max(Trade.timestamp))
                                .where(Trade.connector_id == connector_id)).one()
        taken = session.execute(select(func.min(BalanceSnapshot.taken_at), func.max(BalanceSnapshot.taken_at))
                                .where(BalanceSnapshot.connector_id == connector_id)).one()
        stamps = [int(v) for v in fills if v is not None] + [int(v.timestamp() * 1000) for v in taken if v is not None]
        if stamps:
            # bases from the distinct symbols rather than a scan of every fill row
            held = {symbol.split("/")[0] for symbol in _traded_symbols(session, connector_id)}
            held |= _held_assets(session, connector_id)
            span = (min(stamps), max(stamps))
            for asset in held - cash:
                first, last = ranges.get(asset, span)
                ranges[asset] = (min(first, span[0]), max(last, span[1]))
    return ranges


@batchable
def candle_span(exchange_id: str, source: str, symbol: str, timeframe: str) -> tuple[int, int] | None:
    """First and last stored candle of one price source's market (``lib.prices.price_source``)."""
    with unit() as session:
        first, last = session.execute(
            select(func.min(Candle.timestamp), func.max(Candle.timestamp)).where(
                Candle.exchange_id == exchange_id, Candle.source == source, Candle.symbol == symbol,
                Candle.timeframe == timeframe)
        ).one()
    return None if first is None else (first, last)


# --- writes -------------------------------------------------------------------------------

@batchable
def save_balance(connector_id: int, taken_at: datetime, balance: Mapping[str, Any], account_type: str = "") -> int:
    """One row per asset held (free, used, total) in one account type, so balances have a history."""
    parts = {part: {asset: to_decimal(value) or Decimal(0) for asset, value in (balance.get(part) or {}).items()
                    if value is not None and value != ""} for part in ("total", "free", "used")}
    rows = [
        {"connector_id": connector_id, "taken_at": taken_at, "asset": asset, "account_type": account_type,
         "free": parts["free"].get(asset, Decimal(0)), "used": parts["used"].get(asset, Decimal(0)), "total": amount}
        for asset, amount in sorted(parts["total"].items())
        if amount or parts["free"].get(asset) or parts["used"].get(asset)
    ]
    with unit() as session:
        if rows:
            session.connection().execute(_insert(session, BalanceSnapshot), rows)
        record_coverage(session, connector_id, f"balance:{account_type or 'default'}", "balance",
                        {"complete": True, "fetched_to": int(taken_at.timestamp() * 1000)})
    return len(rows)


def record_coverage(session: Session, connector_id: int, stream: str, kind: str, fields: Mapping[str, Any]) -> None:
    """Widen a stream's fetched range, mark a walk that reached now, or record a failed window.

    ``fields`` may hold ``fetched_from``/``fetched_to`` (ms), ``complete`` (the walk reached
    now: clears the last failure), ``failed_from``/``failed_to``/``failed_error``, and the
    look-back facts ``oldest_available``/``lookback_source``.
    """
    row = session.get(HistoryCoverage, (connector_id, stream))
    if row is None:
        row = HistoryCoverage(connector_id=connector_id, stream=stream, kind=kind, lookback_source="")
        session.add(row)
    if fields.get("fetched_from") is not None:
        row.fetched_from = min(v for v in (row.fetched_from, fields["fetched_from"]) if v is not None)
    if fields.get("fetched_to") is not None:
        row.fetched_to = max(v for v in (row.fetched_to, fields["fetched_to"]) if v is not None)
    if "oldest_available" in fields:
        row.oldest_available = fields["oldest_available"]
    if "lookback_source" in fields:
        row.lookback_source = fields["lookback_source"]
    if fields.get("complete"):
        row.complete_at = utcnow()
        row.failed_from = row.failed_to = row.failed_error = None
    if fields.get("failed_error"):
        row.failed_from, row.failed_to = fields.get("failed_from"), fields.get("failed_to")
        row.failed_error = fields["failed_error"]
    row.updated_at = utcnow()


@batchable
def save_coverage(connector_id: int, stream: str, kind: str, fields: Mapping[str, Any]) -> None:
    with unit() as session:
        record_coverage(session, connector_id, stream, kind, fields)


def _insert_trades(session: Session, connector_id: int, rows: Sequence[Mapping[str, Any]]) -> int:
    return insert_ignore(session, Trade, [{**r, "connector_id": connector_id} for r in rows],
                         ("connector_id", "symbol", "trade_id"))


def _upsert_counting(session: Session, model: type[Base], connector_id: int, rows: Sequence[Mapping[str, Any]],
                     keys: Sequence[str]) -> int:
    """Upsert rows whose content may still change; returns how many did not exist before."""
    if not rows:
        return 0
    columns = [getattr(model, k) for k in keys if k != "connector_id"]
    wanted = {tuple(r[k] for k in keys if k != "connector_id") for r in rows}
    ids = [r[keys[-1]] for r in rows]
    existing = {tuple(row) for row in session.execute(
        select(*columns).where(model.connector_id == connector_id, columns[-1].in_(ids))).all()}
    upsert(session, model, [{**r, "connector_id": connector_id} for r in rows], keys)
    return len(wanted - existing)


@batchable
def save_history(connector_id: int, kind: str, stream: str, rows: Sequence[Mapping[str, Any]],
                 cursor: str | None, coverage: Mapping[str, Any]) -> int:
    """A window (or page) of one history stream, its cursor and its coverage, in one commit.

    Fills never change once made, so they are inserted once; closed orders and transfers
    are upserted (a transfer's status may still change). Returns how many rows were new.
    """
    with unit() as session:
        if kind == "trades":
            added = _insert_trades(session, connector_id, rows)
        elif kind == "ledger":
            added = insert_ignore(session, LedgerEntry, [{**r, "connector_id": connector_id} for r in rows],
                                  ("connector_id", "entry_key"))
        elif kind == "orders":
            added = _upsert_counting(session, OrderHistory, connector_id, rows, ("connector_id", "symbol", "order_id"))
        else:
            added = _upsert_counting(session, Transfer, connector_id, rows, ("connector_id", "type", "transfer_id"))
        if cursor is not None:
            _set_cursors(session, connector_id, {stream: cursor})
        record_coverage(session, connector_id, stream, kind, coverage)
    return added


@batchable
def coverage(connector_id: int) -> list[dict[str, Any]]:
    """Every stream's coverage row of a connector, as plain dicts, by stream."""
    with unit() as session:
        rows = session.scalars(select(HistoryCoverage).where(HistoryCoverage.connector_id == connector_id)
                               .order_by(HistoryCoverage.stream))
        return [{c.name: getattr(r, c.name) for c in HistoryCoverage.__table__.columns} for r in rows]


@batchable
def replace_orders(connector_id: int, rows: Sequence[Mapping[str, Any]]) -> int:
    """The connector's open orders become exactly ``rows``, atomically."""
    with unit() as session:
        session.execute(delete(Order).where(Order.connector_id == connector_id))
        if rows:
            session.connection().execute(_insert(session, Order), [{**r, "connector_id": connector_id} for r in rows])
    return len(rows)


@batchable
def replace_positions(connector_id: int, rows: Sequence[Mapping[str, Any]]) -> int:
    with unit() as session:
        session.execute(delete(Position).where(Position.connector_id == connector_id))
        if rows:
            session.connection().execute(_insert(session, Position),
                                         [{**r, "connector_id": connector_id} for r in rows])
    return len(rows)


@batchable
def save_tickers(exchange_id: str, source: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Last prices as read from ``source`` (``lib.prices.price_source``), replacing that source's only."""
    if rows:
        with unit() as session:
            upsert(session, Ticker, [{**r, "exchange_id": exchange_id, "source": source, "fetched_at": utcnow()}
                                     for r in rows], ("exchange_id", "source", "symbol"))


@batchable
def save_candles(exchange_id: str, source: str, symbol: str, timeframe: str,
                 candles: Sequence[Sequence[float]]) -> int:
    """OHLCV rows as read from ``source``; a candle already stored for that source is kept."""
    rows = [
        {"exchange_id": exchange_id, "source": source, "symbol": symbol, "timeframe": timeframe,
         "timestamp": int(c[0]), "open": c[1], "high": c[2], "low": c[3], "close": c[4],
         "volume": c[5] if len(c) > 5 else None}
        for c in candles if c and c[4] is not None
    ]
    if not rows:
        return 0
    with unit() as session:
        return insert_ignore(session, Candle, rows, ("exchange_id", "source", "symbol", "timeframe", "timestamp"))


# --- opening balances ---------------------------------------------------------------------

@batchable
def explained_holdings(connector_id: int) -> dict[str, Decimal]:
    """What the stored history adds up to per asset, exactly, by reconciliation's rule
    (``lib.rebuild``: fills, fees, credited deposits, withdrawals with their fees, ledger income),
    from per-asset sums (``lib.implied_totals``)."""
    with unit() as session:
        return implied_totals.exact_totals(session, connector_id)


def unexplained(holdings: Mapping[str, float | Decimal],
                explained: Mapping[str, float | Decimal]) -> dict[str, Decimal]:
    """Holdings beyond what history explains (a rounding-level difference is not a lot)."""
    result = {}
    for asset, total in holdings.items():
        held = to_decimal(total) or Decimal(0)
        missing = held - (to_decimal(explained.get(asset, 0)) or Decimal(0))
        if missing > OPENING_TOLERANCE + OPENING_TOLERANCE / 10 * abs(held):
            result[asset] = missing
    return result


@batchable
def book_opening_balances(connector_id: int, amounts: Mapping[str, float], prices: Mapping[str, float | None],
                          timestamp: int) -> int:
    """Record the first sync: opening lots plus ``first_synced_at``, in one commit."""
    rows = [{"connector_id": connector_id, "asset": a, "amount": v, "usd_price": prices.get(a), "timestamp": timestamp}
            for a, v in sorted(amounts.items())]
    with unit() as session:
        if rows:
            insert_ignore(session, OpeningBalance, rows, ("connector_id", "asset"))
        connector = session.get(Connector, connector_id)
        if connector is not None and connector.first_synced_at is None:
            connector.first_synced_at = utcnow()
    return len(rows)
