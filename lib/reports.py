"""The glue from scoped queries through prices to P&L: one place, used by pages and CLI.

Pages and the CLI must show the same figures, so neither values or counts anything itself:
they call ``balances_report`` and ``pnl_report`` here (and ``lib.equity`` for value over time).
Unpriced assets stay NaN (never 0) and are listed, as PNL.md requires.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from lib import capabilities, exchanges, pnl, prices, queries, rebuild
from lib.access import Viewer
from lib.db import has_pending_writes, session_scope
from lib.kept import Recent, database_key
from lib.models import BalanceSnapshot, Connector, OpeningBalance, Transfer, utcnow
from lib.pnl import state as pnl_state
from lib.pnl.period import Period, PeriodTotals, period_of, period_pnl
from lib.pnl.result import DISPOSAL_COLUMNS, FLOW_COLUMNS, HOLDING_COLUMNS, PER_ASSET_COLUMNS, shortfall_warnings
from lib.settings import get_settings

SessionOrUrl = Session | str | None
T = TypeVar("T")
Method = Literal["fifo", "average"]
Pool = Literal["scope", "connector", "client"]

#: Look-backs shown as "change" on the overview.
CHANGE_WINDOWS: dict[str, timedelta] = {
    "24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30),
}


@contextmanager
def _session(session_or_url: SessionOrUrl) -> Iterator[Session]:
    """Use the caller's session, or open a read-only unit of work on a URL (None: configured)."""
    if isinstance(session_or_url, Session):
        yield session_or_url
    else:
        with session_scope(session_or_url) as session:
            yield session


def _ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def usd_like() -> frozenset[str]:
    return frozenset(get_settings().usd_like)


# --------------------------------------------------------------------------- marks


def _with_sources(frame: pd.DataFrame, sources: dict[int, str]) -> pd.DataFrame:
    """``frame`` with a ``source`` column: the price source of each row's connector (categorical:
    a million fills take 0.04 s where a dict lookup per row took 0.3 s)."""
    return frame.assign(source=frame["connector_id"].map(pd.Series(sources, dtype="category")))


@dataclass(frozen=True)
class Market:
    """One scope's market data, as ``queries.tickers`` and ``queries.candles`` (no end) give it."""

    tickers: pd.DataFrame
    candles: pd.DataFrame


def _untraded_assets(session: Session, ids: list[int]) -> set[str]:
    """The assets of ``queries._assets_in_scope`` other than the trades' (small tables)."""
    assets: set[str] = set()
    for query in (select(BalanceSnapshot.asset).where(BalanceSnapshot.connector_id.in_(ids)),
                  select(Transfer.currency).where(Transfer.connector_id.in_(ids)),
                  select(OpeningBalance.asset).where(OpeningBalance.connector_id.in_(ids))):
        assets.update(a for a in session.scalars(query.distinct()) if a)
    return assets


def _traded_names(fills: pd.DataFrame) -> dict[int, frozenset[str]]:
    """Per client, the assets its fills name (base, quote, fee currency; ``_distinct``'s rule) from
    the distinct name rows, not every fill's columns."""
    names = fills[["client_id", "base", "quote", "fee_currency"]].drop_duplicates()
    return {int(client): frozenset(_distinct(group["base"], group["quote"], group["fee_currency"]))
            for client, group in names.groupby("client_id")}


@dataclass(frozen=True)
class _ClientRead:
    """One client's scope as its figures read it: price sources, transfers and opening lots as
    queried, and what its market scope takes besides the assets its fills name."""

    sources: dict[int, str]
    moves: pd.DataFrame
    opening: pd.DataFrame
    exchanges: frozenset[str]
    untraded: frozenset[str]  # ``_untraded_assets``

    def scope(self, traded: frozenset[str]) -> tuple[frozenset[str], frozenset[str], frozenset[str]] | None:
        """(exchanges, sources, assets) of ``queries._market_scope`` for a client whose fills name
        ``traded``; None without connectors (no market data)."""
        if not self.sources:
            return None
        bridges = queries.BRIDGE_ASSETS | frozenset(get_settings().usd_like)
        return self.exchanges, frozenset(self.sources.values()), traded | self.untraded | bridges


def _client_read(session: Session, viewer: Viewer, client_id: int) -> _ClientRead:
    ids = queries.connector_ids(session, viewer, client_id)
    found = queries._sources_of(session, ids) if ids else {}
    sources = {cid: source for cid, (_, source) in found.items()}
    return _ClientRead(sources, queries.transfers(session, viewer, client_id),
                       queries.opening_balances(session, viewer, client_id), frozenset(e for e, _ in found.values()),
                       frozenset(_untraded_assets(session, ids) if ids else ()))


def _own_candles(market: Market, sources: dict[int, str]) -> pd.DataFrame:
    """The market's candles of the scope's own price sources (not a deleted connector's host)."""
    return market.candles[market.candles["source"].isin(set(sources.values()))]


@dataclass(frozen=True)
class _Listed:
    """Tickers or candles as read for the viewer, each row's pair split once into base and quote
    (``queries.pair_assets``, as ``queries._only_pairs_of``): every client's filter then compares
    arrays, where splitting the symbols again per client took half a second for twenty clients."""

    frame: pd.DataFrame
    base: pd.Series
    quote: pd.Series

    @classmethod
    def of(cls, frame: pd.DataFrame) -> _Listed:
        if frame.empty:  # no symbol to split (partition gives no columns)
            return cls(frame, pd.Series(dtype=object), pd.Series(dtype=object))
        return cls(frame, *queries.pair_assets(frame["symbol"]))

    def scoped(self, exchange_ids: frozenset[str], sources: frozenset[str], assets: frozenset[str]) -> pd.DataFrame:
        """The rows a scope may read (``queries._market_scope``'s rule): its exchanges and price
        sources, pairs of its assets; oldest first as read, numbered from 0."""
        frame = self.frame
        if frame.empty:
            return frame.reset_index(drop=True)
        keep = (frame["exchange_id"].isin(exchange_ids) & frame["source"].isin(sources) & self.base.isin(assets)
                & self.quote.isin(assets))
        return frame[keep.to_numpy()].reset_index(drop=True)


def _market(tickers: _Listed, candles: _Listed,
            scope: tuple[frozenset[str], frozenset[str], frozenset[str]] | None) -> Market:
    if scope is None:
        return Market(tickers.frame.iloc[:0], candles.frame.iloc[:0])
    return Market(tickers.scoped(*scope), candles.scoped(*scope))


#: market data read at one write version, per scope: the P&L and the equity curve of one page run
#: (and the tickers of both their marks) read the same rows once
_MARKET_READS: Recent[object] = Recent(at_most=12)


def _read_once(kind: str, session: Session, viewer: Viewer, client_id: int | None, connector_id: int | None,
               read: Callable[[], T]) -> T:
    """``read()`` (the scope's ``queries.candles`` or ``queries.tickers``, or what is made of them),
    kept by the database, its write version and the scope: asked again at the same version it is
    the same value, at any other it is read again (so never stale). Nothing kept where no write
    version names what the session reads, or when a commit came while it was read. Every caller
    shares the value: a frame is handed out as a shallow copy (copy-on-write keeps a caller's change
    its own), and ``scope_series`` makes its arrays read-only."""
    now = queries.write_state(session)
    if now is None or has_pending_writes(session.connection()):
        return read()
    key = (kind, *database_key(now), now.version, now.token, viewer, client_id, connector_id, usd_like())
    found = _MARKET_READS.get(key)
    if found is None:
        found = read()
        if queries.write_state(session) == now:
            _MARKET_READS.put(key, found)
    if isinstance(found, pd.DataFrame):
        found = found.copy(deep=False)
    return cast(T, found)  # kept under its kind's key: a ``read()`` value


def scope_candles(session: Session, viewer: Viewer, client_id: int | None = None,
                  connector_id: int | None = None) -> pd.DataFrame:
    """``queries.candles`` of the scope, every one (no end), read once per write version (``_read_once``)."""
    return _read_once("candles", session, viewer, client_id, connector_id,
                      lambda: queries.candles(session, viewer, client_id, connector_id))


def scope_series(session: Session, viewer: Viewer, client_id: int | None = None,
                 connector_id: int | None = None) -> dict[str, prices.Series]:
    """``prices.source_series(scope_candles(...))``, made once per write version (``_read_once``): a
    year of daily candles is ~6 ms to index, which the P&L's new fills, its marks and the equity
    curve of one page run each did again."""
    return _read_once("series", session, viewer, client_id, connector_id,
                      lambda: _read_only(prices.source_series(scope_candles(session, viewer, client_id,
                                                                            connector_id))))


def _read_only(series: dict[str, prices.Series]) -> dict[str, prices.Series]:
    """``series`` with every array made read-only: shared by every caller of ``scope_series``, so a
    write into one would change the others' prices (it raises instead)."""
    for table in series.values():
        for arrays in table.values():
            for array in arrays:
                array.flags.writeable = False
    return series


def own_series(series: dict[str, prices.Series], sources: dict[int, str]) -> dict[str, prices.Series]:
    """``series`` of the scope's own price sources only: ``source_series`` of the candles of those
    sources (each source's series is made from its own rows alone)."""
    own = set(sources.values())
    return {source: table for source, table in series.items() if source in own}


def scope_tickers(session: Session, viewer: Viewer, client_id: int | None = None,
                  connector_id: int | None = None) -> pd.DataFrame:
    """``queries.tickers`` of the scope, read once per write version (``_read_once``)."""
    return _read_once("tickers", session, viewer, client_id, connector_id,
                      lambda: queries.tickers(session, viewer, client_id, connector_id))


