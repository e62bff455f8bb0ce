"""USD valuation from exchange data: marks now (tickers) and prices in the past (candles).

Pure helpers (no database, no ccxt calls): callers fetch tickers and OHLCV candles and
pass them in. The rules come from PNL.md:

- USD-like cash (``DEFAULT_USD_LIKE``, configurable) is worth exactly 1.0 and is never
  priced from a ticker or a candle.
- Any other asset: the direct ``ASSET/<usd-like>`` pair first (quotes tried in the order
  of ``usd_quotes``), then through BTC, then through ETH (``ASSET/BTC`` x BTC's own
  direct USD price).
- An asset with no price stays unpriced (absent from the marks, NaN in arrays), never 0.
  Non-finite or non-positive prices count as missing.

Only spot symbols are used: contract symbols such as ``BTC/USDT:USDT`` are ignored.
Past prices are "as of": the close of the latest candle whose timestamp is at or before
the requested time (ccxt candle timestamps are open times, as PNL.md prescribes).

Prices are kept per price source (``price_source``: exchange id, API host, sandbox), and an
account is valued from its own source's prices: a gateway or a testnet never revalues the
accounts that read the exchange itself. Only an asset its own source cannot price takes the
median of the other sources' prices, and the valuation says which sources those were. Frames
with a ``source`` column are priced that way (``add_fill_usd``, ``add_transfer_usd``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

DEFAULT_USD_LIKE: frozenset[str] = frozenset({"USD", "USDT", "USDC", "FDUSD", "DAI", "TUSD", "BUSD"})

#: Assets tried, in order, as a bridge when an asset has no direct USD-like pair.
BRIDGES: tuple[str, ...] = ("BTC", "ETH")

# Most liquid quotes first, so a stale BUSD pair is used only when nothing better exists.
_QUOTE_PREFERENCE: tuple[str, ...] = ("USDT", "USDC", "USD", "FDUSD", "DAI", "TUSD", "BUSD")

Series = dict[str, tuple[np.ndarray, np.ndarray]]  # spot symbol -> (sorted timestamps, closes)
SourceMarks = dict[str, dict[str, float]]  # price source -> asset -> USD mark

_DEFAULT_PORTS = {"http": "80", "https": "443"}


def price_source(exchange_id: str, api_url: str | None = None, sandbox: bool = False) -> str:
    """Where a connector's tickers and candles come from, as they are stored and valued.

    ``binance``: the exchange's own public API (no API URL override, no sandbox), which every
    such connector shares. An override adds ``@`` and the URL's host, lower-cased, with its port
    unless it is the scheme's default, without scheme, path or credentials
    (``binance@127.0.0.1:8900``, ``okx@gateway.example.com``); sandbox mode adds ``#sandbox``
    (``binance#sandbox``, ``binance@gateway.example.com#sandbox``). Connectors share prices
    exactly when they share this string: two paths on one host are one source, and an override
    naming the exchange's own host is a source of its own.
    """
    source = f"{exchange_id}@{_api_host(api_url)}" if api_url else exchange_id
    return f"{source}#sandbox" if sandbox else source


#: a price source inside text: the exchange id, then maybe "@host[:port]" and "#sandbox"
_SOURCE_IN_TEXT = re.compile(r"\b([a-z0-9][a-z0-9_]*)(?:@([^\s,;()#]+))?(#sandbox)?")


def source_words(text: str) -> str:
    """Price sources in ``text`` (one, or a list such as "median of binance, okx@gw.example.com")
    as people read them: ``binance`` stays, ``okx@gw.example.com`` reads "okx via
    gw.example.com", ``binance#sandbox`` "binance sandbox". For what pages and notes show; the
    data keeps ``price_source``'s form."""
    def said(match: re.Match[str]) -> str:
        exchange, host, sandbox = match.groups()
        return exchange + (f" via {host}" if host else "") + (" sandbox" if sandbox else "")

    return _SOURCE_IN_TEXT.sub(said, text)


def _api_host(url: str) -> str:
    """``host[:port]`` of a URL, read by hand so that a malformed stored URL still names a source."""
    scheme, _, rest = url.strip().partition("://")
    host = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0].rpartition("@")[2].lower()
    name, colon, port = host.rpartition(":")
    if colon and port == _DEFAULT_PORTS.get(scheme.lower()):
        return name
    return host


