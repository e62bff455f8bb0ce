"""Trading activity of a scope over a period: USD volume, buy/sell split, maker share, fees, counts.

What an agency and its token-project clients measure. A fill's USD notional is its cost in the
quote currency valued at the quote's USD price at the fill (the close of the stored candle the
fill falls in, from its connector's own price source: the P&L engine's rules, PNL.md); a
USD-like quote counts 1:1, exactly (``Decimal``). Fees are valued the same way. A fill whose
quote, or a fee whose currency, has no price is left out of the USD figures and named, never
counted as $0. Fills the exchange did not mark maker or taker count as "unknown".

Cents: the fills are added up per cell, one account's fills of one market, side and fee currency
on one UTC day (``CELL``), and each cell's USD volume and USD fees are rounded to the cent once
(half away from zero, ``to_cents``); every figure shown is a sum of those cents, so a table's rows,
its total and the headline foot exactly (a row's volume is its bought + sold), and the Clients and
Trades pages add the same cells. A cell, not a fill: rounding each fill would drop a market
maker's sub-cent fees ($0.004 a fill shows as $0) and move a million fills' total by dollars; a
cell's rounding moves a total by at most half a cent a cell, and in practice by a few cents. The
maker / taker table (its role is not in the cell) is rounded to foot to the headline (largest
remainder: each row within a cent of its own sum).

Totals that need no maker/taker role (``fill_totals``, ``volume_and_fees``) read the fill store
instead (floats, a million fills in about a second); the activity report reads the period's
fills with their exact amounts. The pages read both through a disk cache keyed by the data
version (``cached_fill_totals``, ``cached_activity_report``), and the worker makes the ones a
page opens on for every client ahead (``lib.figures_ahead``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from lib import prices, queries, reports
from lib.access import Viewer
from lib.db import has_pending_writes, session_scope
from lib.models import Client, Connector, Trade, to_decimal
from lib.settings import get_settings

#: One row per fill of the period, as ``period_fills`` returns it (before USD columns).
ACTIVITY_FILL_COLUMNS = [
    "connector_id", "client_id", "client", "exchange_id", "label", "timestamp", "symbol", "quote", "side",
    "taker_or_maker", "cost", "fee_cost", "fee_currency",
]
VOLUME_COLUMNS = ["client_id", "client", "fills", "volume_usd", "fees_usd", "unpriced"]
MAKER_ROLES = ("maker", "taker", "unknown")
#: The Activity page's period when it opens (a ``reports.WINDOW_PRESETS`` name): the worker makes its report ahead.
DEFAULT_WINDOW = "Last 30 days"
#: How the USD figures add up, in words, beside the Activity page's figures.
CENTS_NOTE = ("USD figures are rounded to the cent per account, market, side and day, then added up: every row "
              "and total adds up to the cent, and a market's volume is its bought + sold.")


def _ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def _exact(values: np.ndarray) -> list[Decimal | None]:
    """The driver's amounts as ``lib.models.Amount`` reads them back (``to_decimal``): SQLite's
    decimal text through the C ``Decimal`` constructor (a tenth of the type decorator's cost per
    value), PostgreSQL's ``Decimal`` as it comes."""
    return [Decimal(v) if type(v) is str else to_decimal(v) for v in values]


def _decimal(value: object) -> Decimal | None:
    """``to_decimal``, passing a ``Decimal`` (what the amounts here already are) straight through."""
    return value if type(value) is Decimal else to_decimal(value)


