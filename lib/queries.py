"""Scoped reads for the pages, the reports and the CLI, as pandas frames.

Every function takes the ``Viewer`` and optional ``client_id`` / ``connector_id`` filters and
first resolves them to the connectors the viewer may see (``connector_ids``). A client-role
viewer asking for someone else's client or connector gets the same empty frame as for an id
that does not exist, so the answer never reveals what exists outside its scope.
Big reads go through ``pd.read_sql`` on a Core select (no ORM objects); frames always carry
their columns, even when empty, so callers never branch on shape.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
from pyarrow import feather
from sqlalchemy import ColumnElement, Double, Select, and_, cast, func, literal, select, true
from sqlalchemy.orm import Session

from lib import bulk_read
from lib.access import Viewer
from lib.db import has_pending_writes
from lib.models import (
    Amount,
    BalanceSnapshot,
    Candle,
    Client,
    Connector,
    DatabaseState,
    DatabaseVersion,
    HistoryCoverage,
    HistoryImport,
    OpeningBalance,
    Order,
    OrderHistory,
    Position,
    Ticker,
    Trade,
    Transfer,
    decimal_text,
    utcnow,
)
from lib.prices import price_source
from lib.settings import get_settings

log = logging.getLogger(__name__)

Bucket = Literal["hour", "day"]

#: The fills frame lib.pnl expects, before lib.prices adds quote_usd / fee_usd.
PNL_FILL_COLUMNS = [
    "connector_id", "client_id", "trade_id", "timestamp", "symbol", "base", "quote", "side",
    "amount", "price", "cost", "fee_cost", "fee_currency", "realized_pnl",
]
FILL_COLUMNS = [
    "id", "timestamp", "client", "exchange_id", "label", "connector_id", "client_id", "symbol", "side",
    "amount", "price", "cost", "fee_cost", "fee_currency", "taker_or_maker", "order_id", "trade_id",
]
#: Transfers that never moved money are left out of P&L and the equity markers.
DEAD_TRANSFER_STATUSES = ("failed", "canceled")


# --------------------------------------------------------------------------- scope


def connector_ids(session: Session, viewer: Viewer, client_id: int | None = None,
                  connector_id: int | None = None) -> list[int] | None:
    """The connectors a read may touch: None means "all" (no filter needed), [] means none."""
    if viewer.sees_all_clients and client_id is None and connector_id is None:
        return None
    query = select(Connector.id).order_by(Connector.id)
    if not viewer.sees_all_clients:
        query = query.where(Connector.client_id.in_(sorted(viewer.client_ids)))
    if client_id is not None:
        query = query.where(Connector.client_id == client_id)
    if connector_id is not None:
        query = query.where(Connector.id == connector_id)
    return list(session.scalars(query))


def _within(column: ColumnElement[int], ids: list[int] | None) -> ColumnElement[bool]:
    return true() if ids is None else column.in_(ids)


def driver_rows(session: Session, query: Select) -> list[tuple[Any, ...]]:
    """The driver's plain rows, without SQLAlchemy's per-value type processing (its Row objects
    and result processors took most of a large read: a million fills 7.3 s against 4.6 s). For
    columns that need none, or that the caller converts a whole column at a time (a datetime as
    SQLite's text or PostgreSQL's aware value: ``pd.to_datetime(..., utc=True)``; an amount as
    decimal text or ``Decimal``)."""
    result = session.connection().execute(query)
    try:
        return result.cursor.fetchall()
    finally:
        result.close()


def driver_frame(session: Session, query: Select) -> pd.DataFrame:
    """``driver_rows`` as a frame named by the query's columns."""
    return pd.DataFrame.from_records(driver_rows(session, query), columns=list(query.selected_columns.keys()))


def _read(session: Session, query: Select, columns: Sequence[str], exact: bool = False) -> pd.DataFrame:
    """The rows as a frame. Amounts are floats for computation (P&L, valuation, charts),
    converted by the database (parsing a ``Decimal`` per value first took most of a read); with
    ``exact`` the ``Decimal`` each was stored as, for what is shown, exported or must foot."""
    if not exact:
        query = query.with_only_columns(*(cast(c, Double).label(c.key) if isinstance(c.type, Amount) else c
                                          for c in query.selected_columns), maintain_column_froms=True)
    frame = pd.read_sql(query, session.connection(), coerce_float=not exact)
    return frame[list(columns)] if not frame.empty else pd.DataFrame(columns=list(columns))