def split_symbol(symbol: str) -> tuple[str, str]:
    """``"BTC/USDT"`` or ``"BTC/USDT:USDT"`` -> ``("BTC", "USDT")``."""
    base, _, rest = symbol.partition("/")
    return base, rest.partition(":")[0]


def usd_quotes(usd_like: Iterable[str] = DEFAULT_USD_LIKE) -> list[str]:
    """The USD-like quotes in the order they are tried: liquid ones first, then the rest sorted."""
    usd_like = set(usd_like)
    return [q for q in _QUOTE_PREFERENCE if q in usd_like] + sorted(usd_like - set(_QUOTE_PREFERENCE))


def _valid(price: float | None) -> bool:
    return price is not None and bool(np.isfinite(price)) and price > 0


def _ticker_lasts(tickers: Mapping[str, float | None] | pd.DataFrame) -> dict[str, float]:
    """Spot symbol -> last price, from a mapping or a frame with ``symbol`` and ``last``."""
    if isinstance(tickers, pd.DataFrame):
        tickers = dict(zip(tickers["symbol"], tickers["last"], strict=True))
    return {s: float(p) for s, p in tickers.items() if ":" not in s and p is not None and _valid(float(p))}


def price_path(
    asset: str, symbols: Collection[str], usd_like: frozenset[str] = DEFAULT_USD_LIKE
) -> tuple[str, ...] | None:
    """The markets whose prices multiply to ``asset``'s USD price: ``()`` for cash, None if none.

    Shared by the sync (which tickers and candles to fetch) and the marks below, so what is
    fetched is exactly what is used.
    """
    if asset in usd_like:
        return ()
    quotes = usd_quotes(usd_like)

    def direct(base: str) -> str | None:
        return next((f"{base}/{q}" for q in quotes if f"{base}/{q}" in symbols), None)

    if pair := direct(asset):
        return (pair,)
    for bridge in BRIDGES:
        if asset != bridge and f"{asset}/{bridge}" in symbols and (leg := direct(bridge)):
            return (f"{asset}/{bridge}", leg)
    return None


def marks_from_tickers(
    tickers: Mapping[str, float | None] | pd.DataFrame,
    assets: Iterable[str],
    *,
    usd_like: frozenset[str] = DEFAULT_USD_LIKE,
) -> dict[str, float]:
    """USD mark per asset from last prices; assets without a price are left out (unpriced)."""
    lasts = _ticker_lasts(tickers)
    marks: dict[str, float] = {}
    for asset in dict.fromkeys(assets):
        path = price_path(asset, lasts, usd_like)
        if path is not None:
            marks[asset] = math.prod(lasts[symbol] for symbol in path)
    return marks


def marks_by_source(
    tickers: pd.DataFrame, assets: Iterable[str], *, usd_like: frozenset[str] = DEFAULT_USD_LIKE
) -> SourceMarks:
    """USD mark per price source and asset, from tickers with ``source``, ``symbol`` and ``last``."""
    assets = list(dict.fromkeys(assets))
    return {str(source): marks_from_tickers(group, assets, usd_like=usd_like)
            for source, group in tickers.groupby("source", sort=True)}


def _own_mark(marks: SourceMarks, source: str, asset: str, usd_like: frozenset[str]) -> tuple[float, str]:
    if asset in usd_like:
        return 1.0, ""
    own = marks.get(source, {}).get(asset)
    if own is not None and _valid(own):
        return float(own), source
    others = sorted(s for s, held in marks.items() if s != source and _valid(held.get(asset)))
    if not others:
        return math.nan, ""
    price = float(np.median([marks[s][asset] for s in others]))
    return price, others[0] if len(others) == 1 else "median of " + ", ".join(others)


def own_marks(
    marks: SourceMarks, sources: Sequence[str], assets: Sequence[str], *, usd_like: frozenset[str] = DEFAULT_USD_LIKE
) -> tuple[np.ndarray, list[str]]:
    """The USD price of each ``assets[i]`` held at ``sources[i]``, and which source priced it.

    Its own source's mark first; an asset its own source cannot price takes the median of the
    other sources' marks, named (``okx``, ``median of binance, okx``). Cash is 1.0 from no
    source (""); NaN and "" when no source prices the asset.
    """
    found: dict[tuple[str, str], tuple[float, str]] = {}
    for key in zip(sources, assets, strict=True):
        if key not in found:
            found[key] = _own_mark(marks, key[0], key[1], usd_like)
    pairs = [found[key] for key in zip(sources, assets, strict=True)]
    return np.array([price for price, _ in pairs], dtype=float), [origin for _, origin in pairs]


