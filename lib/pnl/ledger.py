"""Turn fills, transfers and opening balances into lot events, in processing order.

One fill becomes up to three lot events (PNL.md's table): a disposal of the given asset G,
an acquisition of the received asset R, and a disposal of a third-asset fee F. Cash
(USD-like) legs open or close no lots; they only move ``cash_flow``. A fill whose two
sides are both cash becomes a *conversion*: a realized row, no lots (see the package doc).
A fill of a contract (``BTC/USDT:USDT``) acquires and spends nothing: it is a realized row
of its realised P&L less its fee, and its settle currency moves by that P&L (see the package doc).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lib.pnl.arrays import kept, select

FILL_COLUMNS = (
    "connector_id",
    "client_id",
    "trade_id",
    "timestamp",
    "symbol",
    "base",
    "quote",
    "side",
    "amount",
    "price",
    "cost",
    "fee_cost",
    "fee_currency",
    "quote_usd",
    "fee_usd",
)
TRANSFER_COLUMNS = ("connector_id", "client_id", "transfer_id", "timestamp", "type", "currency", "amount", "usd")
OPENING_COLUMNS = ("connector_id", "client_id", "timestamp", "asset", "amount", "usd")
#: optional fills column: a contract fill's realised P&L in its settle currency (NaN: not reported)
REALIZED_PNL = "realized_pnl"

# Event kinds seen by the matching engine.
ACQUIRE, DISPOSE, WITHDRAW = 0, 1, 2
# What an event or realized row came from, as shown in outputs (index into LABELS).
LABELS = ("trade", "fee", "conversion", "deposit", "withdrawal", "opening", "contract")
TRADE, FEE, CONVERSION, DEPOSIT, WITHDRAWAL, OPENING, CONTRACT = range(len(LABELS))

SCOPE_POOL = -1  # pool key of every event when lots are pooled across connectors


@dataclass(frozen=True)
class Sources:
    """Every fill, transfer and opening row (opening first, then transfers, then fills)."""

    timestamp: np.ndarray
    connector: np.ndarray
    client: np.ndarray
    source_id: pd.Series  # trade id, transfer id, or "opening"
    rank: np.ndarray  # position in processing order

    @functools.cached_property
    def connector_codes(self) -> tuple[np.ndarray, np.ndarray]:
        """``factorize_ids`` of the connectors, in the narrowest integers that hold the codes: made once
        for the several sums by connector, which then gather small codes instead of int64 ids."""
        codes, ids = factorize_ids(self.connector)
        return codes.astype(_index_dtype(len(ids)) if len(ids) > 127 else np.int8), ids


@dataclass(frozen=True)
class Events:
    """Lot events sorted by segment (pool key, asset), then processing order."""

    starts: np.ndarray  # index of the first event of each segment
    seg_pool: np.ndarray  # per segment: connector id, client id (client pooling) or SCOPE_POOL
    seg_asset: np.ndarray  # per segment: asset code
    asset: np.ndarray  # asset code
    kind: np.ndarray  # ACQUIRE / DISPOSE / WITHDRAW
    label: np.ndarray  # index into LABELS
    units: np.ndarray  # > 0
    value: np.ndarray  # USD basis of an acquisition, proceeds of a disposal, 0 for a withdrawal
    source: np.ndarray  # row in Sources
    #: positions in processing order (source rank, then each source's events as made); None: not kept
    processing: np.ndarray | None = None


@dataclass(frozen=True)
class Fills:
    """Per-fill figures that are not lots: fee value and cash flow, located and by base asset."""

    source: np.ndarray
    base: np.ndarray
    fee_usd: np.ndarray  # V, the fee's value (informational: already inside proceeds/basis)
    cash_flow: np.ndarray  # USD-like units in minus out, at 1.0


@dataclass(frozen=True)
class Conversions:
    """Realized rows that take no lots: cash-to-cash fills (asset = the cash given) and contract
    fills (asset = the contract's symbol, proceeds = its realised P&L, basis = its fee)."""

    source: np.ndarray
    asset: np.ndarray
    units: np.ndarray
    proceeds: np.ndarray
    basis: np.ndarray
    label: np.ndarray  # CONVERSION or CONTRACT


@dataclass(frozen=True)
class Ledger:
    assets: list[str]
    sources: Sources
    events: Events
    fills: Fills
    conversions: Conversions
    notes: list[str]  # plain-words warnings about the input


def _require(frame: pd.DataFrame, columns: tuple[str, ...], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} frame lacks columns {missing}")


@functools.cache
def _empty(columns: tuple[str, ...]) -> pd.DataFrame:
    """An empty frame of these columns, made once: a resumed run's few fills come without transfers or
    opening lots, and making two empty frames cost a third of its ledger's time. Only ever read."""
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})