def period_fills(session: Session, viewer: Viewer, start: datetime | None, end: datetime | None,
                 client_id: int | None = None, connector_id: int | None = None, symbol: str | None = None,
                 side: str | None = None) -> pd.DataFrame:
    """The scope's fills in [start, end) (of ``symbol`` and ``side`` when given) with their exact
    cost and fee (``Decimal``), oldest first.

    The driver's plain rows over the timestamp index, only the columns the report reads, no
    joins (the accounts' names come from the connectors table) and no SQLAlchemy processing per
    value: a month of a million fills (77,000 rows) in about 0.3 s where the joined, typed read
    of every amount took 1.4 s."""
    ids = queries.connector_ids(session, viewer, client_id, connector_id)
    if ids == []:
        return pd.DataFrame(columns=ACTIVITY_FILL_COLUMNS)
    read = ["connector_id", "timestamp", "symbol", "quote", "side", "taker_or_maker", "cost", "fee_cost",
            "fee_currency"]
    query = select(*(getattr(Trade, name) for name in read)).order_by(Trade.timestamp, Trade.id)
    if ids is not None:
        query = query.where(Trade.connector_id.in_(ids))
    if symbol:
        query = query.where(Trade.symbol == symbol)
    if side:
        query = query.where(Trade.side == side)
    if (start_ms := _ms(start)) is not None:
        query = query.where(Trade.timestamp >= start_ms)
    if (end_ms := _ms(end)) is not None:
        query = query.where(Trade.timestamp < end_ms)
    rows = queries.driver_rows(session, query)
    if not rows:
        return pd.DataFrame(columns=ACTIVITY_FILL_COLUMNS)
    table = np.array(rows, dtype=object)
    frame = pd.DataFrame({name: _exact(table[:, i]) if name in ("cost", "fee_cost") else table[:, i]
                          for i, name in enumerate(read)})
    accounts = pd.DataFrame(session.execute(
        select(Connector.id, Connector.client_id, Client.name, Connector.exchange_id, Connector.label)
        .join(Client, Client.id == Connector.client_id)).all(),
        columns=["connector_id", "client_id", "client", "exchange_id", "label"]).set_index("connector_id")
    frame = frame.astype({"connector_id": "int64", "timestamp": "int64"})
    for column in ("client_id", "client", "exchange_id", "label"):
        frame[column] = frame["connector_id"].map(accounts[column])
    return frame[ACTIVITY_FILL_COLUMNS]


def _candles_for(session: Session, viewer: Viewer, fills: pd.DataFrame, client_id: int | None,
                 connector_id: int | None) -> pd.DataFrame:
    sources = queries.price_sources(session, viewer, client_id, connector_id)
    end_ms = int(fills["timestamp"].max()) + 1 if not fills.empty else None
    candles = queries.candles(session, viewer, client_id, connector_id, end_ms=end_ms)
    return candles[candles["source"].isin(set(sources.values()))]


def price_fills(fills: pd.DataFrame, candles: pd.DataFrame, sources: dict[int, str],
                usd_like: frozenset[str]) -> pd.DataFrame:
    """``fills`` with ``usd`` (notional) and ``fee_usd`` as floats (NaN: unpriced); every figure
    shown adds them per cell and rounds each cell to the cent once (``cents_cells``)."""
    out = fills.copy()
    out["source"] = out["connector_id"].map(sources).fillna("")
    floats = out[["connector_id", "timestamp", "quote", "fee_currency", "source"]].assign(
        fee_cost=[float(v) if v is not None else 0.0 for v in out["fee_cost"]])
    floats["timestamp"] = floats["timestamp"].astype("int64")
    priced = prices.add_fill_usd(floats, candles, usd_like=usd_like)
    cost = np.array([float(v) for v in out["cost"]], dtype=float)
    fee = floats["fee_cost"].to_numpy(float)
    out["usd"] = cost * priced["quote_usd"].to_numpy(float)
    out["fee_usd"] = np.where(fee == 0, 0.0, fee * priced["fee_usd"].to_numpy(float))
    out["day"] = pd.to_datetime(out["timestamp"].astype("int64"), unit="ms", utc=True).dt.floor("D")
    out["role"] = out["taker_or_maker"].where(out["taker_or_maker"].isin(("maker", "taker")), "unknown")
    return out.drop(columns="source")


def to_cents(usd: pd.Series | np.ndarray) -> np.ndarray:
    """Each USD value in whole cents (as floats: sums of them stay exact; NaN: unpriced), rounded half
    away from zero. The product's float error is taken off first (to a millionth of a cent), so a
    value a decimal tie rounds like its decimal text: 1.015 -> 102, 0.005 -> 1, -0.005 -> -1."""
    scaled = np.round(np.asarray(usd, dtype=float) * 100, 6)
    return np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)


def cents_total(cents: pd.Series | np.ndarray) -> Decimal:
    """The sum of whole cents (``to_cents``; NaN left out) in dollars, exactly (two places)."""
    return Decimal(int(np.nansum(np.asarray(cents, dtype=float)))).scaleb(-2)


def _dollars(cents: pd.Series) -> pd.Series:
    return cents / 100


#: What the figures add up and round to the cent once (besides the day, from the fill's timestamp).
CELL = ["connector_id", "symbol", "side", "fee_currency"]
_DAY_MS = 86_400_000