def _figure(value: float) -> str:
    return f"{value:,.2f}" if abs(value) >= 1 else f"{value:.6g}"


def pooled_marks(
    marks: SourceMarks, held: pd.DataFrame, assets: Iterable[str], *, usd_like: frozenset[str] = DEFAULT_USD_LIKE
) -> tuple[dict[str, float], list[str]]:
    """One USD mark per asset for a view that pools accounts of several sources (lib.pnl takes one).

    ``held`` (``source``, ``asset``, ``units`` >= 0) says where the units are. Each source's
    units are priced as ``own_marks`` prices them, and the asset's mark is the average of those
    prices weighted by units, so its market value is what every account's units are worth at
    its own source's price. An asset nobody holds takes the median over sources. Returns the
    marks (unpriced assets left out) and, per asset whose holders' prices differ, a sentence
    naming each source, its price and its units.
    """
    result: dict[str, float] = {}
    notes: list[str] = []
    held = held[held["units"] > 0].groupby(["asset", "source"], as_index=False)["units"].sum()
    by_asset = dict(tuple(held.groupby("asset")))
    for asset in dict.fromkeys(assets):
        here = by_asset.get(asset)
        if here is None:
            price, _ = _own_mark(marks, "", asset, usd_like)
            if not math.isnan(price):
                result[asset] = price
            continue
        price, origin = own_marks(marks, list(here["source"]), [asset] * len(here), usd_like=usd_like)
        units = here["units"].to_numpy(float)
        if np.isnan(price).all():
            continue
        result[asset] = float(np.nansum(price * units) / units[~np.isnan(price)].sum())
        if np.nanmax(price) - np.nanmin(price) > 1e-9 * np.nanmax(price):
            parts = [f"{source_words(source)} {_figure(p)}" + (f" from {source_words(o)}" if o != source else "")
                     + f" ({u:,.8g} {asset})"
                     for source, p, o, u in zip(here["source"], price, origin, units, strict=True)]
            notes.append(f"{asset} is priced per account from its own source: {'; '.join(parts)}; the P&L "
                         f"values it at their average weighted by units, {_figure(result[asset])}.")
    return result, notes


def candle_series(candles: pd.DataFrame) -> Series:
    """Index candles (``symbol, timestamp, close``) by spot symbol, sorted by time."""
    spot = candles.loc[~candles["symbol"].str.contains(":", regex=False), ["symbol", "timestamp", "close"]]
    spot = spot.sort_values(["symbol", "timestamp"], kind="stable")
    return {
        str(symbol): (group["timestamp"].to_numpy(np.int64), group["close"].to_numpy(np.float64))
        for symbol, group in spot.groupby("symbol", sort=False)
    }


def _asof(series: Series, symbol: str, timestamps: np.ndarray) -> np.ndarray:
    """Close of the latest candle at or before each timestamp; NaN when there is none."""
    out = np.full(len(timestamps), np.nan)
    if symbol not in series:
        return out
    times, closes = series[symbol]
    idx = np.searchsorted(times, timestamps, side="right") - 1
    found = idx >= 0
    out[found] = closes[idx[found]]
    out[~(out > 0) | ~np.isfinite(out)] = np.nan
    return out


def _direct_usd(series: Series, asset: str, timestamps: np.ndarray, quotes: list[str]) -> np.ndarray:
    price = np.full(len(timestamps), np.nan)
    for quote in quotes:
        missing = np.isnan(price)
        if not missing.any():
            break
        price[missing] = _asof(series, f"{asset}/{quote}", timestamps[missing])
    return price


def _asset_usd(series: Series, asset: str, timestamps: np.ndarray, usd_like: frozenset[str]) -> np.ndarray:
    if asset in usd_like:
        return np.ones(len(timestamps))
    quotes = usd_quotes(usd_like)
    price = _direct_usd(series, asset, timestamps, quotes)
    for bridge in BRIDGES:
        missing = np.isnan(price)
        if asset == bridge or not missing.any():
            continue
        at = timestamps[missing]
        price[missing] = _asof(series, f"{asset}/{bridge}", at) * _direct_usd(series, bridge, at, quotes)
    return price


