"""Deterministic account histories: deposits, orders with fills and fees, withdrawals.

Random draws are made up front with numpy (fast for 100,000 fills); the walk through
time that sizes every trade against the balance it can afford is a tight integer loop,
so the books always balance and nothing ever goes negative.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

import numpy as np

from lib.simulator.ledger import Fill, Ledger, Order, Transfer
from lib.simulator.market import DAY_MS, DIALECT_SYMBOLS, HOUR_MS, MARKETS, MINUTE_MS, SATS, PriceBook


@dataclass(frozen=True)
class FeeSchedule:
    """Spot fee rates in parts per million; Binance can charge fees in BNB at a discount."""

    maker_ppm: int
    taker_ppm: int
    bnb_ppm: int | None = None


FEES = {
    "binance": FeeSchedule(maker_ppm=1000, taker_ppm=1000, bnb_ppm=750),
    "okx": FeeSchedule(maker_ppm=800, taker_ppm=1000),
    "cryptocom": FeeSchedule(maker_ppm=750, taker_ppm=750),
    "bybit": FeeSchedule(maker_ppm=1000, taker_ppm=1000),
}
SYMBOL_WEIGHTS = np.array([0.35, 0.25, 0.15, 0.15, 0.10])
WITHDRAW_FEES = {"USDT": SATS, "BTC": 20_000, "ETH": 200_000, "BNB": 500_000, "SOL": 1_000_000, "OKB": 5_000_000,
                 "TKN": 10 * SATS}
NETWORKS = {"USDT": "TRX", "BTC": "BTC", "ETH": "ETH", "BNB": "BSC", "SOL": "SOL", "OKB": "X Layer", "TKN": "ETH"}


def _digest(*parts: object) -> str:
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()


class Trader:
    """Turns a trading intention into fills the account can afford, and books them."""

    def __init__(self, ledger: Ledger, book: PriceBook, dialect: str, tag: str) -> None:
        self.ledger = ledger
        self.book = book
        self.fees = FEES[dialect]
        self.symbols = DIALECT_SYMBOLS[dialect]
        self.tag = tag

    def order(
        self, ts: int, symbol: str, buy: bool, frac: float, dev: float, maker: bool, bnb: bool, parts: int
    ) -> int:
        """Book one filled order of up to ``parts`` fills; returns the number of fills (0: none).

        Tries the intended side, then the other side, then every market, so an account
        with any money left always trades.
        """
        attempts = [(symbol, buy), (symbol, not buy)] + [(s, b) for s in self.symbols for b in (True, False)]
        for sym, side in attempts:
            amount, price = self._size(ts, sym, side, frac, dev)
            if amount:
                return self._book(ts, sym, side, amount, price, maker, bnb, parts)
        return 0

    def _size(self, ts: int, symbol: str, buy: bool, frac: float, dev: float) -> tuple[int, int]:
        market = MARKETS[symbol]
        price = self.book.price_sats(symbol, ts, 1.0 + dev)
        free = self.ledger.free
        amount = int(free[market.quote] * frac) * SATS // price if buy else int(free[market.base] * frac)
        return amount - amount % market.step, price

    def _book(
        self, ts: int, symbol: str, buy: bool, amount: int, price: int, maker: bool, bnb: bool, parts: int
    ) -> int:
        market = MARKETS[symbol]
        ledger = self.ledger
        steps = amount // market.step
        parts = max(1, min(parts, steps))
        order = Order(ledger.next_seq(), ts, symbol, buy, price, amount, update_ts=ts)
        ppm = self.fees.maker_ppm if maker else self.fees.taker_ppm
        fills = []
        bnb_left = ledger.free.get("BNB", 0) if symbol != "BNB/USDT" else 0
        for i in range(parts):
            size = (steps // parts + (1 if i < steps % parts else 0)) * market.step
            cost = size * price // SATS
            fee_asset, fee = (market.base, size * ppm // 1_000_000) if buy else (market.quote, cost * ppm // 1_000_000)
            if bnb and self.fees.bnb_ppm:
                quote_usd = self.book.usd(market.quote, ts)
                bnb_fee = int(cost * quote_usd * self.fees.bnb_ppm / 1_000_000 / self.book.usd("BNB", ts))
                if 0 < bnb_fee <= bnb_left:
                    fee_asset, fee = "BNB", bnb_fee
                    bnb_left -= bnb_fee
            fills.append(Fill(ledger.next_seq(), order.seq, ts, symbol, buy, size, price, cost, fee, fee_asset, maker))
            order.filled += size
            order.cost += cost
        ledger.apply_order(order, fills)
        return len(fills)

    def transfer(self, ts: int, deposit: bool, asset: str, amount: int, pending: bool = False) -> Transfer:
        seq = self.ledger.next_seq()
        fee = 0 if deposit else WITHDRAW_FEES[asset]
        address = "0x" + _digest(self.tag, "address", asset, deposit)[:40]
        txid = "0x" + _digest(self.tag, "tx", seq)
        transfer = Transfer(seq, ts, deposit, asset, amount, fee, address, txid, pending)
        self.ledger.apply_transfer(transfer)
        return transfer

    def fill_order(self, ts: int, symbol: str, buy: bool, frac: float, bnb: bool = False) -> int:
        """Exactly one order on ``symbol`` and side (no fallback, unlike ``order``); returns its fills."""
        amount, price = self._size(ts, symbol, buy, frac, 0.0)
        if not amount:
            raise ValueError(f"nothing to {'buy' if buy else 'sell'} on {symbol}")
        return self._book(ts, symbol, buy, amount, price, False, bnb, 1)

    def open_order(self, ts: int, symbol: str, buy: bool, frac: float, distance: float) -> None:
        amount, price = self._size(ts, symbol, buy, frac, distance if not buy else -distance)
        if amount:
            seq = self.ledger.next_seq()
            self.ledger.apply_open_order(Order(seq, ts, symbol, buy, price, amount, update_ts=ts, is_open=True))


def generate(ledger: Ledger, book: PriceBook, dialect: str, tag: str, seed: int, index: int,
             fills: int, days: int, anchor_ms: int, open_orders: int | None = None) -> Trader:
    """Fill ``ledger`` with ``days`` of history ending at ``anchor_ms``; exactly ``fills`` fills.

    ``open_orders`` resting orders are left at the end (default: 2 to 5, drawn from the seed);
    each holds back a share of what is free, so a few may be skipped when an asset runs dry.
    """
    rng = np.random.default_rng([seed, index, 0x415])
    trader = Trader(ledger, book, dialect, tag)
    start = anchor_ms - days * DAY_MS
    symbols = DIALECT_SYMBOLS[dialect]

    # transfers: funding first, then top-ups and withdrawals spread over the period
    events: list[tuple[int, int, int]] = []
    trader.transfer(start + MINUTE_MS, True, "USDT", int(rng.integers(100_000, 1_000_000)) * SATS)
    trader.transfer(start + 2 * MINUTE_MS, True, "BTC", int(rng.integers(1, 6) * SATS))
    if dialect == "binance":
        trader.transfer(start + 3 * MINUTE_MS, True, "BNB", int(rng.integers(5, 30) * SATS))
    extra_assets = ["USDT", "USDT", "BTC", "ETH", "SOL"]
    n_deposits, n_withdrawals = max(2, days // 10), max(1, days // 20)
    dep_times = rng.integers(start + HOUR_MS, anchor_ms - HOUR_MS, n_deposits)
    wd_times = rng.integers(start + HOUR_MS, anchor_ms - HOUR_MS, n_withdrawals) // 1000 * 1000
    events += [(int(t), 0, i) for i, t in enumerate(dep_times)]
    events += [(int(t), 2, i) for i, t in enumerate(wd_times)]

    # orders: 1-3 fills each, totalling exactly `fills`
    sizes = rng.choice(np.array([1, 1, 1, 2, 2, 3]), size=max(1, fills))
    cum = np.cumsum(sizes)
    n_orders = int(np.searchsorted(cum, fills)) + 1 if fills else 0
    sizes = sizes[:n_orders]
    if n_orders:
        sizes[-1] -= int(cum[n_orders - 1]) - fills
    times = np.sort(rng.integers(start + HOUR_MS, anchor_ms - MINUTE_MS, n_orders))
    sym_idx = rng.choice(len(symbols), size=n_orders, p=SYMBOL_WEIGHTS)
    buys, fracs = rng.random(n_orders) < 0.5, rng.uniform(0.01, 0.12, n_orders)
    devs, makers, bnbs = rng.normal(0, 4e-4, n_orders), rng.random(n_orders) < 0.4, rng.random(n_orders) < 0.3
    events += [(int(t), 1, i) for i, t in enumerate(times)]
    events.sort()

    dep_assets = rng.choice(len(extra_assets), n_deposits)
    dep_usd, wd_fracs = rng.uniform(5_000, 60_000, n_deposits), rng.uniform(0.05, 0.25, n_withdrawals)
    made = 0
    for ts, kind, i in events:
        if kind == 1:
            want = min(int(sizes[i]), fills - made)
            if want > 0:
                made += trader.order(ts, symbols[sym_idx[i]], bool(buys[i]), float(fracs[i]), float(devs[i]),
                                     bool(makers[i]), bool(bnbs[i]), want)
        elif kind == 0:
            asset = extra_assets[dep_assets[i]]
            trader.transfer(ts, True, asset, int(dep_usd[i] / book.usd(asset, ts) * 1e6) * 100)
        else:
            held = [a for a in ("USDT", "BTC", "ETH", "SOL") if ledger.free[a] > 10 * WITHDRAW_FEES[a]]
            if held:
                asset = held[i % len(held)]
                amount = int(ledger.free[asset] * float(wd_fracs[i])) // 100 * 100
                trader.transfer(ts, False, asset, amount)
    # top up with small orders just before the anchor if a saturated account traded less
    while made < fills:
        symbol = symbols[made % len(symbols)]
        got = trader.order(anchor_ms - MINUTE_MS, symbol, made % 2 == 0, 0.05, 0.0, False, False, 1)
        if not got:
            raise RuntimeError("simulated account ran out of funds")
        made += got

    drawn = int(rng.integers(2, 6))
    count = drawn if open_orders is None else open_orders
    frac = min(0.08, 0.5 / max(1, count))  # many orders share half of what is free
    for k in range(count):
        ts = anchor_ms - int(rng.integers(HOUR_MS, 2 * DAY_MS))
        trader.open_order(ts, symbols[k % len(symbols)], k % 2 == 0, frac, float(rng.uniform(0.03, 0.1)))
    return trader


def live_fills(trader: Trader, rng: random.Random, ts: int, n: int) -> int:
    """Book ``n`` new fills at ``ts`` (the sim's "fills arriving now" API)."""
    made = 0
    while made < n:
        symbol = rng.choice(trader.symbols)
        got = trader.order(ts, symbol, rng.random() < 0.5, rng.uniform(0.01, 0.05), rng.gauss(0, 4e-4),
                           rng.random() < 0.4, rng.random() < 0.3, min(n - made, rng.choice((1, 1, 2, 3))))
        if not got:
            raise RuntimeError("simulated account ran out of funds")
        made += got
    return made