def current_marks(session: Session, viewer: Viewer, held: pd.DataFrame, client_id: int | None = None,
                  connector_id: int | None = None, market: Market | None = None) -> prices.SourceMarks:
    """USD per price source and asset now, for the scope's sources (``queries.price_sources``).

    Each source's own tickers first, then its latest candle close for an asset that some row of
    ``held`` (``source``, ``asset``) needs and no ticker of that source prices. Sources are kept
    apart (``prices.own_marks`` values each account from its own), so a gateway's or a
    testnet's prices never stand for another host's.
    """
    cash = usd_like()
    sources = set(queries.price_sources(session, viewer, client_id, connector_id).values())
    tickers = market.tickers if market is not None else scope_tickers(session, viewer, client_id, connector_id)
    tickers = tickers[tickers["source"].isin(sources) & tickers["last"].notna()]
    assets = _distinct(held["asset"])
    marks = {source: {} for source in sources} | prices.marks_by_source(tickers, assets, usd_like=cash)
    lacking = {a for source, a in zip(held["source"], held["asset"], strict=True)
               if a not in cash and a not in marks.get(source, {})}
    if lacking:
        series = (prices.source_series(market.candles) if market is not None
                  else scope_series(session, viewer, client_id, connector_id))
        for source in sources & set(series):
            need = sorted(lacking - set(marks[source]))
            now = np.full(len(need), _ms(utcnow()), dtype=np.int64)
            closes = prices.usd_at(series[source], need, now, usd_like=cash)
            marks[source].update({a: float(p) for a, p in zip(need, closes, strict=True) if np.isfinite(p)})
    return marks


# --------------------------------------------------------------------------- balances


@dataclass(frozen=True)
class BalancesReport:
    """Latest holdings per client, connector and asset, valued in USD."""

    rows: pd.DataFrame  # BALANCE_REPORT_COLUMNS
    unpriced: list[str]
    total_usd: float  # the sum of what is priced; see ``unpriced`` for what it leaves out

    @property
    def empty(self) -> bool:
        return self.rows.empty


#: ``source``: the connector's price source; ``priced_from``: the source(s) its price came from
#: (its own, or where it has none the others', see ``prices.own_marks``; "" for cash or unpriced)
BALANCE_REPORT_COLUMNS = [
    "client", "client_id", "exchange_id", "label", "connector_id", "source", "asset", "free", "used", "total",
    "price", "priced_from", "usd", "priced", "taken_at",
]


def _value(frame: pd.DataFrame, marks: prices.SourceMarks) -> pd.DataFrame:
    """Add price, priced_from, usd and priced: each row at its own source's price."""
    price, origin = prices.own_marks(marks, list(frame["source"]), list(frame["asset"]), usd_like=usd_like())
    frame = frame.assign(price=price, priced_from=origin)
    frame["usd"] = frame["total"].astype(float) * frame["price"]
    frame["priced"] = frame["price"].notna()
    return frame


def balances_report(viewer: Viewer, client_id: int | None = None, connector_id: int | None = None,
                    session_or_url: SessionOrUrl = None, by_account: bool = False) -> BalancesReport:
    """Latest holdings valued in USD: per (connector, asset) summed over account types, or with
    ``by_account`` one row per account type too (column ``account_type``, "" = default account)."""
    columns = [*BALANCE_REPORT_COLUMNS, "account_type"] if by_account else BALANCE_REPORT_COLUMNS
    with _session(session_or_url) as session:
        latest = queries.balances(session, viewer, client_id, connector_id, by_account=by_account)
        if latest.empty:
            return BalancesReport(pd.DataFrame(columns=columns), [], 0.0)
        latest = _with_sources(latest, queries.price_sources(session, viewer, client_id, connector_id))
        marks = current_marks(session, viewer, latest, client_id, connector_id)
    rows = _value(latest, marks)[columns]
    unpriced = sorted(set(rows.loc[~rows["priced"], "asset"]))  # cash is always priced
    return BalancesReport(rows.reset_index(drop=True), unpriced, float(rows["usd"].sum(skipna=True)))


def equity_transfers(session: Session, viewer: Viewer, client_id: int | None, connector_id: int | None,
                     start: datetime, end: datetime, marks: prices.SourceMarks,
                     series: dict[str, prices.Series]) -> pd.DataFrame:
    """Deposits and withdrawals in [start, end) for the equity chart (time, type, currency, amount,
    usd, connector_id, account): each at its own source's candle close then, else today's mark (NaN
    when neither); ``account`` is the connector's name as pages write it ("Alpha · binance / main")."""
    moves = _with_sources(queries.transfers(session, viewer, client_id, connector_id, _ms(start), _ms(end)),
                          queries.price_sources(session, viewer, client_id, connector_id))
    if moves.empty:
        return pd.DataFrame(columns=["time", "type", "currency", "amount", "usd", "connector_id", "account"])
    names = {int(r.id): f"{r.client} · {r.exchange_id} / {r.label}"
             for r in queries.connectors(session, viewer, client_id, connector_id).itertuples()}
    today, _ = prices.own_marks(marks, list(moves["source"]), list(moves["currency"]), usd_like=usd_like())
    then = prices.usd_at_sources(series, moves["source"], moves["currency"], moves["timestamp"],
                                 usd_like=usd_like(), others=False)
    amount = moves["amount"].astype(float)
    return pd.DataFrame({
        "time": pd.to_datetime(moves["timestamp"], unit="ms", utc=True), "type": moves["type"],
        "currency": moves["currency"], "amount": amount, "usd": amount * np.where(np.isfinite(then), then, today),
        "connector_id": moves["connector_id"], "account": moves["connector_id"].astype(int).map(names),
    })


# --------------------------------------------------------------------------- orders & positions


def orders_report(viewer: Viewer, client_id: int | None = None, connector_id: int | None = None,
                  session_or_url: SessionOrUrl = None,
                  now: datetime | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(open orders with ``age_seconds``, ``last`` and ``distance`` = price / last - 1, positions).

    The last price is the ticker of the order's own price source (its connector's exchange,
    API host and sandbox) and symbol; without one the distance is NaN (shown as a dash), never 0.
    """
    now = now or utcnow()
    with _session(session_or_url) as session:
        orders = queries.open_orders(session, viewer, client_id, connector_id)
        held = queries.positions(session, viewer, client_id, connector_id)
        if not orders.empty:
            orders = _with_sources(orders, queries.price_sources(session, viewer, client_id, connector_id))
            lasts = queries.tickers(session, viewer, client_id, connector_id)
    if not orders.empty:
        last = lasts.set_index(["source", "symbol"])["last"] if not lasts.empty else None
        keys = pd.MultiIndex.from_frame(orders[["source", "symbol"]])
        orders["last"] = last.reindex(keys).to_numpy(dtype=float) if last is not None else np.nan
        orders["distance"] = orders["price"].astype(float) / orders["last"] - 1
        orders["age_seconds"] = (_ms(now) - orders["timestamp"].astype(float)) / 1000
    else:
        orders = orders.assign(last=pd.Series(dtype=float), distance=pd.Series(dtype=float),
                               age_seconds=pd.Series(dtype=float))
    return orders, held


# --------------------------------------------------------------------------- history coverage


#: How each history stream (the coverage key before any ":symbol") reads on pages, in the order
#: they are listed; "orders" holds canceled orders too unless a "canceled" stream reads them apart.
STREAM_LABELS = {"trades": "Fills", "orders": "Order history", "canceled": "Canceled orders", "deposits": "Deposits",
                 "withdrawals": "Withdrawals", "ledger": "Account ledger"}


@functools.lru_cache(maxsize=256)
def _exchange(exchange_id: str) -> Any:
    """An unconnected ccxt (or plug-in) instance, only to read its metadata (features, has, options)."""
    return exchanges._exchange_class(exchange_id)()


def exchange_rules(exchange_id: str) -> capabilities.ExchangeRules | None:
    """The history rules of an exchange ccxt or a plug-in provides; None for one neither does."""
    return capabilities.history_rules(_exchange(exchange_id)) if exchanges.is_supported(exchange_id) else None


def fills_lookback(exchange_id: str) -> list[str]:
    """What the add-key form says before a key is saved: how far back the exchange keeps fills,
    and whether they are read market by market (lib.capabilities: ccxt features, then overrides)."""
    if not exchanges.is_supported(exchange_id):
        return []
    exchange = _exchange(exchange_id)
    rules = capabilities.history_rules(exchange).streams["trades"]
    if not rules.supported:
        return [f"Look-back for fills: none; ccxt offers no {rules.method} for this exchange, so no fills are synced."]
    days = capabilities.lookback_days(exchange, "trades")
    if rules.paging == "id":
        lookback = f"whole history, read by trade id from the first one ({rules.source})"
    elif days is None:
        lookback = "unknown: the exchange does not publish it"
    else:
        lookback = f"{days:g} days ({rules.source})"
    facts = [f"Look-back for fills: {lookback}."]
    facts.append("Fills need a symbol per market: yes; every market of an asset the account holds or held, moved "
                 "in a transfer or traded, plus the extra symbols you list, is walked on its own."
                 if rules.symbol_required else "Fills need a symbol per market: no; one walk reads every market.")
    if days is not None and rules.paging != "id":
        facts.append("Holdings that older history would explain are booked as opening balances at the first "
                     "sync's price.")
    return facts


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def _moment(value: pd.Timestamp | datetime) -> str:
    """``2026-12-04 15:49 UTC``; a naive value is UTC."""
    moment = pd.Timestamp(value)
    return (moment.tz_localize(UTC) if moment.tzinfo is None else moment.tz_convert(UTC)).strftime("%Y-%m-%d %H:%M UTC")


def _amount(value: float) -> str:
    return f"{value:,.8f}".rstrip("0").rstrip(".")


def _known(value: object) -> int | None:
    """A ms column value as an int, or None for a gap (None or NaN, as pandas may hold it)."""
    return None if value is None or pd.isna(value) else int(value)


def _text(value: object) -> str:
    return "" if value is None or pd.isna(value) else str(value)


def _span(start: int | None, end: int | None) -> str:
    start, end = _known(start), _known(end)
    if start is None and end is None:
        return "nothing yet"
    if start is None:
        return f"up to {_day(end)}"
    return f"{_day(start)} – {_day(end)}" if end is not None else f"from {_day(start)}"


@dataclass(frozen=True)
class CoverageLine:
    """One data kind of one connector, as the Sync page and the connector's details show it."""

    data: str  # "Fills", "Balances: funding account", ...
    oldest: str  # the oldest date the exchange still keeps, "whole history (paged by id)" or "unknown"
    source: str  # where that look-back comes from
    fetched: str  # the range fetched (UTC dates)
    complete: str  # the last walk that reached now
    failed: str  # failed windows with their error ("" when none)
    markets: tuple[str, ...] = ()  # markets walked, for exchanges that need a symbol

    @property
    def has_reference(self) -> bool:
        """Whether ``source`` names the documentation (or ccxt's data) a look-back rule follows."""
        return self.source not in NO_SOURCE and not self.source.startswith(IMPORT_SOURCE)

    @property
    def why(self) -> str:
        """Why ``oldest`` is what it is, in words for every viewer, each of the line's sources
        (a stream walked per market may hold several); ``source`` is the developer's reference."""
        sources = [self.source] if self.source.startswith(IMPORT_SOURCE) else self.source.split(", ")
        whole = self.oldest == WHOLE_HISTORY
        return "; ".join(dict.fromkeys(_lookback_words(source, whole) for source in sources))