def cents_cells(fills: pd.DataFrame, keys: tuple[str, ...] = ()) -> pd.DataFrame:
    """Priced fills (``usd``, ``fee_usd``) added up per ``CELL`` and UTC day (plus ``keys`` that the
    cell decides, such as the client or the exchange): ``fills``, ``usd_cents`` and ``fee_cents``, each
    cell's sum rounded to whole cents once (NaN: nothing in the cell priced)."""
    cell = np.zeros(len(fills), dtype=np.int64)  # one number per cell: its columns' codes, mixed radix
    for codes in [pd.factorize(fills[column], use_na_sentinel=False)[0] for column in CELL] + [
            fills["timestamp"].to_numpy("int64") // _DAY_MS]:
        low, high = (int(codes.min()), int(codes.max())) if len(codes) else (0, 0)
        cell = cell * (high - low + 1) + (codes - low)
    grouped = fills[["usd", "fee_usd", *CELL, *keys]].groupby(cell, sort=False)
    cells = grouped[[*CELL, *keys]].first()
    cells["fills"] = grouped.size().astype("int64")
    cells["usd_cents"] = to_cents(grouped["usd"].sum(min_count=1))
    cells["fee_cents"] = to_cents(grouped["fee_usd"].sum(min_count=1))
    return cells.reset_index(drop=True)


def allocate_cents(values: pd.Series, total: Decimal) -> pd.Series:
    """``values`` (USD, NaN kept) in whole cents that add up to ``total``: each rounded, then the cents
    left over given to (or taken from) the rows closest to the other side of their rounding. A row
    of exactly $0 (a role with no fills) stays $0: a cent there would be a figure without a fill."""
    scaled = np.round(values.to_numpy(float) * 100, 6)
    cents = to_cents(values)
    known = np.flatnonzero(~np.isnan(cents) & (scaled != 0))
    left = int(total.scaleb(2)) - int(cents[known].sum())
    if known.size and left:
        step = 1 if left > 0 else -1
        order = known[np.argsort(-(scaled[known] - cents[known]) * step, kind="stable")]
        for i in range(abs(left)):
            cents[order[i % order.size]] += step
    return pd.Series(cents / 100, index=values.index)


def _named(values: pd.Series) -> list[str]:
    return sorted({str(v) for v in values.dropna()})


def unpriced_quotes(fills: pd.DataFrame) -> list[str]:
    """Quote currencies of fills whose notional has no USD price."""
    return _named(fills.loc[fills["usd"].isna(), "quote"])


def unpriced_fees(fills: pd.DataFrame) -> list[str]:
    """Fee currencies of fees that have no USD price."""
    return _named(fills.loc[fills["fee_usd"].isna(), "fee_currency"])


def load_priced_fills(session: Session, viewer: Viewer, start: datetime | None, end: datetime | None,
                      client_id: int | None = None, connector_id: int | None = None, symbol: str | None = None,
                      side: str | None = None) -> pd.DataFrame:
    """The scope's fills in [start, end), priced (``price_fills``)."""
    fills = period_fills(session, viewer, start, end, client_id, connector_id, symbol, side)
    sources = queries.price_sources(session, viewer, client_id, connector_id)
    candles = _candles_for(session, viewer, fills, client_id, connector_id)
    return price_fills(fills, candles, sources, frozenset(get_settings().usd_like))


@dataclass(frozen=True)
class ActivityReport:
    """What a scope traded in a period. Tables carry float USD columns (numeric sort, charts), each
    a sum of the cells' cents (``cents_cells``): rows foot to the totals, which are exact sums of cents."""

    fills: int
    orders: int  # closed or canceled orders created in the period, plus open orders placed in it
    volume_usd: Decimal  # of the priced fills
    fees_usd: Decimal  # of the priced fees
    average_fill_usd: float | None  # volume over priced fills; None without any
    by_day: pd.DataFrame  # day, fills, volume_usd, buy_usd, sell_usd
    by_market: pd.DataFrame  # symbol, exchange_id, fills, volume_usd, buy_usd, sell_usd, fees_usd
    by_exchange: pd.DataFrame  # exchange_id, fills, volume_usd, buy_usd, sell_usd, fees_usd
    sides: pd.DataFrame  # side, fills, volume_usd, share
    maker: pd.DataFrame  # role (maker, taker, unknown), fills, volume_usd, fill_share, volume_share
    fees: pd.DataFrame  # currency, amount (exact), fills, fees_usd (NaN: unpriced)
    unpriced_quotes: list[str] = field(default_factory=list)
    unpriced_fees: list[str] = field(default_factory=list)

    @property
    def maker_share(self) -> float | None:
        """Maker volume over the volume of fills whose role is known; None when none is."""
        known = self.maker[self.maker["role"] != "unknown"]
        total = known["volume_usd"].sum()
        return float(known.loc[known["role"] == "maker", "volume_usd"].sum() / total) if total else None

    @property
    def unknown_role_fills(self) -> int:
        return int(self.maker.loc[self.maker["role"] == "unknown", "fills"].sum())


def _sum_usd(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Fills, priced USD volume (and its buy and sell parts) and fees per ``keys`` of the cells
    (``cents_cells``), each the sum of their cents (exact: a row's volume is its bought + sold); a
    group with nothing priced is NaN, not $0."""
    frame = frame.assign(buy_cents=frame["usd_cents"].where(frame["side"] == "buy", 0.0),
                         sell_cents=frame["usd_cents"].where(frame["side"] == "sell", 0.0))
    grouped = frame.groupby(keys, sort=True, dropna=False)
    return pd.DataFrame({
        "fills": grouped["fills"].sum().astype("int64"),
        "volume_usd": _dollars(grouped["usd_cents"].sum(min_count=1).astype("float64")),
        "buy_usd": _dollars(grouped["buy_cents"].sum().astype("float64")),
        "sell_usd": _dollars(grouped["sell_cents"].sum().astype("float64")),
        "fees_usd": _dollars(grouped["fee_cents"].sum(min_count=1).astype("float64")),
    }).reset_index()


def _shares(frame: pd.DataFrame, column: str, key: str, values: tuple[str, ...]) -> pd.DataFrame:
    table = _sum_usd(frame, [column])[[column, "fills", "volume_usd"]].set_index(column).reindex(list(values))
    return _share_columns(table, key)


def _share_columns(table: pd.DataFrame, key: str) -> pd.DataFrame:
    table["fills"] = table["fills"].fillna(0).astype("int64")
    table["volume_usd"] = table["volume_usd"].fillna(0.0)
    count, volume = table["fills"].sum(), table["volume_usd"].sum()
    table["fill_share"] = table["fills"] / count if count else np.nan
    table["volume_share"] = table["volume_usd"] / volume if volume else np.nan
    return table.rename_axis(key).reset_index()


def _roles(fills: pd.DataFrame, volume: Decimal) -> pd.DataFrame:
    """The maker / taker table: the role is not in the cell, so each role's volume is rounded to
    foot to the headline ``volume`` (``allocate_cents``)."""
    grouped = fills.groupby("role", sort=False)
    table = pd.DataFrame({"fills": grouped.size(), "volume_usd": grouped["usd"].sum()}).reindex(list(MAKER_ROLES))
    table["fills"] = table["fills"].fillna(0).astype("int64")
    table["volume_usd"] = allocate_cents(table["volume_usd"].fillna(0.0), volume)
    return _share_columns(table, "role")


def _fee_table(fills: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    paid = fills[fills["fee_currency"].notna().to_numpy()
                 & np.array([_decimal(v or 0) != 0 for v in fills["fee_cost"]], dtype=bool)]
    if paid.empty:
        return pd.DataFrame({"currency": pd.Series(dtype=object), "amount": pd.Series(dtype=object),
                             "fills": pd.Series(dtype="int64"), "fees_usd": pd.Series(dtype="float64")})
    grouped = paid.groupby("fee_currency", sort=True)
    table = pd.DataFrame({
        "amount": grouped["fee_cost"].agg(lambda values: sum(map(_decimal, values), Decimal(0))),
        "fills": grouped.size(),
    })
    # the cells' cents; one fee without a price leaves its currency's USD total unknown, not understated
    cents = cells.groupby("fee_currency", sort=True, observed=True)["fee_cents"].sum()
    whole = grouped["fee_usd"].apply(lambda v: v.notna().all())
    table["fees_usd"] = _dollars(cents.reindex(table.index).where(whole.reindex(table.index), np.nan)).astype(float)
    return table.rename_axis("currency").reset_index()


def _order_count(session: Session, viewer: Viewer, start: datetime | None, end: datetime | None,
                 client_id: int | None, connector_id: int | None) -> int:
    start_ms, end_ms = _ms(start), _ms(end)
    closed = queries.count_order_history(session, viewer, client_id, connector_id, start_ms=start_ms, end_ms=end_ms)
    placed = queries.open_orders(session, viewer, client_id, connector_id)["timestamp"].dropna().astype("int64")
    inside = np.ones(len(placed), dtype=bool)
    if start_ms is not None:
        inside &= placed.to_numpy() >= start_ms
    if end_ms is not None:
        inside &= placed.to_numpy() < end_ms
    return int(closed) + int(inside.sum())


def summarize(fills: pd.DataFrame, orders: int) -> ActivityReport:
    """The report of priced fills (``price_fills``) and an order count."""
    priced = fills[fills["usd"].notna()]
    cells = cents_cells(fills, ("day", "exchange_id"))
    volume = cents_total(cells["usd_cents"])
    by_market = _sum_usd(cells, ["symbol", "exchange_id"])
    return ActivityReport(
        fills=len(fills), orders=orders, volume_usd=volume,
        fees_usd=cents_total(cells["fee_cents"]),
        average_fill_usd=float(volume) / len(priced) if len(priced) else None,
        by_day=_sum_usd(cells, ["day"]).drop(columns="fees_usd"),
        by_market=by_market.sort_values("volume_usd", ascending=False, ignore_index=True),
        by_exchange=_sum_usd(cells, ["exchange_id"]),
        sides=_shares(cells, "side", "side", ("buy", "sell")).drop(columns="fill_share").rename(
            columns={"volume_share": "share"}),
        maker=_roles(fills, volume),
        fees=_fee_table(fills, cells), unpriced_quotes=unpriced_quotes(fills), unpriced_fees=unpriced_fees(fills),
    )


def activity_report(session: Session, viewer: Viewer, start: datetime | None, end: datetime | None,
                    client_id: int | None = None, connector_id: int | None = None) -> ActivityReport:
    """The scope's trading activity in [start, end)."""
    if start is not None and end is not None and start >= end:
        raise ValueError("The period's start must be before its end.")
    fills = load_priced_fills(session, viewer, start, end, client_id, connector_id)
    return summarize(fills, _order_count(session, viewer, start, end, client_id, connector_id))


@dataclass(frozen=True)
class FillTotals:
    """Totals of a filtered set of fills (the Trades page)."""

    fills: int
    volume_usd: float
    fees_usd: float
    unpriced: list[str]  # quote and fee currencies left out of the USD totals


#: the fill store's columns ``store_priced_fills`` keeps: what the totals group by and value
_VALUED = ["connector_id", "client_id", "timestamp", "symbol", "side", "quote", "fee_currency", "cost", "fee_cost"]


#: this thread's priced fills while ``sharing_priced_fills`` is on (None: off)
_SHARED = threading.local()


@contextmanager
def sharing_priced_fills() -> Iterator[None]:
    """Within the block, this thread's ``store_priced_fills`` with the same arguments at the same write
    version value the fills once: the worker's figures made ahead ask for every fill twice (the
    Clients table's volume and the Trades page's totals: 0.3 s each at a million fills). The frames
    (about 100 MB at a million fills) are let go when the block ends."""
    _SHARED.frames = {}
    try:
        yield
    finally:
        _SHARED.frames = None


def store_priced_fills(session: Session, viewer: Viewer, start: datetime | None, end: datetime | None,
                       client_id: int | None = None, connector_id: int | None = None, symbol: str | None = None,
                       side: str | None = None) -> pd.DataFrame:
    """The matching fills from the fill store (``queries.pnl_fills``, floats) with ``usd`` and ``fee_usd``
    valued as ``price_fills`` values them (NaN: unpriced).

    For totals that need no maker/taker role: a million fills take about a second where reading
    each exact amount takes half a minute; the totals add cells' cents as the report does (``cents_cells``).
    Shared within ``sharing_priced_fills`` (read only: callers never change the frame).
    """
    frames = getattr(_SHARED, "frames", None)
    state = queries.write_state(session) if frames is not None else None
    if state is None or has_pending_writes(session.connection()):
        return _store_priced_fills(session, viewer, start, end, client_id, connector_id, symbol, side)
    ids = queries.connector_ids(session, viewer, client_id, connector_id)
    key = (get_settings().database_url, state, None if ids is None else tuple(ids), client_id, connector_id, start, end,
           symbol, side, tuple(sorted(get_settings().usd_like)))
    if key not in frames:
        frames[key] = _store_priced_fills(session, viewer, start, end, client_id, connector_id, symbol, side)
    return frames[key]


def _store_priced_fills(session: Session, viewer: Viewer, start: datetime | None, end: datetime | None,
                        client_id: int | None, connector_id: int | None, symbol: str | None,
                        side: str | None) -> pd.DataFrame:
    fills = queries.pnl_fills(session, viewer, client_id, connector_id, _ms(end))
    keep = np.ones(len(fills), dtype=bool)
    if (start_ms := _ms(start)) is not None:
        keep &= fills["timestamp"].to_numpy() >= start_ms
    if symbol:
        keep &= (fills["symbol"] == symbol).to_numpy()
    if side:
        keep &= (fills["side"] == side).to_numpy()
    fills = fills.loc[keep, _VALUED] if not keep.all() else fills[_VALUED]  # only what valuing reads: a cheap copy
    sources = queries.price_sources(session, viewer, client_id, connector_id)
    candles = _candles_for(session, viewer, fills, client_id, connector_id)
    priced = prices.add_fill_usd(fills.assign(source=fills["connector_id"].map(sources)), candles,
                                 usd_like=frozenset(get_settings().usd_like))
    fee = priced["fee_cost"].astype(float).fillna(0.0)
    usd = priced["cost"].astype(float) * priced["quote_usd"]
    fee_usd = (fee * priced["fee_usd"]).where(fee != 0, 0.0)
    return priced.assign(usd=usd, fee_usd=fee_usd)


def _left_out(fills: pd.DataFrame) -> list[str]:
    return sorted(set(unpriced_quotes(fills)) | set(unpriced_fees(fills)))


def fill_totals(session: Session, viewer: Viewer, start: datetime | None, end: datetime | None,
                client_id: int | None = None, connector_id: int | None = None, symbol: str | None = None,
                side: str | None = None) -> FillTotals:
    """Count, USD volume and USD fees (sums of the fills' cents) of the matching fills (``store_priced_fills``)."""
    fills = store_priced_fills(session, viewer, start, end, client_id, connector_id, symbol, side)
    cells = cents_cells(fills)
    return FillTotals(len(fills), float(cents_total(cells["usd_cents"])), float(cents_total(cells["fee_cents"])),
                      _left_out(fills))


def volume_and_fees(session: Session, viewer: Viewer, start: datetime | None, end: datetime | None,
                    client_id: int | None = None, connector_id: int | None = None) -> pd.DataFrame:
    """Per client in scope: fills, USD volume and USD fees in [start, end) (``VOLUME_COLUMNS``).

    ``volume_usd`` and ``fees_usd`` are floats (numeric sort): sums of the cells' cents, as
    the Activity page adds them, so a client's row is its Activity headline; ``unpriced``
    names the currencies left out of them ("" when none). Clients without fills are absent.
    """
    fills = store_priced_fills(session, viewer, start, end, client_id, connector_id)
    if fills.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64" if c.endswith("_usd") else object) for c in VOLUME_COLUMNS})
    clients = queries.clients(session, viewer)
    names = dict(zip(clients["id"].astype("int64"), clients["name"], strict=True))
    grouped = cents_cells(fills, ("client_id",)).groupby("client_id", sort=True)
    table = pd.DataFrame({"fills": grouped["fills"].sum(), "volume_usd": _dollars(grouped["usd_cents"].sum()),
                          "fees_usd": _dollars(grouped["fee_cents"].sum())}).reset_index()
    # named from the few unvalued rows, not from every client's rows
    unvalued = fills.loc[fills["usd"].isna() | fills["fee_usd"].isna(), ["client_id", "quote", "fee_currency", "usd",
                                                                         "fee_usd"]]
    left_out = {client: ", ".join(_left_out(group)) for client, group in unvalued.groupby("client_id")}
    table["unpriced"] = [left_out.get(client, "") for client in table["client_id"]]
    table["client"] = table["client_id"].map(names)
    return table.astype({"client_id": "int64", "fills": "int64"})[VOLUME_COLUMNS].sort_values(
        "client", ignore_index=True)


# --------------------------------------------------------------------------- kept on disk


def day_bounds(start: date | None, end: date | None) -> tuple[datetime | None, datetime | None]:
    """UTC days (both included, as the pages pick them) as [start, end) moments; None: open."""
    return (None if start is None else datetime.combine(start, time(), tzinfo=UTC),
            None if end is None else datetime.combine(end + timedelta(days=1), time(), tzinfo=UTC))


def cached_fill_totals(viewer: Viewer, start: datetime | None = None, end: datetime | None = None,
                       client_id: int | None = None, connector_id: int | None = None, symbol: str | None = None,
                       side: str | None = None) -> FillTotals:
    """``fill_totals`` kept on disk (``reports.disk_cached``: keyed by the scope's connectors, the
    filters and the data version). The Trades page opens on every fill in scope, a million to read
    from the fill store and value (about a second after a restart), so the worker makes the
    landing scope's ahead (``lib.figures_ahead``) and the first view reads a small file."""
    def compute() -> FillTotals:
        with session_scope() as session:
            return fill_totals(session, viewer, start, end, client_id, connector_id, symbol, side)

    return reports.disk_cached("fill-totals", viewer, client_id, connector_id, [symbol, side, start, end],
                               reports.CODE_VERSION, compute, lambda totals: json.dumps(asdict(totals)),
                               lambda text: FillTotals(**json.loads(text)))


def _frame_data(frame: pd.DataFrame) -> dict[str, Any]:
    return {**reports.frame_to_json(frame), "dtypes": {column: str(dtype) for column, dtype in frame.dtypes.items()}}


def _frame_of(data: dict[str, Any]) -> pd.DataFrame:
    """The frame of ``_frame_data`` with its dtypes; an object column holds ``Decimal`` (the fees'
    amounts: stored as their text, read back exactly)."""
    frame = reports.frame_from_json(data)
    for column, dtype in data["dtypes"].items():
        if dtype.startswith("datetime64"):
            frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601").astype(dtype)
        elif dtype == "object":
            frame[column] = pd.Series([None if v is None else Decimal(v) for v in frame[column]], dtype=object)
        else:
            frame[column] = frame[column].astype(dtype)
    return frame


#: the ``ActivityReport`` fields that are frames
_REPORT_FRAMES = ("by_day", "by_market", "by_exchange", "sides", "maker", "fees")


def _dump_report(report: ActivityReport) -> str:
    """Plain JSON (never pickle); exact figures as their decimal text."""
    data = {f.name: getattr(report, f.name) for f in fields(report)}
    return json.dumps({name: _frame_data(value) if isinstance(value, pd.DataFrame) else value
                       for name, value in data.items()}, default=reports.json_default)


def _load_report(text: str) -> ActivityReport:
    data = json.loads(text)
    return ActivityReport(**{name: _frame_of(value) if name in _REPORT_FRAMES else value
                             for name, value in data.items()}
                          | {"volume_usd": Decimal(data["volume_usd"]), "fees_usd": Decimal(data["fees_usd"])})


def cached_activity_report(viewer: Viewer, start: datetime | None, end: datetime | None,
                           client_id: int | None = None, connector_id: int | None = None) -> ActivityReport:
    """``activity_report`` kept on disk like ``cached_fill_totals``; the worker makes the landing
    scope's over ``DEFAULT_WINDOW`` ahead (a month of a million fills: half a second)."""
    def compute() -> ActivityReport:
        with session_scope() as session:
            return activity_report(session, viewer, start, end, client_id, connector_id)

    return reports.disk_cached("activity", viewer, client_id, connector_id, [start, end], reports.CODE_VERSION,
                               compute, _dump_report, _load_report)


def notional_usd(session: Session, viewer: Viewer, fills: pd.DataFrame, client_id: int | None = None) -> pd.Series:
    """USD notional of each of ``fills`` (``queries.fills`` rows), as ``price_fills`` values it."""
    if fills.empty:
        return pd.Series(dtype="float64", index=fills.index)
    frame = fills.assign(quote=fills["symbol"].map(lambda s: prices.split_symbol(str(s))[1]))
    sources = queries.price_sources(session, viewer, client_id)
    candles = _candles_for(session, viewer, frame, client_id, None)
    priced = price_fills(frame, candles, sources, frozenset(get_settings().usd_like))
    return priced["usd"]


# --------------------------------------------------------------------------- open orders and positions in USD


def _quote_marks(session: Session, viewer: Viewer, frame: pd.DataFrame, client_id: int | None,
                 connector_id: int | None) -> np.ndarray:
    """USD mark now of each row's quote currency, from its connector's own price source."""
    sources = queries.price_sources(session, viewer, client_id, connector_id)
    held = pd.DataFrame({"source": frame["connector_id"].map(sources).fillna("").astype(str),
                         "asset": frame["symbol"].map(lambda s: prices.split_symbol(str(s))[1])})
    marks = reports.current_marks(session, viewer, held, client_id, connector_id)
    usd, _ = prices.own_marks(marks, list(held["source"]), list(held["asset"]),
                              usd_like=frozenset(get_settings().usd_like))
    return usd


def _floats(values: pd.Series) -> np.ndarray:
    return np.array([np.nan if v is None or pd.isna(v) else float(v) for v in values], dtype=float)


def value_orders(session: Session, viewer: Viewer, orders: pd.DataFrame, client_id: int | None = None,
                 connector_id: int | None = None) -> pd.DataFrame:
    """Open orders with ``usd``: what is still open (remaining, else amount - filled) at the order's
    price, in the quote's USD mark now. NaN without a price (market orders) or a quote mark."""
    if orders.empty:
        return orders.assign(usd=pd.Series(dtype="float64"))
    remaining = _floats(orders["remaining"])
    remaining = np.where(np.isnan(remaining), _floats(orders["amount"]) - np.nan_to_num(_floats(orders["filled"])),
                         remaining)
    quote_usd = _quote_marks(session, viewer, orders, client_id, connector_id)
    return orders.assign(usd=remaining * _floats(orders["price"]) * quote_usd)


def value_positions(session: Session, viewer: Viewer, positions: pd.DataFrame, client_id: int | None = None,
                    connector_id: int | None = None) -> pd.DataFrame:
    """Positions with ``base_quantity`` (contracts x contract size; for an inverse contract, settled
    in its base, the size is in the quote: divided by the mark) and ``usd`` (base quantity x mark
    x the quote's USD mark; the exchange's notional when the base quantity is unknown)."""
    if positions.empty:
        return positions.assign(base_quantity=pd.Series(dtype="float64"), usd=pd.Series(dtype="float64"))
    mark = _floats(positions["mark_price"])
    size = _floats(positions["contract_size"])
    inverse = positions["symbol"].map(lambda s: str(s).partition(":")[2] == str(s).partition("/")[0]).to_numpy()
    base = _floats(positions["contracts"]) * np.where(inverse, size / mark, size)
    quote_usd = _quote_marks(session, viewer, positions, client_id, connector_id)
    usd = np.where(np.isnan(base), np.abs(_floats(positions["notional"])), np.abs(base) * mark) * quote_usd
    return positions.assign(base_quantity=base, usd=usd)


def settlement_currency(symbol: str) -> str:
    """The currency a market's P&L and order cost are in: a contract's settlement currency, the end
    of ccxt's unified symbol ("BTC/USD:BTC", an option's "BTC/USD:BTC-240329-60000-C"); the quote
    for a symbol without one (spot, margin)."""
    pair, _, settle = str(symbol).partition(":")
    return settle.partition("-")[0] or pair.partition("/")[2]


@dataclass(frozen=True)
class ReportedUnrealized:
    """The positions' exchange-reported unrealized P&L, summed per settlement currency: a coin-settled
    (inverse) contract's figure is in BTC or ETH, never a dollar amount to add to a USDT one."""

    #: over the positions settled in a USD-like currency (1:1); None when none of them has a figure
    usd: float | None
    #: every other settlement currency -> the sum of its positions' figures, by code
    coins: dict[str, Decimal]
    #: the positions without a figure from their exchange: "symbol (client, exchange label)"
    unreported: list[str]

    def unreported_note(self, limit: int = 10) -> str:
        """The positions left out for want of a figure, the first ``limit`` named (plain text)."""
        names = "; ".join(self.unreported[:limit])
        more = f" and {len(self.unreported) - limit} more" if len(self.unreported) > limit else ""
        return f"{len(self.unreported)} position(s) without a figure from their exchange, left out: {names}{more}."


def reported_unrealized(positions: pd.DataFrame) -> ReportedUnrealized:
    """The exchange-reported unrealized P&L of ``positions`` (``queries.positions``), per settlement currency."""
    usd_like = get_settings().usd_like
    usd: Decimal | None = None
    coins: dict[str, Decimal] = {}
    unreported = []
    for row in positions.itertuples(index=False):
        figure = None if pd.isna(row.unrealized_pnl) else to_decimal(row.unrealized_pnl)
        if figure is None:
            unreported.append(f"{row.symbol} ({row.client}, {row.exchange_id} {row.label})")
            continue
        currency = settlement_currency(row.symbol)
        if currency.upper() in usd_like:
            usd = figure if usd is None else usd + figure
        else:
            coins[currency] = coins.get(currency, Decimal(0)) + figure
    return ReportedUnrealized(None if usd is None else float(usd), dict(sorted(coins.items())), unreported)


#: The label of the positions' exchange-reported unrealized P&L, wherever it is shown: in USD over
#: the USD-settled positions, and ``REPORTED_UNREALIZED_IN`` for each other settlement currency.
REPORTED_UNREALIZED = "Unrealized P&L reported by the exchange (positions)"
REPORTED_UNREALIZED_IN = "Unrealized P&L reported by the exchange ({}-settled positions)"
