"""Markets, exact amounts and the deterministic price paths every account trades on.

Amounts are integers in units of 1e-8 ("sats") so balances are exact sums and print as
the same decimal strings the exchanges send. Prices are public data, so the paths depend
on the seed only: a ticker fetched without a key agrees with the price of a fill.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np

SATS = 10**8
MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
#: how far past the anchor the price paths reach (the demo server keeps running)
FUTURE_DAYS = 60


@dataclass(frozen=True)
class Market:
    """A spot market; steps are chosen so that amount * price is a whole number of sats."""

    base: str
    quote: str
    amount_decimals: int
    price_decimals: int

    @property
    def symbol(self) -> str:
        return f"{self.base}/{self.quote}"

    @property
    def step(self) -> int:
        return 10 ** (8 - self.amount_decimals)

    @property
    def tick(self) -> int:
        return 10 ** (8 - self.price_decimals)


MARKETS: dict[str, Market] = {
    m.symbol: m
    for m in (
        Market("BTC", "USDT", 5, 2),
        Market("ETH", "USDT", 4, 2),
        Market("BNB", "USDT", 3, 2),
        Market("SOL", "USDT", 3, 2),
        Market("OKB", "USDT", 3, 3),
        Market("ETH", "BTC", 3, 5),
        Market("TKN", "USDT", 1, 5),
    )
}
#: the markets generated histories trade on
DIALECT_SYMBOLS: dict[str, tuple[str, ...]] = {
    "binance": ("BTC/USDT", "ETH/USDT", "BNB/USDT", "SOL/USDT", "ETH/BTC"),
    "okx": ("BTC/USDT", "ETH/USDT", "SOL/USDT", "OKB/USDT", "ETH/BTC"),
    "cryptocom": ("BTC/USDT", "ETH/USDT", "SOL/USDT", "BNB/USDT", "ETH/BTC"),
    "bybit": ("BTC/USDT", "ETH/USDT", "SOL/USDT", "BNB/USDT", "ETH/BTC"),
    "bitmart": ("BTC/USDT", "ETH/USDT", "SOL/USDT", "BNB/USDT", "ETH/BTC"),
}
#: a client's own token: listed on both dialects, never touched by generated histories, so
#: tests can trade it on purpose (``World.trade``) and know it appears nowhere else
CLIENT_TOKEN = "TKN/USDT"
#: the markets each dialect lists
LISTED_SYMBOLS: dict[str, tuple[str, ...]] = {d: (*s, CLIENT_TOKEN) for d, s in DIALECT_SYMBOLS.items()}
#: USD price of each asset at the start of the path, and its yearly volatility
START_USD: dict[str, tuple[float, float]] = {
    "BTC": (60_000.0, 0.55),
    "ETH": (3_000.0, 0.7),
    "BNB": (550.0, 0.6),
    "SOL": (150.0, 0.9),
    "OKB": (45.0, 0.8),
    "TKN": (0.25, 1.5),  # last, so the paths drawn before it stay as they were
}


def fmt(sats: int | Decimal) -> str:
    """An exact decimal string with 8 places, as Binance prints amounts; an amount finer than a
    sat (``Ledger.hold_exact``: a fractional Decimal of sats) with every digit it has."""
    if isinstance(sats, Decimal):
        if sats != sats.to_integral_value():
            return format(sats.scaleb(-8), "f")
        sats = int(sats)
    sign = "-" if sats < 0 else ""
    whole, frac = divmod(abs(sats), SATS)
    return f"{sign}{whole}.{frac:08d}"


def to_float(sats: int | Decimal) -> float:
    """The float ccxt produces from the decimal string: parse the same string."""
    return float(fmt(sats))


class PriceBook:
    """One-minute USD price paths per asset from ``origin_ms`` on (geometric random walk)."""

    def __init__(self, seed: int, origin_ms: int, days: int) -> None:
        self.origin_ms = origin_ms - origin_ms % MINUTE_MS
        minutes = (days + FUTURE_DAYS) * 24 * 60
        rng = np.random.default_rng([seed, 0xB00C])
        self._usd: dict[str, np.ndarray] = {"USDT": np.ones(minutes)}
        for asset, (start, vol) in START_USD.items():
            sigma = vol / np.sqrt(365 * 24 * 60)
            steps = rng.normal(-0.5 * sigma * sigma, sigma, minutes)
            steps[0] = 0.0
            self._usd[asset] = start * np.exp(np.cumsum(steps))
        self._last = minutes - 1

    def _index(self, ts_ms: np.ndarray | int) -> np.ndarray:
        return np.clip((np.asarray(ts_ms) - self.origin_ms) // MINUTE_MS, 0, self._last)

    def _at(self, ts_ms: int) -> int:
        """Scalar index without numpy call overhead (the generation loop calls it a lot)."""
        return min(max((ts_ms - self.origin_ms) // MINUTE_MS, 0), self._last)

    def usd(self, asset: str, ts_ms: int) -> float:
        return float(self._usd[asset][self._at(ts_ms)])

    def prices(self, symbol: str, ts_ms: np.ndarray) -> np.ndarray:
        """Float prices of ``symbol`` at many instants (vectorised for history generation)."""
        market = MARKETS[symbol]
        idx = self._index(ts_ms)
        return self._usd[market.base][idx] / self._usd[market.quote][idx]

    def price(self, symbol: str, ts_ms: int) -> float:
        market, i = MARKETS[symbol], self._at(ts_ms)
        return float(self._usd[market.base][i] / self._usd[market.quote][i])

    def price_sats(self, symbol: str, ts_ms: int, factor: float = 1.0) -> int:
        """The price rounded to the market's tick, in sats."""
        tick = MARKETS[symbol].tick
        return max(tick, round(self.price(symbol, ts_ms) * factor * SATS / tick) * tick)

    def candles(self, symbol: str, minutes: int, first_open_ms: int, count: int, now_ms: int) -> list[tuple]:
        """``count`` candles of ``minutes`` each from ``first_open_ms``, none past ``now_ms``.

        Each is (open_ms, open, high, low, close, base_volume) with prices in sats; the
        current candle is partial, as on a real exchange.
        """
        market = MARKETS[symbol]
        start = self._at(first_open_ms)
        stop = min(start + minutes * count, self._at(now_ms) + 1)
        if stop <= start:
            return []
        path = self.prices(symbol, self.origin_ms + np.arange(start, stop) * MINUTE_MS)
        out = []
        for offset in range(0, stop - start, minutes):
            chunk = path[offset : offset + minutes]
            o, c = float(chunk[0]), float(chunk[-1])
            h, lo = float(chunk.max()) * 1.0004, float(chunk.min()) * 0.9996
            prices = [max(market.tick, round(p * SATS / market.tick) * market.tick) for p in (o, h, lo, c)]
            volume = round((50 + 4e4 * abs(c - o) / o) * minutes) * SATS // 100
            out.append((self.origin_ms + (start + offset) * MINUTE_MS, *prices, volume))
        return out
