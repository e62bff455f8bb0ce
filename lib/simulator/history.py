"""Deterministic account histories: deposits, orders with fills and fees, withdrawals.

Random draws are made up front with numpy (fast for 100,000 fills); the walk through
time that sizes every trade against the balance it can afford is a tight integer loop,
so the books always balance and nothing ever goes negative. ``Scenarios`` adds the hard
cases a complete sync must survive (a quiet gap, same-millisecond bursts, fills on UTC
midnights, a token that comes and goes, canceled orders, a funding account).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lib.simulator.ledger import Fill, Ledger, Order, Transfer
from lib.simulator.market import (
    CLIENT_TOKEN,
    DAY_MS,
    DIALECT_SYMBOLS,
    HOUR_MS,
    MARKETS,
    MINUTE_MS,
    SATS,
    PriceBook,
)


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
    "bitmart": FeeSchedule(maker_ppm=1000, taker_ppm=1000),
}
#: dialects with a second account type that ccxt's fetch_balance({"type": "funding"}) reads
FUNDING_DIALECTS = ("binance", "okx", "bybit", "bitmart")
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
        self.dialect = dialect
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
        self, ts: int, symbol: str, buy: bool, amount: int, price: int, maker: bool, bnb: bool, parts: int,
        ordered: int | None = None, canceled_at: int | None = None,
    ) -> int:
        """Fills ``amount`` in ``parts``; an order of more (``ordered``) is canceled at ``canceled_at``."""
        market = MARKETS[symbol]
        ledger = self.ledger
        steps = amount // market.step
        parts = max(1, min(parts, steps))
        order = Order(ledger.next_seq(), ts, symbol, buy, price, amount if ordered is None else ordered,
                      update_ts=ts if canceled_at is None else canceled_at, canceled=canceled_at is not None)
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

    def fill_order(self, ts: int, symbol: str, buy: bool, frac: float, bnb: bool = False, parts: int = 1) -> int:
        """Exactly one order on ``symbol`` and side (no fallback, unlike ``order``); returns its fills."""
        amount, price = self._size(ts, symbol, buy, frac, 0.0)
        if not amount:
            raise ValueError(f"nothing to {'buy' if buy else 'sell'} on {symbol}")
        return self._book(ts, symbol, buy, amount, price, False, bnb, parts)

    def canceled_order(self, ts: int, symbol: str, buy: bool, frac: float, filled_share: float, canceled_at: int,
                       parts: int = 1) -> int:
        """A limit order of ``frac`` of what is free, ``filled_share`` of it filled (0: nothing), then
        canceled at ``canceled_at``; it holds nothing afterwards. Returns its fills."""
        market = MARKETS[symbol]
        amount, price = self._size(ts, symbol, buy, frac, 0.0)
        if not amount:
            raise ValueError(f"nothing to {'buy' if buy else 'sell'} on {symbol}")
        filled = int(amount * filled_share) // market.step * market.step
        if filled:
            return self._book(ts, symbol, buy, filled, price, True, False, parts, amount, canceled_at)
        ledger = self.ledger
        ledger.apply_order(Order(ledger.next_seq(), ts, symbol, buy, price, amount, update_ts=canceled_at,
                                 canceled=True), [])
        return 0

    def open_order(self, ts: int, symbol: str, buy: bool, frac: float, distance: float) -> None:
        amount, price = self._size(ts, symbol, buy, frac, distance if not buy else -distance)
        if amount:
            seq = self.ledger.next_seq()
            self.ledger.apply_open_order(Order(seq, ts, symbol, buy, price, amount, update_ts=ts, is_open=True))


class Scenarios:
    """The hard cases of one account's history, each placed on its own day around a quiet gap.

    Drawn from an RNG of their own, so the history without them stays exactly as it was. The
    ordinary events are squeezed out of the gap (``squeeze``); ``steps`` are the scenario's own
    events as (ms, action) for the generator's walk through time; ``finish`` moves part of what
    is left to the funding account.
    """

    #: the shortest history that has room for every case
    MIN_DAYS = 40

    def __init__(self, trader: Trader, seed: int, index: int, start: int, anchor: int) -> None:
        span = (anchor - start) // DAY_MS
        if span < self.MIN_DAYS:
            raise ValueError(f"scenarios need a history of at least {self.MIN_DAYS} days, not {span}")
        self.trader, self.start, self.anchor = trader, start, anchor
        self.rng = rng = np.random.default_rng([seed, index, 0x5CE7A])
        day0 = -(-start // DAY_MS)  # first UTC midnight at or after the start, as a day number
        gap_day = day0 + span * 3 // 10 + int(rng.integers(0, 3))
        gap_days = int(rng.integers(11, 15))  # longer than a 7-day window, and than 10 days
        self.gap = (gap_day * DAY_MS, (gap_day + gap_days) * DAY_MS)
        after = gap_day + gap_days + 1 + int(rng.integers(0, 2))  # first midnight fill after the gap
        symbols, pair = trader.symbols, CLIENT_TOKEN
        token = MARKETS[pair].base
        self.steps: list[tuple[int, Callable[[], object]]] = []

        def burst() -> int:
            """Fills in one burst: more than a few, so a page edge can fall inside it."""
            return int(rng.integers(5, 10))

        def at(day: int, action: Callable[[int], object], midnight: bool = False) -> None:
            ts = day * DAY_MS + (0 if midnight else int(rng.integers(HOUR_MS, DAY_MS - HOUR_MS)))
            self.steps.append((ts, lambda: action(ts)))

        # before the gap: the token arrives and trades, bursts, canceled orders, a midnight fill
        # (canceled orders buy with USDT, which every account holds plenty of)
        at(day0 + 1, lambda ts: trader.transfer(ts, True, token, int(rng.integers(200_000, 800_000)) * SATS))
        at(day0 + 2, lambda ts: trader.fill_order(ts, pair, False, 0.3, parts=2))
        at(day0 + 3, lambda ts: trader.order(ts, symbols[0], True, 0.04, 0.0, False, False, burst()))
        at(day0 + 4, lambda ts: trader.canceled_order(ts, symbols[1], True, 0.03, 0.0, ts + 3 * HOUR_MS))
        at(day0 + 5, lambda ts: self._orders_at_once(ts, symbols[1], burst()))
        at(gap_day - 7, lambda ts: trader.order(ts, symbols[0], False, 0.05, 0.0, False, False, 1), midnight=True)
        at(gap_day - 2, lambda ts: trader.canceled_order(ts, symbols[0], True, 0.03, 0.4, ts + 90 * MINUTE_MS, 2))
        at(gap_day - 1, lambda ts: trader.fill_order(ts, pair, True, 0.01))
        # after the gap: midnight fills one and seven days apart (one of them a burst), the
        # token sold in a burst and the rest withdrawn, more canceled orders
        at(after, lambda ts: trader.order(ts, symbols[2], True, 0.03, 0.0, False, False, 2), midnight=True)
        at(after + 1, lambda ts: trader.order(ts, symbols[0], True, 0.04, 0.0, True, False, burst()), midnight=True)
        at(after + 2, lambda ts: trader.fill_order(ts, pair, False, 0.5, parts=burst()))
        at(after + 3, lambda ts: trader.canceled_order(ts, symbols[2], True, 0.02, 0.6, ts + DAY_MS // 2))
        at(after + 4, lambda ts: trader.canceled_order(ts, symbols[1], True, 0.02, 0.0, ts + 10 * MINUTE_MS))
        at(after + 5, lambda ts: trader.transfer(ts, False, token, trader.ledger.free[token] - WITHDRAW_FEES[token]))
        at(after + 7, lambda ts: trader.order(ts, symbols[0], False, 0.05, 0.0, False, False, 1), midnight=True)

    def _orders_at_once(self, ts: int, symbol: str, fills: int) -> None:
        """Several orders of the same market in the same millisecond, ``fills`` fills in all."""
        while fills > 0:
            got = self.trader.order(ts, symbol, True, 0.02, 0.0, False, False, min(fills, int(self.rng.integers(2, 4))))
            if not got:
                return
            fills -= got

    def squeeze(self, ts: int) -> int:
        """Where an ordinary event at ``ts`` happens instead: the whole history is compressed
        around the gap, so the order of events is kept and none falls inside it."""
        gap_start, gap_end = self.gap
        span = self.anchor - self.start
        moved = self.start + (ts - self.start) * (span - (gap_end - gap_start)) // span
        return moved if moved < gap_start else moved + gap_end - gap_start

    def finish(self) -> None:
        """Part of what is free at the end goes to the funding account (a second account type),
        on the exchanges that have one for ccxt to read (crypto.com Exchange v1 has one wallet)."""
        ledger = self.trader.ledger
        if self.trader.dialect not in FUNDING_DIALECTS:
            return
        for asset in ("USDT", "BTC"):
            amount = int(ledger.free[asset] * float(self.rng.uniform(0.15, 0.4))) // 100 * 100
            if amount:
                ledger.move_to_funding(asset, amount)


def generate(ledger: Ledger, book: PriceBook, dialect: str, tag: str, seed: int, index: int,
             fills: int, days: int, anchor_ms: int, open_orders: int | None = None,
             scenarios: bool = False) -> Trader:
    """Fill ``ledger`` with ``days`` of history ending at ``anchor_ms``; exactly ``fills`` fills.

    ``open_orders`` resting orders are left at the end (default: 2 to 5, drawn from the seed);
    each holds back a share of what is free, so a few may be skipped when an asset runs dry.
    ``scenarios`` adds the ``Scenarios`` cases, whose fills come on top of ``fills``.
    """
    rng = np.random.default_rng([seed, index, 0x415])
    trader = Trader(ledger, book, dialect, tag)
    start = anchor_ms - days * DAY_MS
    symbols = DIALECT_SYMBOLS[dialect]
    plan = Scenarios(trader, seed, index, start, anchor_ms) if scenarios else None
    steps = plan.steps if plan else []

    def squeeze(ts: int) -> int:
        return plan.squeeze(ts) if plan else ts

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
    events += [(squeeze(int(t)), 0, i) for i, t in enumerate(dep_times)]
    events += [(squeeze(int(t)) // 1000 * 1000, 2, i) for i, t in enumerate(wd_times)]

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
    events += [(squeeze(int(t)), 1, i) for i, t in enumerate(times)]
    events += [(ts, 3, k) for k, (ts, _) in enumerate(steps)]
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
        elif kind == 3:
            steps[i][1]()
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
    if plan:
        plan.finish()
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