#: the ``oldest`` of a stream read by id from its first record
WHOLE_HISTORY = "whole history (paged by id)"
#: a CSV import's ``source``: its files and rows (plain words already)
IMPORT_SOURCE = "CSV import:"
#: ``source`` where no look-back applies ("—": balances) or none is recorded
NO_SOURCE = frozenset({"", "unknown", "—"})
#: the plain phrase an override's reference ends with (lib.capabilities.OVERRIDES): "(last 3 months)"
_RETENTION = re.compile(r"\(([^()]+)\)\s*$")


def _lookback_words(source: str, whole: bool) -> str:
    """One look-back source (lib.capabilities.StreamRules.source) in plain words."""
    if source.startswith(IMPORT_SOURCE):
        return source
    if source in NO_SOURCE:
        return (f"the exchange does not publish it: the first sync read {capabilities.DEFAULT_LOOKBACK_DAYS:g} "
                "days back" if source == "unknown" else "—")
    docs = source.startswith(capabilities.OVERRIDE_SOURCE)
    if whole:
        return "whole history: read by id from the first record" + (" (exchange's API docs)" if docs else "")
    if source == capabilities.CCXT_SOURCE:
        return "the exchange's published limit (via ccxt)"
    if docs:
        found = _RETENTION.search(source)
        return f"exchange's API docs: {found.group(1)}" if found else "exchange's API docs"
    return source  # a source not known here: as it is


@dataclass(frozen=True)
class ConnectorCoverage:
    connector_id: int
    client: str
    exchange_id: str
    label: str
    lines: list[CoverageLine]

    @property
    def name(self) -> str:
        return f"{self.client} · {self.exchange_id} / {self.label}"


def _history_line(name: str, streams: pd.DataFrame, rules: capabilities.ExchangeRules | None) -> CoverageLine:
    """One stream's rows (one, or one per market) folded into a line: the most recent oldest
    date, the union of the ranges fetched, the least recent complete walk, every failure."""
    markets = tuple(sorted(s.partition(":")[2] for s in streams["stream"] if ":" in s))
    oldest = [v for v in map(_known, streams["oldest_available"]) if v is not None]
    id_paged = rules is not None and name in rules.streams and rules.streams[name].paging == "id"
    oldest_text = _day(max(oldest)) if oldest else WHOLE_HISTORY if id_paged else "unknown"
    sources = sorted({s for s in streams["lookback_source"] if isinstance(s, str) and s})
    starts = [v for v in map(_known, streams["fetched_from"]) if v is not None]
    ends = [v for v in map(_known, streams["fetched_to"]) if v is not None]
    done = streams["complete_at"].dropna()
    if len(done) == len(streams):
        complete = _moment(done.min())
    elif done.empty:
        complete = "not yet"
    else:
        complete = f"not yet for {len(streams) - len(done)} of {len(streams)} markets"
    failures = []
    for row in streams[streams["failed_error"].notna()].itertuples():
        where = f"{row.stream.partition(':')[2]}: " if ":" in row.stream else ""
        window = f"{_span(row.failed_from, row.failed_to)}: " if _known(row.failed_from) is not None else ""
        failures.append(f"{where}{window}{row.failed_error}")
    return CoverageLine(STREAM_LABELS.get(name, name), oldest_text, ", ".join(sources) or "unknown",
                        _span(min(starts, default=None), max(ends, default=None)), complete, "; ".join(failures),
                        markets)


def _balance_line(row: Any) -> CoverageLine:
    """A balance stream: no history, so when it was last read, and whether the key may read it."""
    account_type = row.stream.partition(":")[2] or "default"
    read = _known(row.fetched_to)
    return CoverageLine(
        f"Balances: {account_type} account", "—", "—",
        "never read" if read is None else f"last read {_moment(pd.Timestamp(read, unit='ms'))}",
        "not yet" if pd.isna(row.complete_at) else _moment(row.complete_at), _text(row.failed_error))


def coverage_report(viewer: Viewer, client_id: int | None = None, connector_id: int | None = None,
                    session_or_url: SessionOrUrl = None) -> list[ConnectorCoverage]:
    """Per connector and data kind: what the exchange keeps, what was fetched, the last complete
    walk and failed windows; per-market streams ("trades:BTC/USDT") grouped under their stream."""
    with _session(session_or_url) as session:
        streams = queries.coverage(session, viewer, client_id, connector_id)
        imported = queries.history_imports(session, viewer, client_id, connector_id)
    report = []
    order = list(STREAM_LABELS)
    for cid, rows in streams.groupby("connector_id", sort=False):
        first = rows.iloc[0]
        rules = exchange_rules(str(first["exchange_id"]))
        names = rows["stream"].str.partition(":")[0]
        rows = rows.assign(name=names, order=names.map(lambda n: order.index(n) if n in order else len(order)))
        lines = []
        for name, group in rows.sort_values(["order", "stream"]).groupby("name", sort=False):
            if name == "balance":
                lines.extend(_balance_line(row) for row in group.itertuples())
            else:
                lines.append(_history_line(str(name), group, rules))
        lines.extend(_import_lines(imported[imported["connector_id"] == cid]))
        report.append(ConnectorCoverage(int(cid), str(first["client"]), str(first["exchange_id"]),
                                        str(first["label"]), lines))
    only_imported = imported[~imported["connector_id"].isin(streams["connector_id"])]
    for cid, rows in only_imported.groupby("connector_id", sort=False):
        first = rows.iloc[0]
        report.append(ConnectorCoverage(int(cid), str(first["client"]), str(first["exchange_id"]),
                                        str(first["label"]), _import_lines(rows)))
    return report


#: coverage lines of CSV imports (lib.imports), by kind
IMPORT_LABELS = {"fills": "Fills imported from CSV", "transfers": "Deposits & withdrawals imported from CSV"}


def _import_lines(imports: pd.DataFrame) -> list[CoverageLine]:
    """Per kind, the days the imported files span (touching ranges merged), the files and the
    rows they added, and the last import."""
    lines = []
    for kind, label in IMPORT_LABELS.items():
        files = imports[imports["kind"] == kind]
        if files.empty:
            continue
        ranges: list[list[int]] = []
        spans = zip(files["first_timestamp"].astype(int), files["last_timestamp"].astype(int), strict=True)
        for start, end in sorted(spans):
            if ranges and start <= ranges[-1][1] + capabilities.DAY_MS:
                ranges[-1][1] = max(ranges[-1][1], end)
            else:
                ranges.append([start, end])
        lines.append(CoverageLine(
            label, "—", f"{IMPORT_SOURCE} {len(files)} file(s), {int(files['new_rows'].sum())} new row(s)",
            ", ".join(_span(start, end) for start, end in ranges), f"imported {_moment(files['imported_at'].max())}",
            ""))
    return lines


@dataclass(frozen=True)
class HistoryNotes:
    """Plain sentences for Balances and P&L about history the sync could not read."""

    unreadable: list[str]  # account types the key may not read
    opening: list[str]  # holdings booked as opening balances because the exchange keeps too little


def history_notes(viewer: Viewer, client_id: int | None = None, connector_id: int | None = None,
                  session_or_url: SessionOrUrl = None) -> HistoryNotes:
    """Account types a key may not read, and opening balances booked where the exchange keeps
    fills only back to a date (its look-back), so older history could not be read.

    The date for an opening lot is the look-back as it stood at the first sync: the lot's time
    minus the look-back span, which the fills stream records (``oldest_available`` at
    ``updated_at``).
    """
    with _session(session_or_url) as session:
        streams = queries.coverage(session, viewer, client_id, connector_id)
        opening = queries.opening_balances(session, viewer, client_id, connector_id)
    names = {int(r.connector_id): f"{r.client} · {r.exchange_id} / {r.label}" for r in streams.itertuples()}
    unreadable = []
    for row in streams[(streams["kind"] == "balance") & streams["failed_error"].notna()].itertuples():
        account_type = row.stream.partition(":")[2] or "default"
        unreadable.append(f"{names[int(row.connector_id)]}: {account_type.capitalize()} account not readable "
                          f"with this key: {row.failed_error}")
    spans: dict[int, int] = {}  # connector -> look-back of its fills (ms), where the exchange has one
    for row in streams[streams["kind"] == "trades"].itertuples():
        if _known(row.oldest_available) is not None:
            span = _ms(row.updated_at) - int(row.oldest_available)
            spans[int(row.connector_id)] = min(span, spans.get(int(row.connector_id), span))
    notes = []
    for lot in opening[opening["connector_id"].isin(list(spans)) & (opening["amount"] != 0)].itertuples():
        span, at = spans[int(lot.connector_id)], int(lot.timestamp)
        price = "at the first sync's price" if pd.notna(lot.usd_price) else "with no price at the first sync"
        notes.append(f"{lot.asset} {_amount(float(lot.amount))} on {names[int(lot.connector_id)]} booked as an "
                     f"opening balance {price} on {_day(at)}: the exchange keeps fills only since {_day(at - span)} "
                     f"({round(span / capabilities.DAY_MS)} days), so older history could not be read.")
    return HistoryNotes(unreadable, notes)