def usd_at(
    candles: pd.DataFrame | Series,
    assets: pd.Series | np.ndarray | list[str | None],
    timestamps: pd.Series | np.ndarray | list[int],
    *,
    usd_like: frozenset[str] = DEFAULT_USD_LIKE,
) -> np.ndarray:
    """USD price of each ``assets[i]`` at ``timestamps[i]`` (ms); NaN when unknown or asset is None."""
    series = candle_series(candles) if isinstance(candles, pd.DataFrame) else candles
    codes, uniques = pd.factorize(pd.Series(assets))
    times = np.asarray(timestamps, dtype=np.int64)
    out = np.full(len(codes), np.nan)
    for code, asset in enumerate(uniques):
        rows = np.flatnonzero(codes == code)
        out[rows] = _asset_usd(series, str(asset), times[rows], usd_like)
    return out


def source_series(candles: pd.DataFrame) -> dict[str, Series]:
    """``candle_series`` per price source (``candles["source"]``)."""
    return {str(s): candle_series(group) for s, group in candles.groupby("source")} if not candles.empty else {}


def usd_at_sources(
    candles: pd.DataFrame | dict[str, Series],
    sources: pd.Series | np.ndarray | list[str],
    assets: pd.Series | np.ndarray | list[str | None],
    timestamps: pd.Series | np.ndarray | list[int],
    *,
    usd_like: frozenset[str] = DEFAULT_USD_LIKE,
    others: bool = True,
) -> np.ndarray:
    """As ``usd_at``, each row from the candles of its own source (``candles["source"]``); a row
    its source cannot price takes the median of the other sources' prices at that time (NaN
    with ``others=False``)."""
    series = source_series(candles) if isinstance(candles, pd.DataFrame) else candles
    codes, names = pd.factorize(pd.Series(sources))
    assets = pd.Series(assets).reset_index(drop=True)
    times = np.asarray(timestamps, dtype=np.int64)
    out = np.full(len(times), np.nan)
    for code, source in enumerate(names):
        rows = np.flatnonzero(codes == code)
        out[rows] = usd_at(series.get(str(source), {}), assets.iloc[rows], times[rows], usd_like=usd_like)
    missing = np.flatnonzero(np.isnan(out) & assets.notna().to_numpy())
    if others and len(missing) and series:
        elsewhere = pd.DataFrame({s: usd_at(one, assets.iloc[missing], times[missing], usd_like=usd_like)
                                  for s, one in series.items()})
        out[missing] = elsewhere.median(axis=1, skipna=True).to_numpy()
    return out


def _usd(table: Series | dict[str, Series], frame: pd.DataFrame, assets: pd.Series,
         usd_like: frozenset[str]) -> np.ndarray:
    """``frame``'s ``assets`` at its timestamps: per source when the frame has a ``source`` column
    (``table`` from ``source_series``), else from ``table`` (``candle_series``)."""
    if "source" in frame.columns:
        return usd_at_sources(table, frame["source"], assets, frame["timestamp"], usd_like=usd_like)
    return usd_at(table, assets, frame["timestamp"], usd_like=usd_like)


def _table(candles: pd.DataFrame, frame: pd.DataFrame) -> Series | dict[str, Series]:
    return source_series(candles) if "source" in frame.columns else candle_series(candles)


def add_fill_usd(
    fills: pd.DataFrame, candles: pd.DataFrame | Series | dict[str, Series], *,
    usd_like: frozenset[str] = DEFAULT_USD_LIKE,
) -> pd.DataFrame:
    """Copy of ``fills`` with ``quote_usd`` and ``fee_usd`` (NaN when no fee or no price). ``candles``:
    their rows, or already indexed as ``_table`` indexes them (``source_series``) when the caller has that."""
    table = _table(candles, fills) if isinstance(candles, pd.DataFrame) else candles
    out = fills.copy()
    out["quote_usd"] = _usd(table, out, out["quote"], usd_like)
    has_fee = out["fee_currency"].notna() & (out["fee_cost"].fillna(0) != 0)
    fee_usd = np.full(len(out), np.nan)
    fee_usd[has_fee.to_numpy()] = _usd(table, out.loc[has_fee], out.loc[has_fee, "fee_currency"], usd_like)
    out["fee_usd"] = fee_usd
    return out


def add_transfer_usd(
    transfers: pd.DataFrame,
    candles: pd.DataFrame,
    *,
    usd_like: frozenset[str] = DEFAULT_USD_LIKE,
    asset_column: str = "currency",
) -> pd.DataFrame:
    """Copy of ``transfers`` with ``usd``; pass ``asset_column="asset"`` for opening lots."""
    out = transfers.copy()
    out["usd"] = _usd(_table(candles, out), out, out[asset_column], usd_like)
    return out