def _empty(columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame(columns=list(columns))


def _utc(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    for column in columns:
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


# --------------------------------------------------------------------------- clients & connectors


CLIENT_COLUMNS = ["id", "name", "connectors"]


def clients(session: Session, viewer: Viewer) -> pd.DataFrame:
    """Clients the viewer may see, with their connector count."""
    query = (
        select(Client.id, Client.name, func.count(Connector.id).label("connectors"))
        .outerjoin(Connector, Connector.client_id == Client.id)
        .group_by(Client.id, Client.name)
        .order_by(Client.name)
    )
    if not viewer.sees_all_clients:
        query = query.where(Client.id.in_(sorted(viewer.client_ids)))
    return _read(session, query, CLIENT_COLUMNS)


CONNECTOR_COLUMNS = [
    "id", "client_id", "client", "exchange_id", "label", "enabled", "status", "last_attempt_at",
    "last_success_at", "last_error", "consecutive_failures", "first_synced_at", "age_seconds",
]


def connectors(session: Session, viewer: Viewer, client_id: int | None = None,
               connector_id: int | None = None) -> pd.DataFrame:
    """Connectors with their sync status; ``age_seconds`` is the time since the last success."""
    ids = connector_ids(session, viewer, client_id, connector_id)
    if ids == []:
        return _empty(CONNECTOR_COLUMNS)
    query = (
        select(
            Connector.id, Connector.client_id, Client.name.label("client"), Connector.exchange_id,
            Connector.label, Connector.enabled, Connector.status, Connector.last_attempt_at,
            Connector.last_success_at, Connector.last_error, Connector.consecutive_failures,
            Connector.first_synced_at, literal(None).label("age_seconds"),
        )
        .join(Client, Client.id == Connector.client_id)
        .where(_within(Connector.id, ids))
        .order_by(Client.name, Connector.exchange_id, Connector.label)
    )
    frame = _read(session, query, CONNECTOR_COLUMNS)
    if frame.empty:
        return frame
    frame = _utc(frame, "last_attempt_at", "last_success_at", "first_synced_at")
    frame["age_seconds"] = (pd.Timestamp(utcnow()) - frame["last_success_at"]).dt.total_seconds()
    frame["enabled"] = frame["enabled"].astype(bool)
    return frame


# --------------------------------------------------------------------------- balances


BALANCE_COLUMNS = [
    "connector_id", "client_id", "client", "exchange_id", "label", "taken_at", "asset", "free", "used", "total",
]
#: ``balances(by_account=True)``: one row per account type ("" is the default account)
BALANCE_ACCOUNT_COLUMNS = [*BALANCE_COLUMNS, "account_type"]


def balances(session: Session, viewer: Viewer, client_id: int | None = None, connector_id: int | None = None,
             at: datetime | None = None, by_account: bool = False) -> pd.DataFrame:
    """Each connector's newest balance snapshot (taken at or before ``at``, default now).

    One ``max(taken_at)`` per connector over the (connector_id, taken_at) index, then the rows
    of that snapshot; zero rows (all of free, used and total 0) are left out. A sync stores one
    row per asset and account type at one ``taken_at``, so the amounts are summed over account
    types per (connector, asset) unless ``by_account`` asks for the split. Amounts are exact
    ``Decimal``s, summed in Python (SQLite keeps them as text, where SQL would sum floats).
    """
    ids = connector_ids(session, viewer, client_id, connector_id)
    columns = BALANCE_ACCOUNT_COLUMNS if by_account else BALANCE_COLUMNS
    if ids == []:
        return _empty(columns)
    newest = select(BalanceSnapshot.connector_id, func.max(BalanceSnapshot.taken_at).label("taken_at")).where(
        _within(BalanceSnapshot.connector_id, ids)
    )
    if at is not None:
        newest = newest.where(BalanceSnapshot.taken_at <= at)
    newest = newest.group_by(BalanceSnapshot.connector_id).subquery()
    keys = [BalanceSnapshot.connector_id, Connector.client_id, Client.name.label("client"), Connector.exchange_id,
            Connector.label, BalanceSnapshot.taken_at, BalanceSnapshot.asset, BalanceSnapshot.account_type]
    query = (
        select(*keys, BalanceSnapshot.free, BalanceSnapshot.used, BalanceSnapshot.total)
        .join(newest, and_(newest.c.connector_id == BalanceSnapshot.connector_id,
                           newest.c.taken_at == BalanceSnapshot.taken_at))
        .join(Connector, Connector.id == BalanceSnapshot.connector_id)
        .join(Client, Client.id == Connector.client_id)
        .order_by(Client.name, Connector.exchange_id, Connector.label, BalanceSnapshot.asset,
                  BalanceSnapshot.account_type)
    )
    frame = _read(session, query, BALANCE_ACCOUNT_COLUMNS, exact=True)
    amounts = ["free", "used", "total"]
    frame = frame[(frame[amounts] != 0).any(axis=1)] if not frame.empty else frame
    if not by_account and not frame.empty:
        frame = frame.groupby(BALANCE_COLUMNS[:-3], sort=False, as_index=False)[amounts].sum()
    return _utc(frame[columns].reset_index(drop=True), "taken_at")


HISTORY_COLUMNS = ["connector_id", "client_id", "exchange_id", "taken_at", "asset", "total"]


def bucket_of(session: Session, bucket: Bucket) -> ColumnElement[object]:
    """A portable "hour/day of taken_at" (SQLite stores UTC text, PostgreSQL timestamptz)."""
    if session.get_bind().dialect.name == "sqlite":
        return func.substr(BalanceSnapshot.taken_at, 1, 13 if bucket == "hour" else 10)
    return func.date_trunc(bucket, func.timezone("UTC", BalanceSnapshot.taken_at))


def balance_history(session: Session, viewer: Viewer, client_id: int | None = None,
                    connector_id: int | None = None, since: datetime | None = None,
                    bucket: Bucket = "day") -> pd.DataFrame:
    """Per connector, the last snapshot in each hour or day since ``since``, summed over account
    types, in float (the equity curve values and draws them; ``balances`` foots exactly).

    Syncs may snapshot every minute; bucketing in SQL keeps the equity curve to
    connectors x buckets x assets rows whatever the sync interval.
    """
    ids = connector_ids(session, viewer, client_id, connector_id)
    if ids == []:
        return _empty(HISTORY_COLUMNS)
    hour_or_day = bucket_of(session, bucket)
    last = select(BalanceSnapshot.connector_id, func.max(BalanceSnapshot.taken_at).label("taken_at")).where(
        _within(BalanceSnapshot.connector_id, ids)
    )
    if since is not None:
        last = last.where(BalanceSnapshot.taken_at >= since)
    last = last.group_by(BalanceSnapshot.connector_id, hour_or_day).subquery()
    query = (
        select(BalanceSnapshot.connector_id, Connector.client_id, Connector.exchange_id, BalanceSnapshot.taken_at,
               BalanceSnapshot.asset, cast(BalanceSnapshot.total, Double).label("total"))
        .join(last, and_(last.c.connector_id == BalanceSnapshot.connector_id,
                         last.c.taken_at == BalanceSnapshot.taken_at))
        .join(Connector, Connector.id == BalanceSnapshot.connector_id)
        .order_by(BalanceSnapshot.taken_at, BalanceSnapshot.connector_id, BalanceSnapshot.asset)
    )
    frame = driver_frame(session, query)  # a year of 200 connectors' days: typed rows took most of the read
    if frame.empty:
        return _empty(HISTORY_COLUMNS)
    frame = frame.astype({"connector_id": np.int64, "client_id": np.int64, "total": float})
    # the account types summed (the taken_at text or value groups as well as the datetime)
    frame = frame.groupby(HISTORY_COLUMNS[:-1], sort=False, as_index=False)["total"].sum()
    return _utc(frame, "taken_at")


OPENING_COLUMNS = ["connector_id", "client_id", "timestamp", "asset", "amount", "usd_price"]


def opening_balances(session: Session, viewer: Viewer, client_id: int | None = None,
                     connector_id: int | None = None) -> pd.DataFrame:
    """Opening lots booked at first sync (usd_price per unit, None when it had no price)."""
    ids = connector_ids(session, viewer, client_id, connector_id)
    if ids == []:
        return _empty(OPENING_COLUMNS)
    query = (
        select(OpeningBalance.connector_id, Connector.client_id, OpeningBalance.timestamp, OpeningBalance.asset,
               OpeningBalance.amount, OpeningBalance.usd_price)
        .join(Connector, Connector.id == OpeningBalance.connector_id)
        .where(_within(OpeningBalance.connector_id, ids))
        .order_by(OpeningBalance.timestamp, OpeningBalance.connector_id, OpeningBalance.asset)
    )
    return _read(session, query, OPENING_COLUMNS)


# --------------------------------------------------------------------------- fills


def _row_filters(model: type[Trade] | type[OrderHistory], ids: list[int] | None, equal: dict[str, str | None],
                 start_ms: int | None, end_ms: int | None) -> list[ColumnElement[bool]]:
    """Scope, exact matches on the given columns (None or "": any), and [start, end) on the time."""
    conditions: list[ColumnElement[bool]] = [_within(model.connector_id, ids)]
    conditions += [getattr(model, column) == value for column, value in equal.items() if value]
    if start_ms is not None:
        conditions.append(model.timestamp >= start_ms)
    if end_ms is not None:
        conditions.append(model.timestamp < end_ms)
    return conditions


def _fill_filters(ids: list[int] | None, symbol: str | None, side: str | None, start_ms: int | None,
                  end_ms: int | None) -> list[ColumnElement[bool]]:
    return _row_filters(Trade, ids, {"symbol": symbol, "side": side}, start_ms, end_ms)


def count_fills(session: Session, viewer: Viewer, client_id: int | None = None, connector_id: int | None = None,
                symbol: str | None = None, side: str | None = None, start_ms: int | None = None,
                end_ms: int | None = None) -> int:
    """How many fills match: the pager's total, without reading any of them."""
    ids = connector_ids(session, viewer, client_id, connector_id)
    if ids == []:
        return 0
    query = select(func.count()).select_from(Trade).where(*_fill_filters(ids, symbol, side, start_ms, end_ms))
    return int(session.scalar(query) or 0)


def fills(session: Session, viewer: Viewer, client_id: int | None = None, connector_id: int | None = None,
          symbol: str | None = None, side: str | None = None, start_ms: int | None = None,
          end_ms: int | None = None, limit: int = 100, offset: int = 0) -> pd.DataFrame:
    """One page of fills, newest first (``timestamp`` desc, then id), with fee columns.

    LIMIT/OFFSET over the timestamp indexes: only ``limit`` rows ever leave the database.
    """
    ids = connector_ids(session, viewer, client_id, connector_id)
    if ids == [] or limit <= 0:
        return _empty(FILL_COLUMNS)
    page = (
        select(Trade.id)
        .where(*_fill_filters(ids, symbol, side, start_ms, end_ms))
        .order_by(Trade.timestamp.desc(), Trade.id.desc())
        .limit(limit)
        .offset(max(offset, 0))
        .subquery()
    )
    query = (
        select(Trade.id, Trade.timestamp, Client.name.label("client"), Connector.exchange_id, Connector.label,
               Trade.connector_id, Connector.client_id, Trade.symbol, Trade.side, Trade.amount, Trade.price,
               Trade.cost, Trade.fee_cost, Trade.fee_currency, Trade.taker_or_maker, Trade.order_id, Trade.trade_id)
        .join(page, page.c.id == Trade.id)
        .join(Connector, Connector.id == Trade.connector_id)
        .join(Client, Client.id == Connector.client_id)
        .order_by(Trade.timestamp.desc(), Trade.id.desc())
    )
    return _read(session, query, FILL_COLUMNS, exact=True)


def fill_symbols(session: Session, viewer: Viewer, client_id: int | None = None,
                 connector_id: int | None = None) -> list[str]:
    """Symbols traded in scope, for the symbol filter.

    Walked per connector along the (connector_id, symbol, trade_id) unique index, one seek per
    symbol (the next symbol after the last one found), instead of a DISTINCT that reads every
    fill: 200 connectors of a million fills 8 ms against 60 ms (and against most of a second
    when the table is not in the page cache)."""
    ids = connector_ids(session, viewer, client_id, connector_id)
    if ids == []:
        return []
    def next_symbol(connector: ColumnElement[int], after: ColumnElement[str] | None = None) -> ColumnElement[str]:
        seek = select(func.min(Trade.symbol)).where(Trade.connector_id == connector)
        return (seek if after is None else seek.where(Trade.symbol > after)).scalar_subquery()

    first = select(Connector.id.label("connector_id"), next_symbol(Connector.id).label("symbol"))
    walk = first.where(_within(Connector.id, ids)).cte("walk", recursive=True)
    walk = walk.union_all(select(walk.c.connector_id, next_symbol(walk.c.connector_id, walk.c.symbol))
                          .where(walk.c.symbol.is_not(None)))
    query = select(walk.c.symbol).where(walk.c.symbol.is_not(None)).distinct().order_by(walk.c.symbol)
    return list(session.scalars(query))


def pnl_fills(session: Session, viewer: Viewer, client_id: int | None = None, connector_id: int | None = None,
              end_ms: int | None = None) -> pd.DataFrame:
    """Every fill in scope before ``end_ms`` in the frame lib.pnl expects (before USD columns).

    Read from the fill store (see ``_stored_fills``), then narrowed to the viewer's connectors
    in pandas. Ordered by timestamp (lib.pnl breaks ties by trade id, PNL.md). History before a
    window's start is still needed for cost basis, so there is no start filter here.
    """
    ids = connector_ids(session, viewer, client_id, connector_id)
    if ids == []:
        return _empty(PNL_FILL_COLUMNS)
    owners = {cid: owner for cid, owner in session.execute(select(Connector.id, Connector.client_id))}
    return scoped_fills(_stored_fills(session), ids, owners, end_ms)


def scoped_fills(store: pd.DataFrame, ids: list[int] | None, owners: Mapping[int, int],
                 end_ms: int | None = None) -> pd.DataFrame:
    """The fill store's rows of connectors ``ids`` (every one when None) before ``end_ms``, in the
    frame lib.pnl expects, by timestamp. Its categorical text columns keep only the categories of
    their own rows: a frame narrowed to one client must not carry other clients' names in its dtype."""
    keep = np.ones(len(store), dtype=bool) if ids is None else store["connector_id"].isin(ids).to_numpy()
    if end_ms is not None:
        keep = keep & (store["timestamp"].to_numpy() < end_ms)
    frame = store[keep]
    if not keep.all():
        frame = frame.assign(**{column: frame[column].cat.remove_unused_categories() for column in frame.columns
                                if isinstance(frame[column].dtype, pd.CategoricalDtype)})
    frame.insert(1, "client_id", frame["connector_id"].map(owners).astype("int64"))
    return frame.sort_values("timestamp", kind="stable", ignore_index=True)[PNL_FILL_COLUMNS]


_STORE_COLUMNS = ["id", *(c for c in PNL_FILL_COLUMNS if c != "client_id")]
_FLOAT_COLUMNS = ("amount", "price", "cost", "fee_cost", "realized_pnl")
#: the Arrow schema metadata key of the fill store's JSON label (``_StoreLabel``)
_LABEL_KEY = b"fill_store"
_STORE_FORMAT = 4  # 3: SQLite amounts as the nearest doubles (lib.bulk_read), as PostgreSQL's; 4: categoricals
#: the fill store's text columns of few distinct values (markets, assets, sides), read and held as
#: categoricals (``lib.bulk_read``): a million fills' five take ~5 MB so against ~60 MB as strings
_CATEGORY_COLUMNS = ("symbol", "base", "quote", "side", "fee_currency")


def _url_key() -> str:
    return hashlib.sha256(get_settings().database_url.encode()).hexdigest()[:16]


def _store_path(identity: str) -> Path:
    """The database's fill store: per URL (a hash, never the URL) and per database identity."""
    return get_settings().data_dir / "cache" / f"fills-{_url_key()}-{identity}.arrow"


@dataclass(frozen=True)
class _StoreLabel:
    """What a fill store file reflects: the database state it was read at, and its rows.

    ``exact``: no write committed while it was read, so the rows are exactly those of
    (``version``, ``token``); otherwise they may be newer, and it is only built upon.
    """

    identity: str
    version: int
    token: str
    trades_epoch: str
    count: int
    max_id: int
    exact: bool


#: how the fill store's columns travel in a bulk SQLite read (``lib.bulk_read``)
_STORE_KINDS: dict[str, bulk_read.Kind] = {
    c: "int" if c in ("id", "connector_id", "timestamp") else "float" if c in _FLOAT_COLUMNS
    else "category" if c in _CATEGORY_COLUMNS else "text" for c in _STORE_COLUMNS}


def _read_trades(session: Session, after_id: int | None = None) -> pd.DataFrame:
    """The fill store's rows after ``after_id`` (every row when None), by id.

    lib.pnl computes in float64: the exact amounts (NUMERIC, or text on SQLite) become doubles
    in the database, at the frame boundary (a million Decimals to floats in Python take ~4 s).
    The database hands the rows over as CSV text (``lib.bulk_read``): on SQLite a million fills
    2.9 s against 5.4 s row by row through the driver, the same values."""
    return bulk_read.table_columns(session, Trade.__table__, _STORE_KINDS, after_id)


def _appended(frame: pd.DataFrame, fresh: pd.DataFrame) -> pd.DataFrame:
    """The store's ``frame`` followed by ``fresh`` rows (``_read_trades``'), its columns still categorical:
    each takes the union of both categories (the store's first, so its codes stay), as ``pd.concat``
    of categoricals with other categories would make a million Python strings of them."""
    frame, fresh = frame.copy(deep=False), fresh.copy(deep=False)
    for name in _CATEGORY_COLUMNS:
        held, more = frame[name].cat.categories, fresh[name].cat.categories
        dtype = pd.CategoricalDtype(held.append(more[~more.isin(held)]))
        frame[name], fresh[name] = frame[name].astype(dtype), fresh[name].astype(dtype)
    return pd.concat([frame, fresh], ignore_index=True)


def _load_store(path: Path) -> tuple[pd.DataFrame, _StoreLabel] | None:
    """The file's fills and label; None when missing, torn, foreign or of an older layout."""
    try:
        table = feather.read_table(path)
        label = json.loads((table.schema.metadata or {})[_LABEL_KEY])
        if label.pop("format", None) != _STORE_FORMAT or table.column_names != _STORE_COLUMNS:
            return None
        return table.to_pandas(), _StoreLabel(**label)
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException):
        return None


def _save_store(path: Path, frame: pd.DataFrame, label: _StoreLabel) -> None:
    """Write the file atomically (0600), its label in the Arrow schema metadata, so the rows and
    what they reflect are replaced together; this URL's files of other databases go."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    text = json.dumps({**asdict(label), "format": _STORE_FORMAT}).encode()
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), _LABEL_KEY: text})
    temporary = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")  # two sessions may write
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))  # never readable by others
    feather.write_feather(table, str(temporary), compression="uncompressed")  # LZ4 took ~5x to write and read
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)
    for other in path.parent.glob(f"fills-{_url_key()}*.arrow"):  # a database replaced at this URL
        if other != path:
            other.unlink(missing_ok=True)


#: the fill store this process last read or wrote, with its label: loading a million fills from the
#: file takes half a second, and several pages ask after each sync. One database per server process.
#: Callers get this frame itself and must not change it in place (they filter, which copies).
_STORE_READ: dict[Path, tuple[pd.DataFrame, _StoreLabel, tuple[int, int, int]]] = {}  # and ``_file_version``
_STORE_LOCK = threading.Lock()
#: one read or build of the store at a time: two first views at once would each read a million fills
_STORE_BUILD_LOCK = threading.Lock()


def ids_grow_in_commit_order(session: Session) -> bool:
    """SQLite: one writer at a time and AUTOINCREMENT ids that only grow, so a fill committed after
    the store was read has a higher id than any in it. Not PostgreSQL: a sequence hands out ids
    before commit, so a fill committed late may have a lower id (the count then tells)."""
    return session.get_bind().dialect.name == "sqlite"


def refresh_fill_store(session: Session) -> int:
    """Bring the fill store in step with the database now (the sync calls it once it has
    committed new fills, so the P&L page finds the file current); returns how many fills it holds."""
    return len(_stored_fills(session))


def _stored_fills(session: Session) -> pd.DataFrame:
    """Every fill of the database, from an Arrow file in DATA_DIR/cache kept in step with it.

    Turning a million SQL rows into Python objects takes seconds (sqlite3 or psycopg alike);
    the Arrow file loads in a fraction of that. The file is named by the database's identity
    and labelled with the write version it reflects (``write_state``):
    - same identity and version (read exactly there): used as it is, with no scan of trades;
    - same identity, the database went through the file's version since (``went_through``: not a
      restored older copy) and the trades epoch is unchanged (fills were only inserted since):
      fills with higher ids are read and appended (on PostgreSQL only if the count then matches:
      a fill committed late with a lower id, as its sequences allow, makes it rebuild);
    - anything else (another database, a restored copy, a fill updated, a connector deleted,
      an unreadable file): rebuilt from the trades table.
    The file holds what the database holds, beside it, readable by its owner only; scope is
    applied by the caller, never by the file. Its few-valued text columns (``_CATEGORY_COLUMNS``)
    are categorical: a sixth of the memory of strings, for every reader of the frame. The frame
    last read or written stays in memory (``_STORE_READ``) while the file is unchanged.
    """
    state = write_state(session)
    if state is None or has_pending_writes(session.connection()):  # no version names what is read here
        return _read_trades(session)
    path = _store_path(state.identity)
    with _STORE_BUILD_LOCK:
        with _STORE_LOCK:
            held = _STORE_READ.get(path)
        written = _file_version(path)
        if held is not None and held[2] == written:  # the file as this process last saw it
            stored: tuple[pd.DataFrame, _StoreLabel] | None = (held[0], held[1])
        else:  # another process (the sync's worker) may have moved it on
            stored = _load_store(path) if written is not None else None
        frame: pd.DataFrame | None = None
        if stored is not None:
            frame, label = stored
            if label.identity == state.identity and label.exact and (label.version, label.token) == (
                    state.version, state.token):
                _remember(path, frame, label)
                return frame
            made = WriteState(label.identity, label.version, label.token, label.trades_epoch)
            fresh = fills_added_since(session, made, state, label.max_id, len(frame))
            frame = None if fresh is None else _appended(frame, fresh) if len(fresh) else frame
        if frame is None:
            frame = _read_trades(session)
        after = write_state(session)
        max_id = int(frame["id"].max()) if len(frame) else 0
        label = _StoreLabel(state.identity, state.version, state.token, state.trades_epoch, len(frame), max_id,
                            exact=after == state)
        try:
            _save_store(path, frame, label)
        except OSError as error:  # a full or read-only data folder: the frame is right, only not kept
            log.warning("the fill store could not be written to %s: %s", path.parent, error.strerror or error)
            return frame
        _remember(path, frame, label)
        return frame


def _file_version(path: Path) -> tuple[int, int, int] | None:
    """What tells one write of the file from another (it is replaced whole, never edited)."""
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_ino, found.st_mtime_ns, found.st_size


def _remember(path: Path, frame: pd.DataFrame, label: _StoreLabel) -> None:
    written = _file_version(path)
    if written is None:
        return
    with _STORE_LOCK:
        _STORE_READ.clear()
        _STORE_READ[path] = (frame, label, written)


# --------------------------------------------------------------------------- transfers, orders, positions


TRANSFER_COLUMNS = [
    "connector_id", "client_id", "transfer_id", "timestamp", "type", "currency", "amount", "fee_cost",
    "fee_currency", "status", "txid",
]


def transfers(session: Session, viewer: Viewer, client_id: int | None = None, connector_id: int | None = None,
              start_ms: int | None = None, end_ms: int | None = None, settled_only: bool = True) -> pd.DataFrame:
    """Deposits and withdrawals, oldest first; failed or canceled ones are left out by default."""
    ids = connector_ids(session, viewer, client_id, connector_id)
    if ids == []:
        return _empty(TRANSFER_COLUMNS)
    query = (
        select(Transfer.connector_id, Connector.client_id, Transfer.transfer_id, Transfer.timestamp, Transfer.type,
               Transfer.currency, Transfer.amount, Transfer.fee_cost, Transfer.fee_currency, Transfer.status,
               Transfer.txid)
        .join(Connector, Connector.id == Transfer.connector_id)
        .where(_within(Transfer.connector_id, ids))
        .order_by(Transfer.timestamp, Transfer.id)
    )
    if settled_only:
        query = query.where(func.coalesce(Transfer.status, "ok").not_in(DEAD_TRANSFER_STATUSES))
    if start_ms is not None:
        query = query.where(Transfer.timestamp >= start_ms)
    if end_ms is not None:
        query = query.where(Transfer.timestamp < end_ms)
    return _read(session, query, TRANSFER_COLUMNS)


ORDER_COLUMNS = [
    "connector_id", "client_id", "client", "exchange_id", "label", "order_id", "timestamp", "symbol", "side",
    "type", "price", "amount", "filled", "remaining", "status",
]


def open_orders(session: Session, viewer: Viewer, client_id: int | None = None,
                connector_id: int | None = None) -> pd.DataFrame:
    ids = connector_ids(session, viewer, client_id, connector_id)
    if ids == []:
        return _empty(ORDER_COLUMNS)
    query = (
        select(Order.connector_id, Connector.client_id, Client.name.label("client"), Connector.exchange_id,
               Connector.label, Order.order_id, Order.timestamp, Order.symbol, Order.side, Order.type, Order.price,
               Order.amount, Order.filled, Order.remaining, Order.status)
        .join(Connector, Connector.id == Order.connector_id)
        .join(Client, Client.id == Connector.client_id)
        .where(_within(Order.connector_id, ids))
        .order_by(Client.name, Order.symbol, Order.timestamp)
    )
    return _read(session, query, ORDER_COLUMNS, exact=True)


ORDER_HISTORY_COLUMNS = [
    "connector_id", "client_id", "client", "exchange_id", "label", "order_id", "timestamp", "last_update", "symbol",
    "side", "type", "status", "price", "average", "amount", "filled", "cost", "fee_cost", "fee_currency",
    "fill_fees",
]


@dataclass(frozen=True)
class FillFees:
    """The fees an order's synced fills paid, summed per fee currency (never across two).

    For an order whose exchange reports no fee of its own (Binance's order endpoint); a CSV
    cell reads ``0.0129 BNB`` or ``0.0043 BNB + 0.1 USDT``."""

    fills: int
    totals: tuple[tuple[str | None, Decimal], ...]  # (fee currency, sum), by currency

    def __str__(self) -> str:
        return " + ".join(f"{decimal_text(cost)} {currency or ''}".rstrip() for currency, cost in self.totals)


#: orders per query for their fills' fees: well under SQLite's and PostgreSQL's bound-parameter limits
FILL_FEE_BATCH = 500
#: how long after an order's last update one of its fills may still be stamped (clocks of two endpoints)
FILL_AFTER_UPDATE_MS = 60_000


def _fill_fees(session: Session, orders: pd.DataFrame) -> list[FillFees | None]:
    """``FillFees`` of each order without a fee of its own (None for the others and for orders
    with no synced fill): its fills are the same connector's, market's and order id's.

    Read in batches of ``FILL_FEE_BATCH`` orders (a CSV holds up to 100,000), each within its
    orders' time span: a fill is never older than its order, nor (much) younger than its last update."""
    wanted = orders[orders["fee_cost"].isna() & orders["order_id"].notna()]
    sums: dict[tuple[int, str, str], dict[str | None, Decimal]] = {}
    counts: dict[tuple[int, str, str], int] = {}
    for first in range(0, len(wanted), FILL_FEE_BATCH):
        batch = wanted.iloc[first:first + FILL_FEE_BATCH]
        query = select(Trade.connector_id, Trade.symbol, Trade.order_id, Trade.fee_currency, Trade.fee_cost).where(
            Trade.connector_id.in_(sorted(set(batch["connector_id"].astype(int)))),
            Trade.symbol.in_(sorted(set(batch["symbol"]))), Trade.order_id.in_(sorted(set(batch["order_id"]))))
        if batch["timestamp"].notna().all():
            query = query.where(Trade.timestamp >= int(batch["timestamp"].min()))
        if batch["last_update"].notna().all():
            query = query.where(Trade.timestamp <= int(batch["last_update"].max()) + FILL_AFTER_UPDATE_MS)
        for connector_id, symbol, order_id, currency, cost in session.execute(query):
            key = (connector_id, symbol, order_id)
            totals = sums.setdefault(key, {})
            totals[currency] = totals.get(currency, Decimal(0)) + (cost or Decimal(0))
            counts[key] = counts.get(key, 0) + 1
    keys = zip(orders["connector_id"].astype(int), orders["symbol"], orders["order_id"], strict=True)
    return [None if key not in sums or not pd.isna(own) else
            FillFees(counts[key], tuple(sorted(sums[key].items(), key=lambda item: item[0] or "")))
            for key, own in zip(keys, orders["fee_cost"], strict=True)]


def _order_history_filters(ids: list[int] | None, symbol: str | None, status: str | None, start_ms: int | None,
                           end_ms: int | None) -> list[ColumnElement[bool]]:
    return _row_filters(OrderHistory, ids, {"symbol": symbol, "status": status}, start_ms, end_ms)


def count_order_history(session: Session, viewer: Viewer, client_id: int | None = None,
                        connector_id: int | None = None, symbol: str | None = None, status: str | None = None,
                        start_ms: int | None = None, end_ms: int | None = None) -> int:
    """How many closed or canceled orders match: the pager's total."""
    ids = connector_ids(session, viewer, client_id, connector_id)
    if ids == []:
        return 0
    query = select(func.count()).select_from(OrderHistory).where(
        *_order_history_filters(ids, symbol, status, start_ms, end_ms))
    return int(session.scalar(query) or 0)


def order_history(session: Session, viewer: Viewer, client_id: int | None = None, connector_id: int | None = None,
                  symbol: str | None = None, status: str | None = None, start_ms: int | None = None,
                  end_ms: int | None = None, limit: int = 100, offset: int = 0) -> pd.DataFrame:
    """One page of closed and canceled orders, newest first (created time, then id).

    ``start_ms``/``end_ms`` bound the order's creation time (end exclusive), over the
    (connector_id, timestamp) index; only ``limit`` rows leave the database.
    """
    ids = connector_ids(session, viewer, client_id, connector_id)
    if ids == [] or limit <= 0:
        return _empty(ORDER_HISTORY_COLUMNS)
    newest = (OrderHistory.timestamp.desc(), OrderHistory.id.desc())
    page = (
        select(OrderHistory.id)
        .where(*_order_history_filters(ids, symbol, status, start_ms, end_ms))
        .order_by(*newest)
        .limit(limit)
        .offset(max(offset, 0))
        .subquery()
    )
    query = (
        select(OrderHistory.connector_id, Connector.client_id, Client.name.label("client"), Connector.exchange_id,
               Connector.label, OrderHistory.order_id, OrderHistory.timestamp, OrderHistory.last_update,
               OrderHistory.symbol, OrderHistory.side, OrderHistory.type, OrderHistory.status, OrderHistory.price,
               OrderHistory.average, OrderHistory.amount, OrderHistory.filled, OrderHistory.cost,
               OrderHistory.fee_cost, OrderHistory.fee_currency)
        .join(page, page.c.id == OrderHistory.id)
        .join(Connector, Connector.id == OrderHistory.connector_id)
        .join(Client, Client.id == Connector.client_id)
        .order_by(*newest)
    )
    frame = _read(session, query, ORDER_HISTORY_COLUMNS[:-1], exact=True)
    return frame.assign(fill_fees=pd.Series(_fill_fees(session, frame), index=frame.index, dtype=object))


def order_history_choices(session: Session, viewer: Viewer, client_id: int | None = None,
                          connector_id: int | None = None) -> tuple[list[str], list[str]]:
    """(symbols, statuses) of the closed orders in scope, for the filters."""
    ids = connector_ids(session, viewer, client_id, connector_id)
    if ids == []:
        return [], []
    within = _within(OrderHistory.connector_id, ids)
    symbols = session.scalars(select(OrderHistory.symbol).where(within).distinct().order_by(OrderHistory.symbol))
    statuses = session.scalars(select(OrderHistory.status).where(within, OrderHistory.status.is_not(None))
                               .distinct().order_by(OrderHistory.status))
    return list(symbols), list(statuses)


POSITION_COLUMNS = [
    "connector_id", "client_id", "client", "exchange_id", "label", "symbol", "side", "contracts", "contract_size",
    "entry_price", "mark_price", "notional", "unrealized_pnl", "leverage", "liquidation_price", "timestamp",
]


def positions(session: Session, viewer: Viewer, client_id: int | None = None,
              connector_id: int | None = None) -> pd.DataFrame:
    ids = connector_ids(session, viewer, client_id, connector_id)
    if ids == []:
        return _empty(POSITION_COLUMNS)
    query = (
        select(Position.connector_id, Connector.client_id, Client.name.label("client"), Connector.exchange_id,
               Connector.label, Position.symbol, Position.side, Position.contracts, Position.contract_size,
               Position.entry_price, Position.mark_price, Position.notional, Position.unrealized_pnl,
               Position.leverage, Position.liquidation_price, Position.timestamp)
        .join(Connector, Connector.id == Position.connector_id)
        .join(Client, Client.id == Connector.client_id)
        .where(_within(Position.connector_id, ids))
        .order_by(Client.name, Position.symbol)
    )
    return _read(session, query, POSITION_COLUMNS, exact=True)


# --------------------------------------------------------------------------- history coverage


COVERAGE_COLUMNS = [
    "connector_id", "client_id", "client", "exchange_id", "label", "stream", "kind", "oldest_available",
    "lookback_source", "fetched_from", "fetched_to", "complete_at", "failed_from", "failed_to", "failed_error",
    "updated_at",
]


def coverage(session: Session, viewer: Viewer, client_id: int | None = None,
             connector_id: int | None = None) -> pd.DataFrame:
    """Every history stream's coverage row (what was fetched, what the exchange keeps, what failed)."""
    ids = connector_ids(session, viewer, client_id, connector_id)
    if ids == []:
        return _empty(COVERAGE_COLUMNS)
    row = HistoryCoverage
    query = (
        select(row.connector_id, Connector.client_id, Client.name.label("client"), Connector.exchange_id,
               Connector.label, row.stream, row.kind, row.oldest_available, row.lookback_source, row.fetched_from,
               row.fetched_to, row.complete_at, row.failed_from, row.failed_to, row.failed_error, row.updated_at)
        .join(Connector, Connector.id == row.connector_id)
        .join(Client, Client.id == Connector.client_id)
        .where(_within(row.connector_id, ids))
        .order_by(Client.name, Connector.exchange_id, Connector.label, row.stream)
    )
    frame = _read(session, query, COVERAGE_COLUMNS)
    # ms columns with gaps come back as floats; keep them exact integers (or None)
    for column in ("oldest_available", "fetched_from", "fetched_to", "failed_from", "failed_to"):
        frame[column] = pd.Series([None if pd.isna(v) else int(v) for v in frame[column]], index=frame.index,
                                  dtype=object)
    return _utc(frame, "complete_at", "updated_at")


IMPORT_COLUMNS = [
    "id", "connector_id", "client_id", "client", "exchange_id", "label", "kind", "filename", "rows", "new_rows",
    "first_timestamp", "last_timestamp", "actor", "imported_at",
]


def history_imports(session: Session, viewer: Viewer, client_id: int | None = None,
                    connector_id: int | None = None) -> pd.DataFrame:
    """CSV imports of history (lib.imports), newest first: coverage shows the ranges they filled."""
    ids = connector_ids(session, viewer, client_id, connector_id)
    if ids == []:
        return _empty(IMPORT_COLUMNS)
    row = HistoryImport
    query = (
        select(row.id, row.connector_id, Connector.client_id, Client.name.label("client"), Connector.exchange_id,
               Connector.label, row.kind, row.filename, row.rows, row.new_rows, row.first_timestamp,
               row.last_timestamp, row.actor, row.imported_at)
        .join(Connector, Connector.id == row.connector_id)
        .join(Client, Client.id == Connector.client_id)
        .where(_within(row.connector_id, ids))
        .order_by(row.imported_at.desc(), row.id.desc())
    )
    return _utc(_read(session, query, IMPORT_COLUMNS), "imported_at")


# --------------------------------------------------------------------------- market data


def _sources_of(session: Session, ids: list[int] | None) -> dict[int, tuple[str, str]]:
    """Connector id -> (exchange id, price source) of the given connectors (None: every one)."""
    query = select(Connector.id, Connector.exchange_id, Connector.api_url, Connector.sandbox)
    if ids is not None:
        query = query.where(Connector.id.in_(ids))
    return {cid: (exchange, price_source(exchange, api_url, bool(sandbox)))
            for cid, exchange, api_url, sandbox in session.execute(query)}


def price_sources(session: Session, viewer: Viewer, client_id: int | None = None,
                  connector_id: int | None = None) -> dict[int, str]:
    """Connector id -> the price source (``lib.prices.price_source``) its holdings are valued from."""
    ids = connector_ids(session, viewer, client_id, connector_id)
    return {} if ids == [] else {cid: source for cid, (_, source) in _sources_of(session, ids).items()}


#: Assets any scope may price through, whoever holds them (public reference markets).
BRIDGE_ASSETS = frozenset({"BTC", "ETH"})


@dataclass(frozen=True)
class _FillNames:
    """Per connector, what its fills name (every asset; the contract markets of fills that carry
    no realised P&L), and the fills that was read from."""

    made: WriteState
    max_id: int
    count: int
    assets: dict[int, frozenset[str]]
    unsettled: dict[int, frozenset[str]]


_FILL_NAMES: dict[tuple[str, str], _FillNames] = {}
_FILL_NAMES_LOCK = threading.Lock()


def _named(frame: pd.DataFrame) -> tuple[dict[int, set[str]], dict[int, set[str]]]:
    """(assets, unsettled contract symbols) per connector of fill store rows."""
    assets: dict[int, set[str]] = {}
    names = frame[["connector_id", "base", "quote", "fee_currency"]].drop_duplicates()
    for column in ("base", "quote", "fee_currency"):
        for cid, asset in zip(names["connector_id"], names[column], strict=True):
            if isinstance(asset, str) and asset:
                assets.setdefault(int(cid), set()).add(asset)
    unsettled: dict[int, set[str]] = {}
    contract = frame["symbol"].str.contains(":", regex=False, na=False) & frame["realized_pnl"].isna()
    for cid, symbol in frame.loc[contract, ["connector_id", "symbol"]].drop_duplicates().itertuples(index=False):
        unsettled.setdefault(int(cid), set()).add(str(symbol))
    return assets, unsettled


def _traded_in_sql(session: Session, ids: list[int]) -> set[str]:
    """The connectors' fills' base, quote and fee currencies, asked of the database."""
    assets: set[str] = set()
    for column in (Trade.base, Trade.quote, Trade.fee_currency):
        assets.update(a for a in session.scalars(select(column).where(Trade.connector_id.in_(ids)).distinct()) if a)
    return assets


def _unsettled_in_sql(session: Session, ids: list[int]) -> set[tuple[int, str]]:
    """(connector, contract market) of the connectors' fills without realised P&L, asked of the database."""
    query = (select(Trade.connector_id, Trade.symbol)
             .where(Trade.connector_id.in_(ids), Trade.symbol.contains(":", autoescape=True),
                    Trade.realized_pnl.is_(None)).distinct())
    return {(int(cid), str(symbol)) for cid, symbol in session.execute(query)}


def _fill_names(session: Session) -> _FillNames | None:
    """What the fills name, per connector. Every page of every client asks (``_market_scope``),
    and a million fills take a table scan each time; so it is kept per database in this process
    and continued by the fills added since (``fills_added_since``). None inside a transaction that
    wrote (no version names what it would read): the caller asks the database."""
    now = write_state(session)
    if now is None or has_pending_writes(session.connection()):
        return None
    key = (get_settings().database_url, now.identity)
    with _FILL_NAMES_LOCK:
        kept = _FILL_NAMES.get(key)
    if kept is not None and kept.made == now:
        return kept
    fresh = None if kept is None else fills_added_since(session, kept.made, now, kept.max_id, kept.count)
    if kept is not None and fresh is not None:
        assets = {cid: set(found) for cid, found in kept.assets.items()}
        unsettled = {cid: set(found) for cid, found in kept.unsettled.items()}
        more_assets, more_unsettled = _named(fresh)
        for into, more in ((assets, more_assets), (unsettled, more_unsettled)):
            for cid, found in more.items():
                into.setdefault(cid, set()).update(found)
        max_id, count = max(kept.max_id, int(fresh["id"].max()) if len(fresh) else 0), kept.count + len(fresh)
    else:  # from the fill store: a DISTINCT over a million rows in SQL took seconds
        fills = _stored_fills(session)
        assets, unsettled = _named(fills)
        max_id, count = int(fills["id"].max()) if len(fills) else 0, len(fills)
    kept = _FillNames(now, max_id, count, {cid: frozenset(found) for cid, found in assets.items()},
                      {cid: frozenset(found) for cid, found in unsettled.items()})
    if write_state(session) == now:  # nothing committed while it was read: keep it (one database per server)
        with _FILL_NAMES_LOCK:
            _FILL_NAMES.clear()
            _FILL_NAMES[key] = kept
    return kept


def _traded(session: Session, ids: list[int]) -> set[str]:
    """The base, quote and fee currencies of the connectors' fills (``_fill_names``)."""
    kept = _fill_names(session)
    if kept is None:
        return _traded_in_sql(session, ids)
    return set().union(*(kept.assets.get(cid, frozenset()) for cid in ids))


def unsettled_contracts(session: Session, ids: list[int]) -> pd.DataFrame:
    """(connector_id, symbol) of every contract market ("BTC/USDT:USDT") where the connectors have
    fills whose realised P&L the exchange did not report (``_fill_names``)."""
    kept = _fill_names(session)
    pairs = (_unsettled_in_sql(session, ids) if kept is None
             else {(cid, symbol) for cid in ids for symbol in kept.unsettled.get(cid, frozenset())})
    return pd.DataFrame(sorted(pairs), columns=["connector_id", "symbol"])


def _assets_in_scope(session: Session, ids: list[int]) -> set[str]:
    """Every asset the scope's connectors hold, trade, pay fees in or transfer."""
    sources = [
        select(BalanceSnapshot.asset).where(BalanceSnapshot.connector_id.in_(ids)),
        select(Transfer.currency).where(Transfer.connector_id.in_(ids)),
        select(OpeningBalance.asset).where(OpeningBalance.connector_id.in_(ids)),
    ]
    assets = _traded(session, ids)
    for query in sources:
        assets.update(a for a in session.scalars(query.distinct()) if a)
    return assets


def _market_scope(session: Session, viewer: Viewer, client_id: int | None,
                  connector_id: int | None) -> tuple[list[str], list[str], set[str]] | None:
    """(exchanges, price sources, assets) whose market data the scope may read; None = everything.

    Market data is filtered to the scope's own price sources and to pairs of its own assets
    (plus cash and the BTC/ETH bridges), so a client never learns which tokens other clients
    trade, nor the prices of a host only other clients use.
    """
    ids = connector_ids(session, viewer, client_id, connector_id)
    if ids is None:
        return None
    allowed = _assets_in_scope(session, ids) | BRIDGE_ASSETS | get_settings().usd_like if ids else set()
    found = _sources_of(session, ids).values() if ids else []
    return sorted({e for e, _ in found}), sorted({s for _, s in found}), allowed


def pair_assets(symbols: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(base, quote) of each market symbol (``symbols`` not empty); derivatives: BASE/QUOTE:SETTLE."""
    parts = symbols.astype(str).str.partition("/")
    return parts[0], parts[2].str.partition(":")[0]


def _only_pairs_of(frame: pd.DataFrame, assets: set[str]) -> pd.DataFrame:
    if frame.empty:
        return frame
    base, quote = pair_assets(frame["symbol"])
    return frame[base.isin(assets) & quote.isin(assets)].reset_index(drop=True)


TICKER_COLUMNS = ["exchange_id", "source", "symbol", "last", "bid", "ask", "timestamp", "fetched_at"]


def tickers(session: Session, viewer: Viewer, client_id: int | None = None,
            connector_id: int | None = None) -> pd.DataFrame:
    """Last prices of the scope's price sources, for pairs of the scope's assets (so a client's
    figures are the same whoever looks at them, and nothing names another client's tokens)."""
    scope = _market_scope(session, viewer, client_id, connector_id)
    if scope is not None and not scope[1]:
        return _empty(TICKER_COLUMNS)
    query = select(Ticker.exchange_id, Ticker.source, Ticker.symbol, Ticker.last, Ticker.bid, Ticker.ask,
                   Ticker.timestamp, Ticker.fetched_at).order_by(Ticker.source, Ticker.symbol)
    if scope is None:
        return _utc(_read(session, query, TICKER_COLUMNS), "fetched_at")
    frame = _read(session, query.where(Ticker.exchange_id.in_(scope[0]), Ticker.source.in_(scope[1])),
                  TICKER_COLUMNS)
    return _utc(_only_pairs_of(frame, scope[2]), "fetched_at")


CANDLE_COLUMNS = ["exchange_id", "source", "symbol", "timeframe", "timestamp", "open", "high", "low", "close",
                  "volume"]


def candles(session: Session, viewer: Viewer, client_id: int | None = None, connector_id: int | None = None,
            symbols: Sequence[str] | None = None, timeframe: str | None = None, start_ms: int | None = None,
            end_ms: int | None = None) -> pd.DataFrame:
    """OHLCV candles of the scope's price sources for pairs of its assets, oldest first."""
    scope = _market_scope(session, viewer, client_id, connector_id)
    if scope is not None and not scope[1]:
        return _empty(CANDLE_COLUMNS)
    query = select(Candle.exchange_id, Candle.source, Candle.symbol, Candle.timeframe, Candle.timestamp, Candle.open,
                   Candle.high, Candle.low, Candle.close, Candle.volume).order_by(Candle.timestamp)
    if scope is not None:
        query = query.where(Candle.exchange_id.in_(scope[0]), Candle.source.in_(scope[1]))
    if symbols is not None:
        query = query.where(Candle.symbol.in_(list(symbols)))
    if timeframe is not None:
        query = query.where(Candle.timeframe == timeframe)
    if start_ms is not None:
        query = query.where(Candle.timestamp >= start_ms)
    if end_ms is not None:
        query = query.where(Candle.timestamp < end_ms)
    frame = _read(session, query, CANDLE_COLUMNS)
    return frame if scope is None else _only_pairs_of(frame, scope[2])


# --------------------------------------------------------------------------- cache invalidation


@dataclass(frozen=True)
class WriteState:
    """The database's identity and write version (``lib.models.DatabaseState``)."""

    identity: str
    version: int
    token: str
    trades_epoch: str
    snapshots_epoch: str = ""


#: the one row of ``DatabaseState``, run through the session's connection: a page run asks some
#: thirty times (each cache checks it), and Core execution with SQLAlchemy's compiled cache skips
#: the ORM's statement handling (~0.05 ms a read against ~0.1-0.4 ms)
_STATE_QUERY = select(DatabaseState.identity, DatabaseState.version, DatabaseState.token, DatabaseState.trades_epoch,
                      DatabaseState.snapshots_epoch).where(DatabaseState.id == 1)


def write_state(session: Session) -> WriteState | None:
    """One row read, afresh on every call, in the session's transaction; None for a database without
    its state row (see ``data_version``)."""
    row = session.connection().execute(_STATE_QUERY).one_or_none()
    return None if row is None else WriteState(*row)


def went_through(session: Session, version: int, token: str) -> bool:
    """Whether this database's history passed through write version ``version`` with ``token``:
    a cache built there may be carried forward. False for a restored older copy that never
    reached it or reached it by other writes, and for versions pruned (``lib.db.VERSIONS_KEPT``)."""
    return session.scalar(select(DatabaseVersion.token).where(DatabaseVersion.version == version)) == token


def fills_added_since(session: Session, kept: WriteState, now: WriteState, max_id: int,
                      count: int) -> pd.DataFrame | None:
    """The fills committed between ``kept`` (the write state a cache was made at, holding ``count``
    fills up to id ``max_id``) and ``now``, read like the fill store's rows; None when more than
    inserts of fills happened: another database or a restored copy that never went through
    ``kept``, a fill updated or deleted (trades epoch), or on PostgreSQL a fill committed late with
    a lower id (its sequences allow it: the count then tells). The answer read at ``now`` exactly
    (nothing committed meanwhile) is kept for the next caller asking the same (``_ADDED``)."""
    if now.identity != kept.identity or now.trades_epoch != kept.trades_epoch:
        return None
    key = (session.get_bind().url, kept.identity, kept.version, kept.token, kept.trades_epoch, now.version, now.token,
           max_id, count)
    shared = not has_pending_writes(session.connection())  # else it would read its own uncommitted fills
    with _ADDED_LOCK:
        if shared and key in _ADDED:
            return _ADDED[key]
    if (now.version, now.token) != (kept.version, kept.token) and not went_through(session, kept.version, kept.token):
        return None
    rows = _read_trades(session, after_id=max_id)
    whole = ids_grow_in_commit_order(session) or count + len(rows) == _fill_count(session, now)
    fresh = rows if whole else None
    if shared and write_state(session) == now:  # read at ``now`` exactly
        with _ADDED_LOCK:
            _ADDED.clear()
            _ADDED[key] = fresh
    return fresh


#: the last ``fills_added_since`` answer read with nothing committed meanwhile, by what it was asked: the
#: fill store, the balance index and the kept P&L each continue from the same state after a sync (one
#: read of the trades table, not one each). Callers get this frame itself and must not change it in place.
_ADDED: dict[tuple[object, ...], pd.DataFrame | None] = {}
_ADDED_LOCK = threading.Lock()


#: the trades table's row count per write version (identity, version, token): each cache that
#: continues on PostgreSQL checks it, and a million rows take a scan
_COUNTS: dict[tuple[str, int, str], int] = {}
_COUNTS_LOCK = threading.Lock()


def _fill_count(session: Session, now: WriteState) -> int:
    """How many fills the database holds at write state ``now`` (the session's, with nothing
    uncommitted: callers check), counted once per version."""
    key = (now.identity, now.version, now.token)
    with _COUNTS_LOCK:
        found = _COUNTS.get(key)
    if found is None:
        found = int(session.scalar(select(func.count(Trade.id))) or 0)
        if write_state(session) == now:
            with _COUNTS_LOCK:
                _COUNTS.clear()  # older versions are never asked again
                _COUNTS[key] = found
    return found


def data_version(session: Session) -> str:
    """What every cache derived from the database is keyed by: its identity and write version.

    One primary-key read. The version is bumped in the same transaction as each write of data
    the pages derive from (``lib.db``), with a random token, so a key is never reused: not by
    another database at the same path or URL, nor by an older copy restored and written to.
    A database without its state row, or a transaction with uncommitted writes of its own, gets
    a new random key on every call (nothing is reused).
    """
    state = write_state(session)
    if state is None or has_pending_writes(session.connection()):  # nothing to share a cache entry with
        return f"unversioned:{secrets.token_hex(16)}" if state is None else \
            f"{state.identity}:{state.version}:{state.token}:uncommitted:{secrets.token_hex(16)}"
    return f"{state.identity}:{state.version}:{state.token}"
