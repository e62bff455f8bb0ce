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
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping

import numpy as np
import pandas as pd

DEFAULT_USD_LIKE: frozenset[str] = frozenset({"USD", "USDT", "USDC", "FDUSD", "DAI", "TUSD", "BUSD"})

#: Assets tried, in order, as a bridge when an asset has no direct USD-like pair.
BRIDGES: tuple[str, ...] = ("BTC", "ETH")

# Most liquid quotes first, so a stale BUSD pair is used only when nothing better exists.
_QUOTE_PREFERENCE: tuple[str, ...] = ("USDT", "USDC", "USD", "FDUSD", "DAI", "TUSD", "BUSD")

Series = dict[str, tuple[np.ndarray, np.ndarray]]  # spot symbol -> (sorted timestamps, closes)


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


def unpriced_assets(
    assets: Iterable[str], marks: Mapping[str, float], *, usd_like: frozenset[str] = DEFAULT_USD_LIKE
) -> list[str]:
    """Sorted non-cash assets that have no usable mark."""
    return sorted({a for a in assets if a not in usd_like and not _valid(marks.get(a))})


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


def add_fill_usd(
    fills: pd.DataFrame, candles: pd.DataFrame, *, usd_like: frozenset[str] = DEFAULT_USD_LIKE
) -> pd.DataFrame:
    """Copy of ``fills`` with ``quote_usd`` and ``fee_usd`` (NaN when no fee or no price)."""
    series = candle_series(candles)
    out = fills.copy()
    out["quote_usd"] = usd_at(series, out["quote"], out["timestamp"], usd_like=usd_like)
    has_fee = out["fee_currency"].notna() & (out["fee_cost"].fillna(0) != 0)
    fee_usd = np.full(len(out), np.nan)
    fee_usd[has_fee.to_numpy()] = usd_at(
        series, out.loc[has_fee, "fee_currency"], out.loc[has_fee, "timestamp"], usd_like=usd_like
    )
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
    out["usd"] = usd_at(candles, out[asset_column], out["timestamp"], usd_like=usd_like)
    return out
