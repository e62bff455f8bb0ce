"""Which markets price an asset in USD, following PNL.md: direct pair, else via BTC or ETH.

The sync uses this to know which tickers (holdings now) and which daily candles (past
fills) to fetch; pricing itself stays with the P&L code, which applies the same rule.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

#: preferred USD-like quotes, most liquid first
USD_QUOTES = ("USDT", "USDC", "USD", "FDUSD", "DAI", "TUSD", "BUSD")
BRIDGES = ("BTC", "ETH")


def _direct(asset: str, symbols: Collection[str], cash: Collection[str]) -> str | None:
    for quote in (*USD_QUOTES, *sorted(cash)):
        if quote in cash and f"{asset}/{quote}" in symbols:
            return f"{asset}/{quote}"
    return None


def price_path(asset: str, symbols: Collection[str], cash: Collection[str]) -> tuple[str, ...] | None:
    """Markets whose prices multiply to the USD price of ``asset`` (empty for cash, None: unpriced)."""
    if asset in cash:
        return ()
    direct = _direct(asset, symbols, cash)
    if direct:
        return (direct,)
    for bridge in BRIDGES:
        leg = _direct(bridge, symbols, cash)
        if leg and f"{asset}/{bridge}" in symbols:
            return (f"{asset}/{bridge}", leg)
    return None


def usd_price(asset: str, symbols: Collection[str], cash: Collection[str], prices: Mapping[str, float]) -> float | None:
    """USD price of ``asset`` from market prices, or None when a leg is missing."""
    path = price_path(asset, symbols, cash)
    if path is None:
        return None
    value = 1.0
    for symbol in path:
        if not prices.get(symbol):
            return None
        value *= prices[symbol]
    return value