# --------------------------------------------------------------------------- P&L


@dataclass(frozen=True)
class PnlReport:
    """The engine's result with what went into it (for the CLI, tests and ``summarize``)."""

    result: pnl.PnlResult
    marks: dict[str, float]
    fills: int
    start: datetime | None
    end: datetime | None
    period: PeriodTotals  # the window's opening and closing value, flows and identity (lib.pnl.period)


@dataclass(frozen=True)
class PnlSummary:
    """What the P&L page draws: small enough to cache per viewer and scope cheaply.

    The engine's disposals frame can hold a row per fill; the page needs only its daily sums.
    """

    method: str
    pool: str
    totals: dict[str, float]
    per_asset: pd.DataFrame
    daily: pd.DataFrame  # date (UTC day), realized
    unpriced: list[str]
    unmatched: dict[str, float]
    warnings: list[str]
    fills: int

    @property
    def notes(self) -> list[str]:
        """The warnings other than the unpriced and unmatched sentences, which the page states
        itself (one notice each, with figures) rather than once more per asset."""
        stated = set(shortfall_warnings(self.unpriced, self.unmatched))
        return [message for message in self.warnings if message not in stated]


#: the P&L page's window presets, in the order offered (UTC days; see ``window_days``)
WINDOW_PRESETS = ("All history", "This month", "Last month", "Quarter to date", "Year to date", "Last 30 days")