def _factorize_text(column: pd.Series) -> tuple[np.ndarray, list]:
    """``pd.factorize`` of a text column (codes, -1 where missing; the distinct values). A categorical
    column (the fill store's) gives its own small codes, with None for a category no row holds (so
    no asset comes from a value that is not there); an Arrow-backed column goes straight through
    Arrow's dictionary encoding, whose int32 indices are the codes: pandas widens them to int64 on
    the way (a million rows: ~4 ms and 12 MB more)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes = column.cat.codes.to_numpy()
        present = np.zeros(len(column.cat.categories) + 1, bool)
        present[codes] = True  # code -1 (missing) marks the spare last entry; no row-length temporary
        seen = present[:-1].tolist()
        return codes, [c if there else None for c, there in zip(column.cat.categories, seen, strict=True)]
    if isinstance(column.dtype, pd.StringDtype) and column.dtype.storage == "pyarrow":
        text = pa.array(column.array)  # a chunked array when pandas holds several chunks
        encoded = pc.dictionary_encode(text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text)
        return encoded.indices.fill_null(-1).to_numpy(), encoded.dictionary.to_pylist()
    codes, uniques = pd.factorize(column)
    return codes, list(uniques)


def _asset_codes(columns: list[pd.Series]) -> tuple[list[np.ndarray], list[str]]:
    """Codes into one sorted asset list for several string columns (-1 where missing); int16 while the
    assets fit (``_code_dtype``), as the events keep them (a quarter of int64's memory over a million fills)."""
    factorized = [_factorize_text(column) for column in columns]
    assets = sorted({str(a) for _, uniques in factorized for a in uniques if a is not None})
    lookup = {a: i for i, a in enumerate(assets)}
    codes = []
    for column_codes, uniques in factorized:
        remap = np.array([-1 if a is None else lookup[str(a)] for a in uniques] + [-1], dtype=_code_dtype(len(assets)))
        codes.append(remap[column_codes])  # code -1 picks the trailing -1
    return codes, assets


def _id_order(ids: pd.Series) -> np.ndarray:
    """Rank of each id: integer ids numerically (any length), before any other id, which go as text.

    One total order, so whether two tied fills compare as numbers never depends on what
    else happens to share their timestamp.
    """
    text = ids.astype(str).reset_index(drop=True)
    numeric = text.str.fullmatch(r"\d+").to_numpy(bool)
    digits = text.str.lstrip("0").where(numeric, "")
    width = int(digits.str.len().max()) if len(text) else 0
    keys = np.where(numeric, "0" + digits.str.zfill(width), "1" + text).astype(object)
    rank = np.empty(len(ids), np.int64)
    rank[np.argsort(keys, kind="stable")] = np.arange(len(ids))
    return rank


def processing_rank(timestamp: np.ndarray, order: np.ndarray, ids: pd.Series) -> np.ndarray:
    """Rank by (timestamp, order, id); ids are compared only where the rest ties."""
    key = timestamp.astype(np.int64, copy=False) * 4
    key += order
    # fills from an ORDER BY are in order already: one comparison pass, no sort, gather or scatter
    perm = None if bool((key[1:] >= key[:-1]).all()) else np.argsort(key, kind="stable")  # None: identity
    in_order = key if perm is None else key[perm]
    same = in_order[1:] == in_order[:-1]
    del in_order
    dtype = _index_dtype(len(key))
    if perm is None:
        rank = np.arange(len(key), dtype=dtype)
    else:
        rank = np.empty(len(key), dtype)
        rank[perm] = np.arange(len(key), dtype=dtype)
    if same.any():  # reorder only the runs of tied keys, by id (a lexsort of every row costs ~40 ms a million)
        tied = np.zeros(len(key), bool)
        tied[1:] |= same
        tied[:-1] |= same
        at = np.flatnonzero(tied)  # positions of the tied runs in key order
        runs = at if perm is None else perm[at]  # their rows
        rank[runs[np.lexsort((_id_order(ids.iloc[runs]), key[runs]))]] = at
    return rank


def date_opening_lots(opening: pd.DataFrame, fills: pd.DataFrame, transfers: pd.DataFrame) -> pd.DataFrame:
    """Move each positive opening lot to 1 ms before its connector's first fill or transfer.

    An opening lot stands for units held before the synced history began; it is valued at
    the first sync (PNL.md) but must be in the pool before that connector's first event,
    and never before another connector's history. Negative rows keep their sync time.
    """
    if opening.empty:
        return opening
    events = pd.concat([fills[["connector_id", "timestamp"]], transfers[["connector_id", "timestamp"]]])
    first = events.groupby("connector_id")["timestamp"].min().astype(np.int64) - 1
    before = opening["connector_id"].map(first)
    own = opening["timestamp"].astype(np.int64)
    earlier = (opening["amount"].astype(float) > 0) & before.notna() & (before < own)
    return opening.assign(timestamp=own.where(~earlier, before).astype(np.int64))


def _code_dtype(n: int) -> type:
    """The narrowest of int16/int32 that holds n asset codes and -1."""
    return np.int16 if n < 2**15 else np.int32


def _index_dtype(n: int) -> type:
    """The narrowest of int32/int64 that indexes n rows."""
    return np.int32 if n < 2**31 else np.int64


def _joined(arrays: list[np.ndarray]) -> np.ndarray:
    """The arrays end to end; the only one with rows as it is (no copy of a fills-only column)."""
    filled = [a for a in arrays if len(a)]
    return filled[0] if len(filled) == 1 else np.concatenate(arrays)


def first_seen(ids: np.ndarray, distinct: int) -> np.ndarray:
    """Positions of the first appearance of each of the ``distinct`` ids, in order, from the shortest
    prefix (doubling) that holds them all: the few connectors of a million rows show up early."""
    prefix = 1024
    while True:
        _, first = np.unique(ids[:prefix], return_index=True)
        if len(first) == distinct or prefix >= len(ids):
            return np.sort(first)
        prefix *= 2


def factorize_ids(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``pd.factorize`` of integer ids (codes in order of first appearance, the ids), for few distinct
    ids over a narrow range, as connectors and clients are, through a lookup table: pandas' hash
    table is sized for every row (~35 MB more at a million events). Anything else goes to pandas."""
    if len(ids):
        low, high = int(ids.min()), int(ids.max())
        if high - low < 1 << 16:
            offset = ids - low
            present = np.count_nonzero(np.bincount(offset, minlength=high - low + 1))
            if present <= 64:
                uniques = ids[first_seen(ids, present)]
                table = np.full(high - low + 1, -1, np.intp)
                table[uniques - low] = np.arange(len(uniques))
                return table[offset], uniques
    codes, uniques = pd.factorize(ids)
    return codes, np.asarray(uniques)


def factorize_rows(factorized: tuple[np.ndarray, np.ndarray], rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """``factorize_ids(ids[rows])`` from ``factorized`` (``factorize_ids(ids)``, codes in any integer
    dtype): the same codes and ids, in order of first appearance among ``rows``, without hashing or
    gathering the ids themselves. ``rows`` None: every row."""
    codes, ids = factorized
    picked = codes if rows is None else codes[rows]
    distinct = np.count_nonzero(np.bincount(picked, minlength=len(ids)))
    seen = picked[first_seen(picked, distinct)] if len(picked) else np.zeros(0, np.intp)
    table = np.full(len(ids), -1, np.intp)
    table[seen] = np.arange(len(seen))
    return table[picked], np.asarray(ids)[seen]


def _num(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A column as float64, NaN where missing: a float64 column's own values, read-only (a copy, as
    ``na_value`` makes, would be 8 MB more for each of five columns of a million fills), else a copy."""
    values = frame[column]
    if values.dtype == np.float64:
        own = values.to_numpy().view()
        own.flags.writeable = False
        return own
    return values.to_numpy(dtype=np.float64, na_value=np.nan)


def settle_currency(symbol: pd.Series) -> pd.Series:
    """ccxt's settle currency of each symbol ("BTC/USDT:USDT" -> "USDT"); None for a spot market.
    Only a colon after the slash counts: an asset code may hold one (":red[r]/USDT" is spot).
    Worked out per distinct symbol: a million fills hold a few dozen."""
    codes, uniques = pd.factorize(symbol)
    settle = np.array([str(u).partition("/")[2].partition(":")[2] or None for u in uniques] + [None], dtype=object)
    return pd.Series(settle[codes], index=symbol.index, dtype=object)


_BUY, _SELL = int.from_bytes(b"buy", "little"), int.from_bytes(b"sell", "little")


def _arrow_buys(chunk: pa.Array) -> np.ndarray | None:
    """True for 'buy' in an Arrow string chunk, read from its own buffers: each value's length from the
    offsets and its first four bytes as one little-endian word, so 'buy' and 'sell' are two integer
    comparisons (a tenth of Arrow's two string comparisons). None when a value is neither or missing,
    or the chunk is not plain (large) strings: the caller then looks at the values themselves."""
    if not (pa.types.is_large_string(chunk.type) or pa.types.is_string(chunk.type)) or chunk.null_count:
        return None
    _, offsets_buffer, data_buffer = chunk.buffers()
    wide = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
    offsets = np.frombuffer(offsets_buffer, wide, len(chunk) + 1, chunk.offset * np.dtype(wide).itemsize)
    data = np.frombuffer(data_buffer, np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    if len(data) < 4:
        return None
    words = np.ndarray((len(data) - 3,), np.uint32, data, 0, (1,))  # the four bytes from each byte on
    starts = offsets[:-1]
    word = words[np.minimum(starts, len(data) - 4)]  # a value in the last three bytes is read below
    length = np.diff(offsets)
    buy = (length == 3) & ((word & 0xFFFFFF) == _BUY)
    valid = buy | ((length == 4) & (word == _SELL))
    for row in np.flatnonzero(starts > len(data) - 4).tolist():
        buy[row] = chunk[row].as_py() == "buy"
        valid[row] = chunk[row].as_py() in ("buy", "sell")
    return buy if valid.all() else None


def _sides(side: pd.Series) -> np.ndarray:
    """True for buys; anything but 'buy'/'sell' is an input error. A ``str`` column is read from its
    Arrow buffers (``_arrow_buys``); other columns by two comparisons."""
    if isinstance(side.dtype, pd.CategoricalDtype):  # by its few categories, then one gather of the codes
        names = [str(c) for c in side.cat.categories]
        codes = side.cat.codes.to_numpy()
        if set(names) <= {"buy", "sell"} and (not len(codes) or codes.min() >= 0):
            return np.array([n == "buy" for n in names] + [False])[codes]
    elif isinstance(side.dtype, pd.StringDtype) and side.dtype.storage == "pyarrow":
        text = pa.array(side.array)
        chunks = text.chunks if isinstance(text, pa.ChunkedArray) else [text]
        buys = [_arrow_buys(chunk) for chunk in chunks]
        if all(b is not None for b in buys):
            return np.concatenate(buys) if len(buys) != 1 else buys[0]
    buy = (side == "buy").to_numpy(bool, na_value=False)
    if not (buy | (side == "sell").to_numpy(bool, na_value=False)).all():
        names = {str(u) for u in pd.unique(side.dropna())}
        raise ValueError(f"fill side must be 'buy' or 'sell', got {sorted(names - {'buy', 'sell'})}")
    return buy


class _EventList:
    """Collects event columns piecewise (scalars or per-row arrays), then concatenates them."""

    def __init__(self, n_sources: int, n_assets: int) -> None:
        # asset, kind, label, units, value, source (narrow codes and int32 rows while they fit)
        self.dtypes = (_code_dtype(n_assets), np.int8, np.int8, np.float64, np.float64, _index_dtype(n_sources))
        self.parts: list[list[np.ndarray]] = []

    def add(self, mask: np.ndarray, *columns: np.ndarray | float, picked: bool = False) -> None:
        """Events of the rows where ``mask``; with ``picked``, ``mask`` holds those rows' positions and
        the array columns their values only (worked out on those rows alone: no full-length temporaries)."""
        rows = mask if picked else np.flatnonzero(mask)
        if not len(rows) and self.parts:  # no events: a smaller table to sort in ``_sorted_events``
            return
        self.parts.append(
            [
                np.full(len(rows), x, dtype) if np.ndim(x) == 0
                else (np.asarray(x) if picked else np.asarray(x)[rows]).astype(dtype, copy=False)
                for x, dtype in zip(columns, self.dtypes, strict=True)
            ]
        )

    def columns(self) -> list[np.ndarray]:
        """The six columns, then which ``add`` call made each event (one event per source per call).

        Empties the list: each column's pieces are let go once joined, so the pieces and the
        joined table are never all held at once."""
        sizes = [len(p[0]) for p in self.parts]
        columns = []
        for i in range(len(self.dtypes)):
            columns.append(np.concatenate([p[i] for p in self.parts]))
            for p in self.parts:
                p[i] = p[i][:0]
        self.parts = []
        return [*columns, np.repeat(np.arange(len(sizes), dtype=np.int16), sizes)]


#: fills per pass of PNL.md's table (``_fill_events``): its two dozen fill-length temporaries then
#: take a quarter million rows each, not a million (~60 MB less at the peak of a million fills)
FILL_CHUNK = 1 << 18


@dataclass
class _Unvalued:
    """What the notes name of fills without a USD value or a reported contract P&L, gathered chunk by chunk."""

    fills: int = 0
    ids: list[str] = dataclasses.field(default_factory=list)  # the first five
    contracts: int = 0
    contract_ids: list[str] = dataclasses.field(default_factory=list)  # the first five
    symbols: set[str] = dataclasses.field(default_factory=set)

    def notes(self) -> list[str]:
        words = []
        if self.contracts:
            words.append(
                f"{self.contracts} contract fill(s) carry no realised P&L from the exchange "
                f"({', '.join(sorted(self.symbols))}), e.g. trade ids {', '.join(map(str, self.contract_ids))}: "
                "only their fees are counted, so realized P&L is incomplete by their unknown P&L."
            )
        if self.fills:
            words.append(
                f"{self.fills} fill(s) could not be valued in USD (no price for the quote, fee or settle "
                f"currency), e.g. trade ids {', '.join(map(str, self.ids))}; their missing values count as 0."
            )
        return words


def _fill_events(
    fills: pd.DataFrame,
    codes: dict[str, np.ndarray],
    is_cash: np.ndarray,
    source: np.ndarray,
    events: _EventList,
    notes: list[str],
) -> tuple[Fills, Conversions]:
    """Apply PNL.md's table to every spot fill, and the contract rule to contract fills, ``FILL_CHUNK``
    fills at a time (the same figures, events and notes as all at once)."""
    n = len(fills)
    fee_usd, cash_flow = np.empty(n), np.empty(n)
    base = np.empty(n, codes["base"].dtype)
    unvalued = _Unvalued()
    conversions = []
    for lo in range(0, max(n, 1), FILL_CHUNK):
        hi = min(lo + FILL_CHUNK, n)
        conversions.append(_fill_chunk(fills.iloc[lo:hi], {k: c[lo:hi] for k, c in codes.items()}, is_cash,
                                       source[lo:hi], events, unvalued,
                                       (base[lo:hi], fee_usd[lo:hi], cash_flow[lo:hi])))
    notes += unvalued.notes()
    joined = Conversions(*(np.concatenate([getattr(c, f.name) for c in conversions])
                           for f in dataclasses.fields(Conversions)))
    return Fills(source=source, base=base, fee_usd=fee_usd, cash_flow=cash_flow), joined


def _fill_chunk(
    fills: pd.DataFrame,
    codes: dict[str, np.ndarray],
    is_cash: np.ndarray,
    source: np.ndarray,
    events: _EventList,
    unvalued: _Unvalued,
    out: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> Conversions:
    """``_fill_events`` of some fills: their events added, their base (a contract's symbol), fee value and
    cash flow written in ``out``, their unvalued fills tallied; returns their conversion rows."""
    base, quote, fee_cur, settle, symbol = (codes[k] for k in ("base", "quote", "fee", "settle", "symbol"))
    contract = settle >= 0
    spot = ~contract
    buy = _sides(fills["side"])
    amount, cost = _num(fills, "amount"), _num(fills, "cost")
    fee = np.nan_to_num(_num(fills, "fee_cost"))
    fee[fee_cur < 0] = 0.0
    has_fee = fee != 0
    # each pair's other member by exclusive or, and picks by bits (lib.pnl.arrays): exact, and a
    # fraction of a np.where's time over buys and sells interleaved
    given = select(buy, quote, base)
    received = given ^ quote ^ base
    g = select(buy, cost, amount)
    r = (g.view(np.int64) ^ cost.view(np.int64) ^ amount.view(np.int64)).view(np.float64)  # the other one
    quote_cash, base_cash = is_cash[quote], is_cash[base]
    g_cash = select(buy, quote_cash, base_cash)
    r_cash = g_cash ^ quote_cash ^ base_cash
    fee_cash = has_fee & is_cash[fee_cur]  # code -1 (no fee currency) picks the trailing False

    # X, the value exchanged: exact on the cash side when there is one, else cost x USD(quote) (a cash
    # quote is always one of the sides, so its stored price is never used).
    x = cost * _num(fills, "quote_usd")
    x = select(r_cash, r, x)
    x = select(g_cash, g, x)
    if contract.any():
        x[contract] = 0.0
    # V, the fee's value. A fee in a spot fill's own base or quote is priced by the fill itself,
    # which is exact at the fill's timestamp; the stored price (a daily candle) is the fallback.
    in_base = fee_cur == base
    with np.errstate(divide="ignore", invalid="ignore"):
        own = x / select(in_base, amount, cost)  # per unit of the base, else of the quote
    priced = in_base | (fee_cur == quote)
    del in_base
    priced &= np.isfinite(own)
    priced &= spot
    fee_unit_usd = select(priced, own, _num(fills, "fee_usd"))
    del own, priced
    fee_unit_usd = select(fee_cash, np.ones(len(x)), fee_unit_usd)
    v = np.multiply(fee, fee_unit_usd, out=fee_unit_usd)  # V, in the unit price's array
    v = kept(has_fee, v)
    pnl_units, pnl_usd = _contract_pnl(fills, contract, settle, quote, fee_cur, is_cash, unvalued)
    nan = np.isnan(x) | np.isnan(v) | np.isnan(pnl_usd)
    if nan.any():
        unvalued.fills += int(nan.sum())
        unvalued.ids += fills["trade_id"].to_numpy()[nan][:5 - len(unvalued.ids)].tolist()
        x, v, pnl_usd = np.nan_to_num(x), np.nan_to_num(v), np.nan_to_num(pnl_usd)

    in_g, in_r = has_fee & (fee_cur == given), has_fee & (fee_cur == received)
    third = has_fee & ~in_g & ~in_r
    third_lot = third & ~fee_cash
    fee_lot = np.where(spot, third_lot, has_fee & ~fee_cash)  # a contract's fee is always a third asset
    # the trade legs' figures worked out on their own rows only (most fills': no full-length temporaries)
    rows = np.flatnonzero(spot & ~g_cash)
    xg, vg, in_gg, r_cash_g = x[rows], v[rows], in_g[rows], r_cash[rows]
    events.add(rows, given[rows], DISPOSE, TRADE, g[rows] + fee[rows] * in_gg,
               xg + vg * (in_gg & ~r_cash_g) - vg * (~in_gg & r_cash_g), source[rows], picked=True)
    del xg, vg, in_gg, r_cash_g
    rows = np.flatnonzero(spot & ~r_cash)
    events.add(rows, received[rows], ACQUIRE, TRADE, r[rows] - fee[rows] * in_r[rows],
               x[rows] + v[rows] * ~in_r[rows], source[rows], picked=True)
    del x, received
    # P&L settled in a non-cash asset moves its lots, before the fee is paid (from a gain, say)
    settle_lot = contract & ~is_cash[settle]
    events.add(settle_lot & (pnl_units > 0), settle, ACQUIRE, CONTRACT, pnl_units, pnl_usd, source)
    rows = np.flatnonzero(settle_lot & (pnl_units < 0))  # negated on their rows only
    events.add(rows, settle[rows], DISPOSE, CONTRACT, -pnl_units[rows], -pnl_usd[rows], source[rows], picked=True)
    events.add(fee_lot & (fee > 0), fee_cur, DISPOSE, FEE, fee, v, source)
    rows = np.flatnonzero(fee_lot & (fee < 0))  # a rebate paid in F
    events.add(rows, fee_cur[rows], ACQUIRE, FEE, -fee[rows], -v[rows], source[rows], picked=True)

    cash_flow = r * r_cash  # in place from here: one full-length temporary at a time
    cash_flow -= g * g_cash
    cash_flow -= v * fee_cash
    rows = np.flatnonzero(contract)
    cash_flow[rows] = pnl_units[rows] * ~settle_lot[rows] - v[rows] * fee_cash[rows]
    rows = np.flatnonzero((spot & g_cash & r_cash) | contract)  # few: pick them before any arithmetic
    c, gr, rr, vr, fr, in_gr, in_rr = (a[rows] for a in (contract, g, r, v, fee, in_g, in_r))
    conversions = Conversions(
        source=source[rows],
        asset=np.where(c, symbol[rows], given[rows]),
        units=np.where(c, amount[rows], gr + fr * in_gr),
        proceeds=np.where(c, pnl_usd[rows], rr - vr * (in_rr | third_lot[rows])),
        basis=np.where(c, vr, gr + vr * (in_gr | (third[rows] & fee_cash[rows]))),
        label=np.where(c, CONTRACT, CONVERSION).astype(np.int8),
    )
    base_out, fee_out, flow_out = out
    base_out[:] = np.where(contract, symbol, base) if contract.any() else base
    fee_out[:] = v
    flow_out[:] = cash_flow
    return conversions


def _contract_pnl(
    fills: pd.DataFrame,
    contract: np.ndarray,
    settle: np.ndarray,
    quote: np.ndarray,
    fee_cur: np.ndarray,
    is_cash: np.ndarray,
    unvalued: _Unvalued,
) -> tuple[np.ndarray, np.ndarray]:
    """Each contract fill's realised P&L in settle units and in USD (0 elsewhere); a contract fill
    whose exchange reported none is tallied for the notes (its P&L is unknown, not 0).

    The settle currency is priced like the other amounts at the fill's time: cash at 1.0, else
    the fill's quote price when it settles in its quote, or the fee's when it settles in the fee
    currency (NaN otherwise: named as unvalued)."""
    if not contract.any():  # zeros that take no memory
        return np.broadcast_to(0.0, len(fills)), np.broadcast_to(0.0, len(fills))
    reported = _num(fills, REALIZED_PNL) if REALIZED_PNL in fills.columns else np.full(len(fills), np.nan)
    missing = contract & np.isnan(reported)
    if missing.any():
        unvalued.contracts += int(missing.sum())
        unvalued.symbols |= {str(s) for s in fills["symbol"].to_numpy()[missing]}
        unvalued.contract_ids += fills["trade_id"].to_numpy()[missing][:5 - len(unvalued.contract_ids)].tolist()
    units = np.where(contract & ~missing, reported, 0.0)
    settle_usd = np.where(
        is_cash[np.maximum(settle, 0)],
        1.0,
        np.where(settle == quote, _num(fills, "quote_usd"),
                 np.where(settle == fee_cur, _num(fills, "fee_usd"), np.nan)),
    )
    return units, np.where(units != 0, units * settle_usd, 0.0)


def _valued(mask: np.ndarray, units: np.ndarray, usd: np.ndarray, what: str, notes: list[str]) -> np.ndarray:
    """units x usd where mask (0 elsewhere); unknown prices count as 0 and are said so."""
    value = np.where(mask, units * usd, 0.0)
    if np.isnan(value).any():
        notes.append(f"{int(np.isnan(value).sum())} {what} had no USD price at the time; booked at 0 cost basis.")
    return np.nan_to_num(value)


def build_ledger(
    fills: pd.DataFrame,
    transfers: pd.DataFrame | None,
    opening: pd.DataFrame | None,
    *,
    pool: str,
    usd_like: frozenset[str],
    end: int | None,
) -> Ledger:
    """Validate the frames, drop what lies after ``end`` and expand everything into sorted events."""
    transfers = _empty(TRANSFER_COLUMNS) if transfers is None else transfers
    opening = _empty(OPENING_COLUMNS) if opening is None else opening
    for frame, columns, name in (
        (fills, FILL_COLUMNS, "fills"),
        (transfers, TRANSFER_COLUMNS, "transfers"),
        (opening, OPENING_COLUMNS, "opening"),
    ):
        _require(frame, columns, name)
    opening = date_opening_lots(opening, fills, transfers)  # before the window cut: history decides
    if end is not None:
        fills, transfers, opening = (f[f["timestamp"].to_numpy() <= end] for f in (fills, transfers, opening))
    notes: list[str] = []

    # settle currency and contract name per distinct symbol (a few dozen), not per fill
    symbol_code, symbols = _factorize_text(fills["symbol"])
    symbols = pd.Series(symbols, dtype=object)
    settle = settle_currency(symbols)
    (base, quote, fee_cur, settle_of, name_of, currency, asset), assets = _asset_codes(
        [
            fills["base"],
            fills["quote"],
            fills["fee_currency"],
            settle,
            symbols.where(settle.notna()),  # a contract's realized row is named by its symbol
            transfers["currency"],
            opening["asset"],
        ]
    )
    none = np.full(1, -1, base.dtype)  # for code -1 (as narrow as the codes)
    if (settle_of >= 0).any():
        settle_cur, symbol = np.append(settle_of, none)[symbol_code], np.append(name_of, none)[symbol_code]
    else:  # no contract symbol (usual): no settle currency or contract name on any fill
        settle_cur = symbol = np.full(len(symbol_code), -1, base.dtype)
    is_cash = np.array([a in usd_like for a in assets] + [False], bool)  # trailing entry for code -1
    n_o, n_t, n_f = len(opening), len(transfers), len(fills)
    frames = (opening, transfers, fills)
    open_amount, open_usd = _num(opening, "amount"), _num(opening, "usd")
    kinds = set(transfers["type"].unique())
    if not kinds <= {"deposit", "withdrawal"}:
        raise ValueError(f"transfer type must be 'deposit' or 'withdrawal', got {sorted(map(str, kinds))}")
    deposit = (transfers["type"] == "deposit").to_numpy(bool)
    trade_ids = fills["trade_id"].astype("str").reset_index(drop=True)
    source_id = trade_ids if n_o + n_t == 0 else pd.concat(  # fills only: the ids as they are, no copy
        [pd.Series(["opening"] * n_o, dtype="str"), transfers["transfer_id"].astype("str"), trade_ids],
        ignore_index=True,
    )
    timestamp = _joined([f["timestamp"].to_numpy(np.int64) for f in frames])
    # Within a timestamp: deposits, then fills, then withdrawals (and negative opening rows).
    order = np.concatenate([np.full(n_o, 2, np.int8), np.where(deposit, 0, 2).astype(np.int8), np.ones(n_f, np.int8)])
    sources = Sources(
        timestamp=timestamp,
        connector=_joined([f["connector_id"].to_numpy(np.int64) for f in frames]),
        client=_joined([f["client_id"].to_numpy(np.int64) for f in frames]),
        source_id=source_id,
        rank=processing_rank(timestamp, order, source_id),
    )
    del order

    n = n_o + n_t + n_f
    events = _EventList(n, len(assets))
    idx_o, idx_t, idx_f = (np.arange(lo, hi, dtype=_index_dtype(n)) for lo, hi in ((0, n_o), (n_o, n_o + n_t),
                                                                                   (n_o + n_t, n)))
    lot_o, lot_t = ~is_cash[asset], ~is_cash[currency]
    open_lot = lot_o & (open_amount > 0)
    open_value = _valued(open_lot, open_amount, open_usd, "opening balance(s)", notes)
    events.add(open_lot, asset, ACQUIRE, OPENING, open_amount, open_value, idx_o)
    if (lot_o & (open_amount < 0)).any():
        notes.append(
            "Some opening balances are negative (history explains more than is held); "
            "those units are removed like a withdrawal at the opening time."
        )
        events.add(lot_o & (open_amount < 0), asset, WITHDRAW, OPENING, -open_amount, 0.0, idx_o)
    t_amount = np.abs(_num(transfers, "amount"))
    t_value = _valued(lot_t & deposit, t_amount, _num(transfers, "usd"), "deposit(s)", notes)
    events.add(lot_t & deposit, currency, ACQUIRE, DEPOSIT, t_amount, t_value, idx_t)
    events.add(lot_t & ~deposit, currency, WITHDRAW, WITHDRAWAL, t_amount, 0.0, idx_t)
    codes = {"base": base, "quote": quote, "fee": fee_cur, "settle": settle_cur, "symbol": symbol}
    fill_rows, conversions = _fill_events(fills, codes, is_cash, idx_f, events, notes)
    return Ledger(assets, sources, _sorted_events(events, sources, pool, notes), fill_rows, conversions, notes)


def _by_rank(rank: np.ndarray, source: np.ndarray, call: np.ndarray) -> np.ndarray:
    """Events in processing order, (rank of their source, add call), without a comparison sort.

    ``call`` is non-decreasing and a source has at most one event per call, so each event's place
    is its source's offset (events of sources ranked before it) plus how many events of its source
    earlier calls made: one pass per call over that call's events. When the sources come in order
    (as fills from an ORDER BY do), each call's events are a sorted run of ranks: a stable merge
    sort of the ranks (ties in call order) joins the few runs in a third of that time.
    """
    n = len(source)
    dtype = _index_dtype(max(n, len(rank)))
    ranks = rank[source]
    calls = int(call[-1]) + 1 if n else 0  # each call's events are one run when the sources are in order
    if np.count_nonzero(ranks[1:] < ranks[:-1]) < 64 + calls:  # sources in order (sorted input): a few sorted runs,
        return np.argsort(ranks, kind="stable").astype(dtype, copy=False)  # which a merge sort joins
    del ranks
    offsets = np.zeros(len(rank), dtype)  # events of the sources ranked before, then also those placed
    np.cumsum(np.bincount(rank[source], minlength=len(rank))[:-1], out=offsets[1:])
    place = np.empty(n, dtype)
    bounds = np.flatnonzero(np.r_[True, call[1:] != call[:-1], True]) if n else np.zeros(1, np.int64)
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        ranks = rank[source[lo:hi]]
        place[lo:hi] = offsets[ranks]
        offsets[ranks] += 1
    by_rank = np.empty(n, dtype)
    by_rank[place] = np.arange(n, dtype=dtype)
    return by_rank


def _sorted_events(events: _EventList, sources: Sources, pool: str, notes: list[str]) -> Events:
    """Drop empty events and sort by (pool key, asset, processing rank)."""
    asset, kind, label, units, value, source, call = events.columns()
    keep = units > 0
    if (~keep).any():
        notes.append(
            f"{int((~keep).sum())} lot event(s) with zero, negative or missing units were ignored "
            "(e.g. a fee as large as the amount received)."
        )
    if not keep.all():  # usually every event has units: no copies then
        asset, kind, label, units, value, source, call = (x[keep] for x in (asset, kind, label, units, value, source,
                                                                            call))
    if pool == "scope":
        pool_key, pool_code = np.full(1, SCOPE_POOL), np.zeros(len(source), np.int8)
    else:  # client pooling: one pool per client and asset, every client's own scope in one run
        pool_code, pool_key = (factorize_rows(sources.connector_codes, source) if pool == "connector" else
                               factorize_ids(sources.client[source]))
    width = int(asset.max(initial=0)) + 1
    narrow = len(pool_key) * width <= 1 << 16  # a radix sort on 16-bit keys
    seg_raw = pool_code.astype(np.uint16 if narrow else np.int64) * (width if narrow else np.int64(width))
    seg_raw += asset.astype(seg_raw.dtype)
    del pool_code
    by_rank = _by_rank(sources.rank, source, call)
    del call
    processing = np.argsort(seg_raw[by_rank], kind="stable")  # for now: processing position by sorted position
    order = by_rank[processing]
    del by_rank
    by_sorted = processing
    processing = np.empty(len(order), _index_dtype(len(order)))
    processing[by_sorted] = np.arange(len(order), dtype=processing.dtype)  # sorted position by processing position
    del by_sorted
    seg_raw = seg_raw[order]
    starts = np.flatnonzero(np.r_[True, seg_raw[1:] != seg_raw[:-1]]) if len(seg_raw) else np.zeros(0, np.int64)
    seg_pool = np.asarray(pool_key, np.int64)[seg_raw[starts] // width]
    del seg_raw
    # one column at a time, each unsorted one let go once sorted
    asset = asset[order]
    kind = kind[order]
    label = label[order]
    units = units[order]
    value = value[order]
    source = source[order]
    return Events(starts=starts, seg_pool=seg_pool, seg_asset=asset[starts], asset=asset, kind=kind, label=label,
                  units=units, value=value, source=source, processing=processing)