def window_days(preset: str, today: date) -> tuple[date | None, date | None]:
    """A preset as (first day, last day), both included, in UTC; (None, None) is all history."""
    month = today.replace(day=1)
    if preset == "All history":
        return None, None
    if preset == "This month":
        return month, today
    if preset == "Last month":
        last = month - timedelta(days=1)
        return last.replace(day=1), last
    if preset == "Quarter to date":
        return month.replace(month=3 * ((today.month - 1) // 3) + 1), today
    if preset == "Year to date":
        return today.replace(month=1, day=1), today
    if preset == "Last 30 days":
        return today - timedelta(days=29), today
    raise ValueError(f"Unknown window {preset!r}; one of: {', '.join(WINDOW_PRESETS)}.")


#: the per-asset P&L's columns in USD (``stated_pnl`` writes them to the cent) and in units
PNL_USD_COLUMNS = ("cost_basis", "market_value", "realized", "unrealized", "fees")
PNL_UNIT_COLUMNS = ("quantity", "unmatched_quantity", "opening_quantity")
#: decimals of a P&L quantity as the P&L table shows it (the satoshi): the engine adds units as
#: floats, whose last digits are noise (0.5633350000000004)
UNIT_PLACES = 8


def _fixed(value: object, places: int) -> Decimal | None:
    """``value`` (a float figure) rounded to ``places`` decimals as ``f"{value:.{places}f}"`` rounds it,
    so the same text as the cards (``fmt.money``) and the table's printf formats; None when missing."""
    if value is None or pd.isna(value):
        return None
    number = Decimal(f"{float(value):.{places}f}")
    return abs(number) if number == 0 else number  # never "-0.00"


def cents(value: object) -> Decimal | None:
    """A USD figure to the cent, as the cards and the P&L table show it (416.264859200001 -> 416.26)."""
    return _fixed(value, 2)


def units(value: object) -> Decimal | None:
    """A P&L quantity to ``UNIT_PLACES`` decimals, as the P&L table shows it (0.5633350000000004 -> 0.56333500)."""
    return _fixed(value, UNIT_PLACES)


def stated_pnl(per_asset: pd.DataFrame, scope: str, method: str, pool: str, start: date | None,
               end: date | None) -> pd.DataFrame:
    """Per-asset P&L rows that say what they are: scope, method, pool and window (UTC days, both
    included; empty: all history) on every row, so a downloaded file is never read out of context.

    Figures are exact decimals as the page's table shows them, never a float's noise: USD to the cent
    (``cents``), quantities to the satoshi (``units``); an unpriced row's market value and unrealized
    are empty."""
    figures = {column: per_asset[column].map(cents).astype(object) for column in PNL_USD_COLUMNS
               if column in per_asset}
    if "priced" in per_asset:
        priced = per_asset["priced"].astype(bool)
        for column in ("market_value", "unrealized"):
            if column in figures:
                figures[column] = figures[column].where(priced, None)
    figures |= {column: per_asset[column].map(units).astype(object) for column in PNL_UNIT_COLUMNS
                if column in per_asset}
    return per_asset.assign(**figures, scope=scope, method=method, pool=pool,
                            window_start=start.isoformat() if start else "", window_end=end.isoformat() if end else "")


@dataclass(frozen=True)
class PnlFooting:
    """How the per-asset rows add up to the Closing value card, each figure to the cent as shown.

    USD-like cash is no lot (it has no cost basis to match), so it has no row: the closing value is
    the priced rows' market value plus that cash. An unpriced holding is in neither figure."""

    rows: Decimal  # the priced rows' market values, each to the cent, added
    priced_rows: int
    cash: Decimal  # USD-like cash at $1 a unit at the window's end (negative: more spent than came in)
    closing: Decimal  # the Closing value card
    unpriced: list[str]  # held with no price: a row with no market value, left out of the closing value too
    cash_assets: list[str]  # what counts as USD-like cash (settings)

    @property
    def rounding(self) -> Decimal:
        """What the rows' rounding to the cent leaves: closing - rows - cash (0 but for a cent or two)."""
        return self.closing - self.rows - self.cash


def pnl_footing(totals: dict[str, float], per_asset: pd.DataFrame) -> PnlFooting:
    """The footing of a P&L's per-asset table (``PnlSummary.per_asset``) to its closing value
    (``totals``: ``window_totals``): the same figures the cards and the table show."""
    priced = per_asset["priced"].astype(bool) if "priced" in per_asset else pd.Series(True, index=per_asset.index)
    values = per_asset["market_value"][priced].map(cents) if len(per_asset) else pd.Series(dtype=object)
    held = per_asset["quantity"].astype(float) != 0 if len(per_asset) else priced
    return PnlFooting(
        rows=sum((v for v in values if v is not None), Decimal("0.00")), priced_rows=int(priced.sum()),
        cash=cents(totals["closing_value"] - totals["market_value"]) or Decimal("0.00"),
        closing=cents(totals["closing_value"]) or Decimal("0.00"),
        unpriced=sorted(map(str, per_asset["asset"][~priced & held])) if len(per_asset) else [],
        cash_assets=sorted(usd_like()),
    )


_EMPTY_PERIOD = PeriodTotals(**{f.name: 0.0 for f in fields(PeriodTotals)})


def _marks_at(session: Session, viewer: Viewer, held: pd.DataFrame, client_id: int | None,
              connector_id: int | None, end: datetime | None, candles: pd.DataFrame,
              market: Market | None = None) -> prices.SourceMarks:
    """Marks per source for unrealized P&L: now (tickers) for an open window, each source's candle
    closes at a past ``end`` (also a window's start: the close of the day before it)."""
    if end is None or end >= utcnow():
        return current_marks(session, viewer, held, client_id, connector_id, market)
    assets = _distinct(held["asset"])
    at = np.full(len(assets), _ms(end) - 1, dtype=np.int64)
    marks: prices.SourceMarks = {}
    for source, series in prices.source_series(candles).items():
        closes = prices.usd_at(series, assets, at, usd_like=usd_like())
        marks[source] = {a: float(p) for a, p in zip(assets, closes, strict=True) if np.isfinite(p)}
    return marks


def _net(connectors: pd.Series, assets: pd.Series, units: np.ndarray) -> pd.DataFrame:
    """Sum of ``units`` per (connector, asset), null assets left out. Integer codes and bincount:
    grouping a million string keys directly took 0.6 s of a P&L, this 0.05 s."""
    owner, owners = pd.factorize(connectors)
    asset, names = pd.factorize(assets)
    keep = asset >= 0
    sums = np.bincount(owner[keep] * len(names) + asset[keep], weights=units[keep],
                       minlength=len(owners) * len(names))
    where = np.flatnonzero(sums)
    return pd.DataFrame({"connector_id": np.asarray(owners)[where // max(len(names), 1)],
                         "asset": np.asarray(names, dtype=object)[where % max(len(names), 1)], "units": sums[where]})


def _fill_net(fills: pd.DataFrame) -> pd.DataFrame:
    """Each connector's net units of each asset from fills (``rebuild.fill_changes``, the balances' rule)."""
    parts = [_net(change["connector_id"], change["asset"], change["change"].to_numpy(float))
             for change in rebuild.fill_changes(fills)]
    if not parts:
        return pd.DataFrame({"connector_id": pd.Series(dtype=np.int64), "asset": pd.Series(dtype=object),
                             "units": pd.Series(dtype=float)})
    return pd.concat(parts).groupby(["connector_id", "asset"], as_index=False)["units"].sum()


def _units_held(fills: pd.DataFrame, moves: pd.DataFrame, opening: pd.DataFrame,
                sources: dict[int, str], fill_net: pd.DataFrame | None = None) -> pd.DataFrame:
    """Units of each asset per price source (``source``, ``asset``, ``units``): each connector's
    net of fills (``_fill_net``, given or from ``fills``), transfers and opening lots, negatives
    as 0, as lib.pnl locates pooled holdings; the weights of ``prices.pooled_marks``."""
    parts = [
        (moves, moves["currency"], np.where(moves["type"] == "deposit", 1.0, -1.0) * moves["amount"].astype(float)),
        (opening, opening["asset"], opening["amount"].astype(float)),
    ]
    net = pd.concat([_fill_net(fills) if fill_net is None else fill_net]
                    + [_net(frame["connector_id"], asset, np.asarray(units, float)) for frame, asset, units in parts])
    net = net.groupby(["connector_id", "asset"], as_index=False)["units"].sum()
    return net.assign(source=net["connector_id"].map(sources), units=net["units"].clip(lower=0.0))[
        ["source", "asset", "units"]]


def _empty_result(method: str, pool: str) -> pnl.PnlResult:
    """Nothing in scope (a new client, or a scope the viewer cannot see): zeros, no rows."""
    def empty(columns: tuple[str, ...]) -> pd.DataFrame:
        return pd.DataFrame({column: pd.Series(dtype=object) for column in columns})

    return pnl.PnlResult(
        method=method, pool=pool, per_asset=empty(PER_ASSET_COLUMNS), holdings=empty(HOLDING_COLUMNS),
        disposals=empty(DISPOSAL_COLUMNS), flows=empty(FLOW_COLUMNS),
        totals=pnl.Totals(**{f.name: 0.0 for f in fields(pnl.Totals)}), unpriced_assets=[], unmatched={},
        warnings=[],
    )


def as_balance_moves(moves: pd.DataFrame) -> pd.DataFrame:
    """Transfers as the account's balance sees them, so P&L holdings equal the exchange's.

    A deposit counts once credited (status ok, or none reported); a withdrawal counts unless
    it failed, and takes its fee with it when the fee is paid in the withdrawn currency.
    The sync's opening-balance check (lib.sync.store.explained_holdings) uses the same rule.
    """
    deposit = moves["type"] == "deposit"
    credited = moves["status"].isna() | (moves["status"] == "ok")
    fee = moves["fee_cost"].astype(float).fillna(0.0)
    same_currency = moves["fee_currency"].isna() | (moves["fee_currency"] == moves["currency"])
    amount = moves["amount"].astype(float) + fee.where(~deposit & same_currency, 0.0)
    return moves[~deposit | credited].assign(amount=amount[~deposit | credited])


def _distinct(*columns: pd.Series) -> list[str]:
    """The sorted distinct non-null values of some columns.

    ``unique()`` first: iterating a million-row (arrow-backed) column value by value into a
    set took 2.4 s of a 3.5 s P&L recompute.
    """
    return sorted({value for column in columns for value in column.dropna().unique()})


@dataclass(frozen=True)
class _PnlInputs:
    """What the engine takes for one scope: priced frames and the marks at the window's edges."""

    fills: pd.DataFrame  # pnl.FILL_COLUMNS (+ realized_pnl), with quote_usd and fee_usd
    moves: pd.DataFrame  # pnl.TRANSFER_COLUMNS, as the balance sees them
    opening: pd.DataFrame  # pnl.OPENING_COLUMNS
    marks: dict[str, float]  # at the window's end (now for an open window)
    marks_start: dict[str, float]
    price_notes: list[str]
    count: int  # fills in scope up to the window's end

    @property
    def empty(self) -> bool:
        return self.fills.empty and self.moves.empty and self.opening.empty


@dataclass(frozen=True)
class _Read:
    """One scope's price sources, transfers, opening lots and candles (sources' only), up to no end."""

    sources: dict[int, str]
    moves: pd.DataFrame
    opening: pd.DataFrame
    candles: pd.DataFrame


def _read_scope(session: Session, viewer: Viewer, client_id: int | None, connector_id: int | None) -> _Read:
    sources = queries.price_sources(session, viewer, client_id, connector_id)
    candles = scope_candles(session, viewer, client_id, connector_id)
    return _Read(sources, queries.transfers(session, viewer, client_id, connector_id),
                 queries.opening_balances(session, viewer, client_id, connector_id),
                 candles[candles["source"].isin(set(sources.values()))])  # not a deleted connector's host


def _pnl_inputs(session: Session, viewer: Viewer, client_id: int | None, connector_id: int | None,
                start: datetime | None, end: datetime | None, fills: pd.DataFrame | None = None,
                market: Market | None = None, fill_net: pd.DataFrame | None = None,
                read: _Read | None = None) -> _PnlInputs:
    """Query transfers, opening lots and candles in scope (and fills and market data, unless the
    caller read them: the Clients page reads every client's at once; ``read``: all history's P&L
    read the rest already), price them, find the marks."""
    cash = usd_like()
    end_ms = _ms(end)
    sources = queries.price_sources(session, viewer, client_id, connector_id) if read is None else read.sources
    if fills is None:
        fills = queries.pnl_fills(session, viewer, client_id, connector_id, end_ms)
    fills = _with_sources(fills, sources)
    if read is not None and end_ms is None:
        moves, opening, candles = _with_sources(read.moves, sources), _with_sources(read.opening, sources), read.candles
    else:
        moves = _with_sources(queries.transfers(session, viewer, client_id, connector_id, end_ms=end_ms), sources)
        opening = _with_sources(queries.opening_balances(session, viewer, client_id, connector_id), sources)
        if market is None:
            candles = queries.candles(session, viewer, client_id, connector_id, end_ms=end_ms)
        else:
            candles = market.candles if end_ms is None else market.candles[market.candles["timestamp"] < end_ms]
        candles = candles[candles["source"].isin(set(sources.values()))]  # not a deleted connector's host
    assets = _distinct(fills["base"], fills["quote"], fills["fee_currency"], moves["currency"], opening["asset"])
    if len(set(sources.values())) > 1:
        held = _units_held(fills, as_balance_moves(moves), opening, sources, fill_net)
    else:  # one source prices everything: no weights to find
        held = pd.DataFrame({"source": next(iter(sources.values()), ""), "asset": assets, "units": 1.0})
    source_marks = _marks_at(session, viewer, held, client_id, connector_id, end, candles, market)
    start_marks = {} if start is None else _marks_at(session, viewer, held, client_id, connector_id, start, candles,
                                                     market)
    marks, price_notes = prices.pooled_marks(source_marks, held, assets, usd_like=cash)
    marks_start, _ = prices.pooled_marks(start_marks, held, assets, usd_like=cash)
    if fills.empty and moves.empty and opening.empty:
        return _PnlInputs(fills.drop(columns="source"), moves.drop(columns="source"), opening.drop(columns="source"),
                          marks, marks_start, price_notes, 0)
    priced_fills = prices.add_fill_usd(fills, candles, usd_like=cash)
    priced_moves = prices.add_transfer_usd(as_balance_moves(moves)[[*pnl.TRANSFER_COLUMNS[:-1], "source"]], candles,
                                           usd_like=cash)
    opening = prices.add_transfer_usd(opening, candles, usd_like=cash, asset_column="asset").assign(
        usd=lambda f: f["usd_price"].astype(float).fillna(f["usd"]))[list(pnl.OPENING_COLUMNS)]
    return _PnlInputs(priced_fills.drop(columns="source"), priced_moves.drop(columns="source"), opening, marks,
                      marks_start, price_notes, len(fills))


def pnl_report(session_or_url: SessionOrUrl, viewer: Viewer, client_id: int | None = None,
               connector_id: int | None = None, method: Method = "fifo", start: datetime | None = None,
               end: datetime | None = None, pool: Pool = "scope") -> PnlReport:
    """Query fills, transfers and opening lots in scope, price them, and run lib.pnl.

    History before ``start`` is read too (it builds the lots); only the window's disposals
    count as realized. Each fill, transfer and opening lot is priced from its connector's own
    price source's candles, and holdings at its marks (``prices.pooled_marks``: one mark per
    asset, weighted by where the units are; a warning names the sources where they differ).
    """
    if start is not None and end is not None and start >= end:
        raise ValueError("The window's start must be before its end.")
    with _session(session_or_url) as session:
        if start is None and end is None:
            live = _live_report(session, viewer, client_id, connector_id, method, pool)
            if live is not None:
                return live
        inputs = _pnl_inputs(session, viewer, client_id, connector_id, start, end)
    if inputs.empty:
        return PnlReport(_empty_result(method, pool), inputs.marks, 0, start, end, _EMPTY_PERIOD)
    return _report(inputs, method, start, end, pool)


def _report(inputs: _PnlInputs, method: Method, start: datetime | None, end: datetime | None,
            pool: Pool, period: Period | None = None, dated_opening: pd.DataFrame | None = None) -> PnlReport:
    """The period P&L of priced inputs (``period``, when it was made from a kept state), with its
    warnings in plain words."""
    cash, end_ms = usd_like(), _ms(end)
    if period is None:
        period = period_pnl(inputs.fills, inputs.moves, inputs.opening, inputs.marks_start, inputs.marks,
                            start=_ms(start), end=end_ms, method=method, pool=pool, usd_like=cash)
    result = period.window
    if dated_opening is None:
        dated_opening = pnl.date_opening_lots(inputs.opening, inputs.fills, inputs.moves)
    named = name_unpriced_assets(result.warnings, inputs.moves, dated_opening, end_ms, cash)
    if period.unpriced_at_start:
        named.append(f"No price at the window's start for {', '.join(period.unpriced_at_start)}: left out of the "
                     "opening value and of unrealized P&L at the start.")
    if period.unpriced_withdrawals:
        named.append(f"Withdrawn in this window with no price at the time: {', '.join(period.unpriced_withdrawals)}; "
                     "they count 0 in the withdrawals and their cost basis shows as withdrawn unrealized.")
    return PnlReport(replace(result, warnings=named + inputs.price_notes), inputs.marks, inputs.count, start, end,
                     period.totals)


@dataclass(frozen=True)
class _Live:
    """All history's P&L for one scope, method and pool, kept in memory to continue from when
    only later fills came (``lib.pnl.state``), with what it was made from."""

    state: pnl_state.PnlState
    version: int  # the database's write version and token when it was made (``queries.write_state``)
    token: str
    trades_epoch: str  # changes when a fill is updated or deleted (a connector removed)
    max_id: int  # it covers the trades table's rows with ids up to this, ``count`` of them
    count: int
    sources: dict[int, str]
    owners: dict[int, int]  # each connector's client (a connector moved to another client recomputes)
    moves: pd.DataFrame  # transfers and opening lots as read (a change recomputes)
    opening: pd.DataFrame
    candles: int  # fingerprint of the candles at or before the state's watermark (they priced its fills)
    priced_moves: pd.DataFrame
    dated_opening: pd.DataFrame
    fill_net: pd.DataFrame | None  # connectors' net units from fills (the marks' weights), with several sources
    assets: list[str]  # every asset the fills, transfers and opening lots name (the assets marked)
    fills: int


#: kept states (a few scopes: each holds a result the size of its history)
_LIVE: Recent[_Live] = Recent(at_most=4)
#: one state made or continued at a time (the second view then continues the first's)
_LIVE_BUILD_LOCK = threading.Lock()


def _candle_print(candles: pd.DataFrame, upto: int) -> int:
    """A fingerprint of the candles at or before ``upto``: what priced the fills a state covers."""
    rows = candles[candles["timestamp"].to_numpy(np.int64) <= upto][["source", "symbol", "timestamp", "close"]]
    return int(pd.util.hash_pandas_object(rows, index=False).sum()) if len(rows) else 0


def _owners(session: Session) -> dict[int, int]:
    """Each connector's client."""
    return {cid: owner for cid, owner in session.execute(select(Connector.id, Connector.client_id))}


def _live_report(session: Session, viewer: Viewer, client_id: int | None, connector_id: int | None, method: Method,
                 pool: Pool) -> PnlReport | None:
    """All history's P&L (no window), continued from a kept state when only later fills came since
    (a sync's new fills: milliseconds), else recomputed in full and kept. None where nothing can be
    kept (a database without a write version, or uncommitted writes): the caller computes as always.

    A state continues only when the database went through the version it was made at, no fill was
    updated or deleted since (trades epoch), the trades table holds exactly its rows plus the new
    ones, transfers, opening lots, price sources and the candles that priced its fills are as they
    were, and every new fill in scope is later than its last event (``pnl_state.resume``): a
    back-dated fill, an import into the past or a removed connector recompute everything.
    """
    db = queries.write_state(session)
    if db is None or has_pending_writes(session.connection()):
        return None
    cash = usd_like()
    ids = queries.connector_ids(session, viewer, client_id, connector_id)
    if ids == []:
        return None
    key = (get_settings().database_url, db.identity, None if ids is None else tuple(ids), method, pool,
           tuple(sorted(cash)))
    read = _read_scope(session, viewer, client_id, connector_id)
    sources, moves, opening, candles = read.sources, read.moves, read.opening, read.candles
    with _LIVE_BUILD_LOCK:  # two first views at once would each build a million fills' state
        kept = _LIVE.get(key)
        if kept is not None:
            report = _resumed(session, viewer, client_id, connector_id, kept, db, ids, sources, moves, opening, candles,
                              key)
            if report is not None:
                return report
        store = queries._stored_fills(session)
        owners = _owners(session)
        fills = queries.scoped_fills(store, ids, owners)
        several = len(set(sources.values())) > 1
        fill_net = _fill_net(fills) if several else None
        inputs = _pnl_inputs(session, viewer, client_id, connector_id, None, None, fills, fill_net=fill_net, read=read)
        if inputs.empty:
            return PnlReport(_empty_result(method, pool), inputs.marks, 0, None, None, _EMPTY_PERIOD)
        result, state = pnl_state.start(inputs.fills, inputs.moves, inputs.opening, inputs.marks, method=method,
                                        pool=pool, usd_like=cash)
        dated = pnl.date_opening_lots(inputs.opening, inputs.fills, inputs.moves)
        assets = _distinct(fills["base"], fills["quote"], fills["fee_currency"], moves["currency"], opening["asset"])
        _LIVE.put(key, _Live(state, db.version, db.token, db.trades_epoch, int(store["id"].max()) if len(store) else 0,
                         len(store), sources, owners, moves, opening, _candle_print(candles, state.watermark),
                         inputs.moves, dated, fill_net, assets, len(fills)))
    period = period_of(result, None, inputs.moves, dated, start=None, end=None, usd_like=cash)
    return _report(inputs, method, None, None, pool, period, dated)


def _owned(fills: pd.DataFrame, owners: dict[int, int]) -> bool:
    """Whether every connector of ``fills`` is one of ``owners`` (read before them): an account a
    sync added since, with its first fills, makes a kept state start again rather than continue."""
    return set(fills["connector_id"].unique().tolist()) <= set(owners)


def _resumed(session: Session, viewer: Viewer, client_id: int | None, connector_id: int | None, kept: _Live,
             db: queries.WriteState, ids: list[int] | None, sources: dict[int, str], moves: pd.DataFrame,
             opening: pd.DataFrame, candles: pd.DataFrame, key: tuple[object, ...]) -> PnlReport | None:
    """``_live_report`` from a kept state, or None when it cannot continue (see there)."""
    owners = _owners(session)
    same = (kept.sources == sources and kept.owners == owners and kept.moves.equals(moves)
            and kept.opening.equals(opening) and _candle_print(candles, kept.state.watermark) == kept.candles)
    made = queries.WriteState(db.identity, kept.version, kept.token, kept.trades_epoch)
    raw = queries.fills_added_since(session, made, db, kept.max_id, kept.count) if same else None
    if raw is None or not _owned(raw, owners):
        return None
    cash = usd_like()
    fresh = queries.scoped_fills(raw, ids, owners)
    table = own_series(scope_series(session, viewer, client_id, connector_id), sources)  # ``candles``' series
    priced = prices.add_fill_usd(_with_sources(fresh, sources), table, usd_like=cash).drop(columns="source") \
        if len(fresh) else fresh.assign(quote_usd=pd.Series(dtype=float), fee_usd=pd.Series(dtype=float))
    fill_net = kept.fill_net
    if fill_net is not None and len(fresh):
        fill_net = pd.concat([fill_net, _fill_net(fresh)]).groupby(["connector_id", "asset"], as_index=False)[
            "units"].sum()
    if fill_net is not None:
        held = _units_held(fresh, as_balance_moves(_with_sources(moves, sources)),
                           _with_sources(opening, sources), sources, fill_net)
    assets = sorted(set(kept.assets) | set(_distinct(fresh["base"], fresh["quote"], fresh["fee_currency"])))
    if fill_net is None:  # one source prices everything: no weights to find
        held = pd.DataFrame({"source": next(iter(sources.values()), ""), "asset": assets, "units": 1.0})
    source_marks = _marks_at(session, viewer, held, client_id, connector_id, None, candles)
    marks, price_notes = prices.pooled_marks(source_marks, held, assets, usd_like=cash)
    resumed = pnl_state.resume(kept.state, priced, marks)
    if resumed is None:
        return None
    result, state = resumed
    count = kept.fills + len(fresh)
    live = replace(kept, state=state, version=db.version, token=db.token, max_id=max(kept.max_id, int(
        raw["id"].max()) if len(raw) else 0), count=kept.count + len(raw),
                   candles=_candle_print(candles, state.watermark), fill_net=fill_net, assets=assets, fills=count)
    _LIVE.put(key, live)
    inputs = _PnlInputs(priced, kept.priced_moves, kept.dated_opening, marks, {}, price_notes, count)
    period = period_of(result, None, kept.priced_moves, kept.dated_opening, start=None, end=None, usd_like=cash)
    return _report(inputs, kept.state.method, None, None, kept.state.pool, period, kept.dated_opening)


@dataclass(frozen=True)
class ClientPnl:
    """One client's period P&L figures, as ``window_totals(pnl_report(..., client_id))`` gives them (the
    unrealized of a client whose holdings are priced from several hosts may differ in the last bits)."""

    realized: float
    unrealized_start: float
    unrealized_end: float
    unrealized_change: float
    net: float  # realized + unrealized_change
    unpriced: list[str]  # assets the client holds at the window's end with no price


def _unrealized(holdings: pd.DataFrame, marks: dict[str, float], cash: frozenset[str]) -> tuple[float, list[str]]:
    """Unrealized P&L of holdings at ``marks`` (priced ones only, as lib.pnl's totals) and the unpriced assets."""
    if holdings.empty:
        return 0.0, []
    quantity = holdings["quantity"].to_numpy(float)
    assets = [str(a) for a in holdings["asset"]]
    mark = np.array([pnl.result.mark(marks, a, cash) for a in assets])
    priced = (quantity == 0) | ~np.isnan(mark)
    value = np.where(quantity == 0, 0.0, quantity * mark)
    unrealized = value - holdings["cost_basis"].to_numpy(float)
    return float(unrealized[priced].sum()), sorted({a for a, p in zip(assets, priced, strict=True) if not p})


def client_pnl(viewer: Viewer, client_ids: list[int], method: Method = "fifo", start: datetime | None = None,
               end: datetime | None = None) -> dict[int, ClientPnl]:
    """Every client's own period P&L (``pool='client'``): the same figures as one ``pnl_report`` per
    client, with the fills and market data read once.

    Each client's frames are priced and marked from its own scope (its price sources, candles and
    holdings' weights), exactly as its own report does, and run by the engine on their own
    (``_client_runs``); each client's holdings are valued at its own marks. All history (no window)
    keeps each client's figures and runs again only the clients whose fills changed (``_clients_live``).
    """
    if start is not None and end is not None and start >= end:
        raise ValueError("The window's start must be before its end.")
    with session_scope() as session:
        if start is None and end is None:
            live = _clients_live(session, viewer, client_ids, method)
            if live is not None:
                return live
        every = queries.pnl_fills(session, viewer)
        if end is not None:
            every = every[every["timestamp"].to_numpy() < _ms(end)]
        reads = {client: _client_read(session, viewer, client) for client in client_ids}
        runs = _client_runs(session, viewer, every, reads, _Listed.of(queries.tickers(session, viewer)),
                            _Listed.of(queries.candles(session, viewer)), method, start, end)
    return {client: runs[client].figures(*runs[client].marks) if client in runs else _ZERO for client in client_ids}


_ZERO = ClientPnl(0.0, 0.0, 0.0, 0.0, 0.0, [])


def _by_client(fills: pd.DataFrame, client_ids: list[int]) -> dict[int, pd.DataFrame]:
    """Each client's fills, in their order: grouped by client in one take (a stable sort), then sliced."""
    fills = fills.take(np.argsort(fills["client_id"].to_numpy(), kind="stable")).reset_index(drop=True)
    owner = fills["client_id"].to_numpy()
    return {client: fills.iloc[np.searchsorted(owner, client):np.searchsorted(owner, client, "right")]
            .reset_index(drop=True) for client in client_ids}


@dataclass(frozen=True)
class _ClientRun:
    """One client's part of an engine run pooled per client: realized in the window, its holdings at
    the window's end and start (its rows of the run's, in their order), the marks they were valued at,
    and what its marks are found from (the assets its fills name; with several price sources its
    fills' net units per connector, the marks' weights)."""

    realized: float
    holdings: pd.DataFrame
    at_start: pd.DataFrame | None
    marks: tuple[dict[str, float], dict[str, float]]  # at the window's end, at its start
    traded: frozenset[str]
    fill_net: pd.DataFrame | None

    def figures(self, marks: dict[str, float], marks_start: dict[str, float]) -> ClientPnl:
        """The client's ``ClientPnl`` with its holdings valued at these marks."""
        cash = usd_like()
        end_value, unpriced = _unrealized(self.holdings, marks, cash)
        start_value = 0.0 if self.at_start is None else _unrealized(self.at_start, marks_start, cash)[0]
        return ClientPnl(self.realized, start_value, end_value, end_value - start_value,
                         self.realized + end_value - start_value, unpriced)


def _client_runs(session: Session, viewer: Viewer, fills: pd.DataFrame, reads: dict[int, _ClientRead],
                 tickers: _Listed, candles: _Listed, method: Method, start: datetime | None,
                 end: datetime | None) -> dict[int, _ClientRun]:
    """The clients of ``reads`` with anything in scope (``fills``: theirs, up to the window's end), each
    priced and marked from its own scope and run by the engine on its own, lots pooled per client: a
    client's figures depend on its own history only, the same whichever clients run with it (a run
    over several clients rounds some of a client's holdings differently as the others change), and
    only one client's priced frames are in memory at a time."""
    cash = usd_like()
    traded = _traded_names(fills)
    runs = {}
    for client, own in _by_client(fills, list(reads)).items():
        read, names = reads[client], traded.get(client, frozenset())
        market = _market(tickers, candles, read.scope(names))
        fill_net = _fill_net(own) if len(set(read.sources.values())) > 1 else None
        one = _pnl_inputs(session, viewer, client, None, start, end, own, market, fill_net,
                          _Read(read.sources, read.moves, read.opening, _own_candles(market, read.sources)))
        if one.empty:
            continue
        period = period_pnl(one.fills, one.moves, one.opening, {}, {}, start=_ms(start), end=_ms(end), method=method,
                            pool="client", usd_like=cash)
        runs[client] = _ClientRun(math.fsum(period.window.disposals["gain"].to_numpy(np.float64)),
                                  period.window.holdings, None if period.at_start is None else period.at_start.holdings,
                                  (one.marks, one.marks_start), names, fill_net)
    return runs


@dataclass(frozen=True)
class _ClientsLive:
    """The Clients table's all-history figures per client and what they were made from (see
    ``_clients_live``)."""

    made: queries.WriteState  # the database's write state they are for
    max_id: int  # they cover the trades table's rows with ids up to this, ``count`` of them
    count: int
    owners: dict[int, int]
    latest: int  # the latest fill they cover (ms)
    watermark: int  # the latest fill, transfer or opening lot they cover (ms)
    candles: int  # ``_candle_print`` of the viewer's candles at or before ``watermark``
    reads: dict[int, _ClientRead]
    runs: dict[int, _ClientRun]  # the clients with anything in scope


#: the Clients table's kept figures (small: realized and the open holdings per client), one table
_CLIENTS: Recent[_ClientsLive] = Recent(at_most=1)
#: one table made at a time (a second view then continues the first's)
_CLIENTS_BUILD_LOCK = threading.Lock()


def _clients_live(session: Session, viewer: Viewer, client_ids: list[int],
                  method: Method) -> dict[int, ClientPnl] | None:
    """``client_pnl`` over all history, with only the clients whose fills changed run again: every
    other client keeps its realized P&L and its open lots from the last run, valued at its marks now.
    None where nothing can be kept (a database without a write version, or uncommitted writes): the
    caller computes as always.

    A client's figures depend on its own fills, transfers, opening lots, price sources and market
    data only (its pools hold nothing else), so they are the full run's, bit for bit. The kept ones
    are used when the database went through their version with only fills inserted since
    (``queries.fills_added_since``), each connector has the same client, every client's price
    sources, transfers, opening lots and market scope are as they were, and the candles at or before
    the latest event they cover are unchanged; else every client runs again. A client with a new
    fill, later or back-dated, runs again in full (one client's history: a twentieth of the fills).
    """
    db = queries.write_state(session)
    if db is None or has_pending_writes(session.connection()):
        return None
    ids = queries.connector_ids(session, viewer)
    key = (get_settings().database_url, db.identity, None if ids is None else tuple(ids), tuple(client_ids), method,
           tuple(sorted(usd_like())))
    tickers, candles = _Listed.of(queries.tickers(session, viewer)), _Listed.of(queries.candles(session, viewer))
    reads = {client: _client_read(session, viewer, client) for client in client_ids}
    owners = _owners(session)
    with _CLIENTS_BUILD_LOCK:
        kept = _CLIENTS.get(key)
        raw = None
        if (kept is not None and kept.owners == owners and _candle_print(candles.frame, kept.watermark) == kept.candles
                and all(_same_read(read, kept.reads[client]) for client, read in reads.items())):
            raw = queries.fills_added_since(session, kept.made, db, kept.max_id, kept.count)
            raw = raw if raw is None or _owned(raw, owners) else None
        store = queries._stored_fills(session) if raw is None or len(raw) else raw
        if kept is None or raw is None:  # every client runs
            again, runs, max_id, count, latest, new = list(client_ids), {}, 0, 0, -(2**62), store
        else:  # the clients of the new fills run; the others are valued at their marks now
            again = sorted({owners[int(c)] for c in raw["connector_id"].unique()} & set(client_ids))
            runs = {client: replace(run, marks=(_marks_now(session, viewer, client, reads[client], run, tickers,
                                                           candles), {}))
                    for client, run in kept.runs.items() if client not in again}
            max_id, count, latest, new = kept.max_id, kept.count, kept.latest, raw
        if again:
            mine = {cid for cid, owner in owners.items() if owner in set(again)}
            fills = queries.scoped_fills(store, sorted(mine if ids is None else mine & set(ids)), owners)
            runs |= _client_runs(session, viewer, fills, {client: reads[client] for client in again}, tickers, candles,
                                 method, None, None)
        if len(new):  # the fills these figures cover now
            max_id, count, latest = max(max_id, int(new["id"].max())), count + len(new), max(latest, int(
                new["timestamp"].max()))
        watermark = max([latest, *(int(frame["timestamp"].max()) for read in reads.values()
                                   for frame in (read.moves, read.opening) if len(frame))])
        _CLIENTS.put(key, _ClientsLive(db, max_id, count, owners, latest, watermark,
                                        _candle_print(candles.frame, watermark), reads, runs))
    return {client: runs[client].figures(*runs[client].marks) if client in runs else _ZERO for client in client_ids}


def _same_read(now: _ClientRead, kept: _ClientRead) -> bool:
    return (now.sources == kept.sources and now.exchanges == kept.exchanges and now.untraded == kept.untraded
            and now.moves.equals(kept.moves) and now.opening.equals(kept.opening))


def _marks_now(session: Session, viewer: Viewer, client_id: int, read: _ClientRead, run: _ClientRun,
               tickers: _Listed, candles: _Listed) -> dict[str, float]:
    """A kept client's marks from the market now, found as ``_pnl_inputs`` finds them for all history."""
    cash, sources = usd_like(), read.sources
    market = _market(tickers, candles, read.scope(run.traded))
    assets = sorted(run.traded | set(_distinct(read.moves["currency"], read.opening["asset"])))
    if run.fill_net is not None:
        held = _units_held(read.moves.iloc[:0], as_balance_moves(_with_sources(read.moves, sources)),
                           _with_sources(read.opening, sources), sources, run.fill_net)
    else:  # one source prices everything: no weights to find
        held = pd.DataFrame({"source": next(iter(sources.values()), ""), "asset": assets, "units": 1.0})
    source_marks = _marks_at(session, viewer, held, client_id, None, None, _own_candles(market, sources), market)
    return prices.pooled_marks(source_marks, held, assets, usd_like=cash)[0]


#: lib.pnl's note for lots it had to book at 0 cost basis; it counts them but names no asset.
_UNPRICED_NOTE = re.compile(r"^(\d+) (deposit\(s\)|opening balance\(s\)) had no USD price at the time; ")


def name_unpriced_assets(warnings: list[str], moves: pd.DataFrame, opening: pd.DataFrame, end_ms: int | None,
                         usd_like_assets: frozenset[str]) -> list[str]:
    """lib.pnl's "N deposit(s) had no USD price" notes, with the assets (and counts) they are about.

    "5 deposit(s) had no USD price" gives a reader nothing to check; "ETH ×3, SOL ×2" says
    which candles are missing. The rows are found as lib.pnl finds them: non-cash deposits
    (or positive opening lots) up to ``end_ms`` whose USD value is unknown.
    """
    def until_end(frame: pd.DataFrame) -> pd.DataFrame:
        return frame if end_ms is None else frame[frame["timestamp"] <= end_ms]

    moves, opening = until_end(moves), until_end(opening)
    deposits = moves[(moves["type"] == "deposit") & ~moves["currency"].isin(usd_like_assets)
                     & (moves["amount"].astype(float).abs() * moves["usd"].astype(float)).isna()]
    lots = opening[(opening["amount"].astype(float) > 0) & ~opening["asset"].isin(usd_like_assets)
                   & (opening["amount"].astype(float) * opening["usd"].astype(float)).isna()]
    assets = {"deposit(s)": Counter(deposits["currency"]), "opening balance(s)": Counter(lots["asset"])}
    named = []
    for message in warnings:
        match = _UNPRICED_NOTE.match(message)
        counts = assets[match.group(2)] if match else None
        if counts:
            which = ", ".join(f"{asset} ×{count}" if count > 1 else asset for asset, count in sorted(counts.items()))
            message = (f"{match.group(1)} {match.group(2)} had no USD price at the time ({which}); booked at 0 "
                       "cost basis, so their whole value counts as gain.")
        named.append(message)
    return named


def window_totals(report: PnlReport) -> dict[str, float]:
    """The engine's totals with the window's period figures (lib.pnl.period), for page and CLI alike.

    ``unrealized`` is at the window's end; ``net`` is realized in the window plus the change in
    unrealized over it, so gains from before the window are not counted again.
    """
    totals = asdict(report.result.totals) | asdict(report.period)
    totals["net"] = report.period.realized + report.period.unrealized_change
    totals["identity_gap"] = report.period.identity_gap
    return totals


def _daily_sums(disposals: pd.DataFrame) -> pd.DataFrame:
    """Realized gains per UTC day (``date``, ``realized``), each day the sum of its own disposals."""
    days = pd.to_datetime(disposals["timestamp"], unit="ms", utc=True).dt.floor("D")
    return disposals.groupby(days)["gain"].sum().rename("realized").rename_axis("date").reset_index()


@dataclass(frozen=True)
class _Daily:
    """``_daily_sums`` of some disposals, with their times and gains (copies) to know them again."""

    timestamps: np.ndarray  # in time order (pandas sums an unordered day's rows in another order)
    gains: np.ndarray  # as int64 bit patterns: compared bit for bit, NaN included
    daily: pd.DataFrame


#: the daily realized of the last few P&L results (a kept P&L state's disposals grow at the end)
_DAILY: Recent[_Daily] = Recent(at_most=4)
_DAY_MS = 86_400_000


def _daily_realized(disposals: pd.DataFrame) -> pd.DataFrame:
    """``_daily_sums(disposals)``; where the disposals are in time order and begin with the rows of
    kept ones, bit for bit (a resumed P&L state's: its new disposals follow the earlier), only the
    days of the rows after them are summed again, from every row of those days in their order:
    each day's sum is of its own rows in order, so the figures are a full sum's. Half a million
    disposals take ~20 ms in full. Disposals out of time order, or with a NaN gain, are summed in
    full and not kept (pandas then sums every day's rows in another order)."""
    timestamps = disposals["timestamp"].to_numpy()
    values = disposals["gain"].to_numpy(np.float64)
    if timestamps.dtype != np.int64 or (np.diff(timestamps) < 0).any() or np.isnan(values).any():
        return _daily_sums(disposals)
    gains = values.view(np.int64)
    kept = max((k for k in _DAILY.values() if 0 < len(k.timestamps) <= len(timestamps)
                and np.array_equal(k.timestamps, timestamps[:len(k.timestamps)])
                and np.array_equal(k.gains, gains[:len(k.gains)])), key=lambda k: len(k.timestamps), default=None)
    if kept is not None and len(kept.timestamps) == len(timestamps):
        return kept.daily.copy(deep=False)  # the caller's frame: the kept one stays as it is
    if kept is None:
        daily = _daily_sums(disposals)
    else:
        day = timestamps // _DAY_MS
        touched = np.unique(day[len(kept.timestamps):])
        again = _daily_sums(disposals[np.isin(day, touched)])
        earlier = kept.daily[~kept.daily["date"].isin(again["date"])]
        daily = pd.concat([earlier, again]).sort_values("date", kind="stable", ignore_index=True)
    _DAILY.put(len(timestamps), _Daily(timestamps.copy(), gains.copy(), daily))
    return daily.copy(deep=False)


def summarize(report: PnlReport) -> PnlSummary:
    result = report.result
    daily = _daily_realized(result.disposals)
    return PnlSummary(
        method=result.method, pool=result.pool, totals=window_totals(report), per_asset=result.per_asset,
        daily=daily, unpriced=list(result.unpriced_assets), unmatched=dict(result.unmatched),
        warnings=list(result.warnings), fills=report.fills,
    )


#: files of each kind kept on disk (newest first); older ones are deleted.
SUMMARY_FILES_KEPT = 200
#: set in a thread that computes figures anew (``computing_anew``)
_ANEW = threading.local()


@contextmanager
def computing_anew() -> Iterator[None]:
    """Within (this thread): ``disk_cached`` computes even where its file exists, and writes it
    again. The worker's first pass after a start uses it, so that the in-memory states behind
    the figures (the P&L's, the balance index, the daily snapshots, the kept comparisons and
    client figures) exist in its process and the next sync's figures continue them, instead
    of all of them being computed while someone waits for the first figures after new data."""
    before = getattr(_ANEW, "on", False)
    _ANEW.on = True
    try:
        yield
    finally:
        _ANEW.on = before


def code_version(package: Path) -> str:
    """A hash of every module of ``package`` (``lib``): a file written by other code is not reused.
    Every module rather than a list per figure: a list misses the next module a computation starts
    to call, and its stale file would be served until the next write."""
    return hashlib.sha256(b"".join(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes()
                                   for path in sorted(package.rglob("*.py")))).hexdigest()[:16]


#: the code that wrote a file kept on disk (``disk_cached``)
CODE_VERSION = code_version(Path(__file__).parent)


def json_default(value: object) -> object:
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__}")


def _iso_utc(column: pd.Series) -> list[object] | None:
    """The ``isoformat`` text of each moment of a UTC column, made from the whole column at once
    (boxing every value as a Timestamp and formatting it one by one was half of writing the equity
    curve's file); None for another column, or one with a missing or sub-microsecond moment."""
    if not isinstance(column.dtype, pd.DatetimeTZDtype) or str(column.dtype.tz) != "UTC" or column.isna().any():
        return None
    naive = column.dt.tz_convert(None).to_numpy()  # in the column's own unit: nanoseconds end in 2262
    if np.datetime_data(naive.dtype)[0] == "ns" and (naive.view(np.int64) % 1000).any():
        return None
    micro = naive.astype("datetime64[us]")
    text = np.datetime_as_string(micro, unit="us").tolist()
    whole = (micro.view(np.int64) % 1_000_000 == 0).tolist()
    return [f"{t[:19]}+00:00" if w else f"{t}+00:00" for t, w in zip(text, whole, strict=True)]


def frame_to_json(frame: pd.DataFrame) -> dict[str, Any]:
    """A frame as plain JSON data, column by column (``frame_from_json`` reads it back): each
    column's ``tolist`` makes its Python values at once, where ``to_dict`` boxed them one cell at a
    time (most of writing the reconciliation's file: 2,200 rows); UTC moments as their text."""
    columns = [frame.iloc[:, at] for at in range(frame.shape[1])]
    return {"columns": list(frame.columns), "values": [_iso_utc(c) or c.tolist() for c in columns]}


def frame_from_json(data: dict[str, Any], moments: tuple[str, ...] = ()) -> pd.DataFrame:
    """The frame of ``frame_to_json``, with the ``moments`` columns as UTC datetimes again."""
    frame = pd.DataFrame(list(zip(*data["values"], strict=True)), columns=data["columns"])  # as rows: the same dtypes
    for column in moments:
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    return frame


def _dump_summary(summary: PnlSummary) -> str:
    """Plain JSON (never pickle: a file that can be read must not be able to run code)."""
    data = {f.name: getattr(summary, f.name) for f in fields(summary)}
    for name in ("per_asset", "daily"):
        data[name] = frame_to_json(data[name])
    return json.dumps(data, default=json_default)


def _load_summary(text: str) -> PnlSummary:
    data = json.loads(text)
    data["per_asset"] = frame_from_json(data["per_asset"])
    data["daily"] = frame_from_json(data["daily"], ("date",))
    return PnlSummary(**data)


def disk_cached(kind: str, viewer: Viewer, client_id: int | None, connector_id: int | None,
                   options: list[object], code: str, compute: Callable[[], T], dump: Callable[[T], str],
                   load: Callable[[str], T]) -> T:
    """``compute()``, kept in DATA_DIR/cache as ``<kind>-<key>.json`` across restarts and cache clears.

    The key is what the figures depend on: the connectors the viewer's scope resolves to
    (so two viewers share an entry only when they may see exactly the same accounts), the
    ``options``, ``queries.data_version`` (any new fill, snapshot, transfer or ticker makes a
    new key), the cash list and ``code`` (the version of the code that computes them). So a
    page's cold load after a restart or a cache clear reads a small file instead of
    recomputing a million fills; the first view after new data computes once. A value is
    written only when the data version is still the key's after computing it (a sync that
    committed meanwhile may be in it). Files are plain JSON (never pickle), 0600, beside the
    database.
    """
    with session_scope() as session:
        ids = queries.connector_ids(session, viewer, client_id, connector_id)
        version = queries.data_version(session)
    settings = get_settings()
    key = json.dumps([hashlib.sha256(settings.database_url.encode()).hexdigest(), ids, *options, version,
                      sorted(settings.usd_like), code], default=json_default)
    folder = settings.data_dir / "cache"
    path = folder / f"{kind}-{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"
    if path.is_file() and not getattr(_ANEW, "on", False):
        try:
            return load(path.read_text())
        except (OSError, ValueError, KeyError, TypeError):  # torn or foreign file: recompute
            path.unlink(missing_ok=True)
    value = compute()
    with session_scope() as session:
        if queries.data_version(session) != version:  # written to while computing: not this version's figures
            return value
    folder.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}-{threading.get_ident()}.tmp")  # two threads may write one key
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(dump(value))
    os.replace(temporary, path)
    with suppress(OSError):  # another process may be pruning too
        kept = sorted(folder.glob(f"{kind}-*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        for stale in kept[SUMMARY_FILES_KEPT:]:
            stale.unlink(missing_ok=True)
    return value


def cached_pnl_summary(viewer: Viewer, client_id: int | None = None, connector_id: int | None = None,
                       method: Method = "fifo", start: datetime | None = None, end: datetime | None = None,
                       pool: Pool = "scope") -> PnlSummary:
    """``summarize(pnl_report(...))``, kept on disk (``disk_cached``)."""
    return disk_cached(
        "pnl", viewer, client_id, connector_id, [method, pool, start, end], CODE_VERSION,
        lambda: summarize(pnl_report(None, viewer, client_id, connector_id, method, start, end, pool)),
        _dump_summary, _load_summary)
