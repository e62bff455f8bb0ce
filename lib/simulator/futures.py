"""A USDT-margined perpetual futures account (Bitunix's): margin, positions and realised P&L.

The spot ``Ledger`` moves base and quote on every fill; a futures account holds only its
margin coin. Here a buy opens or adds to a long position (margin = cost / ``LEVERAGE``), a
sell reduces it and books the realised P&L against the average entry; every fee is paid in
USDT. Balances are the wallet (opening balance + realised P&L - fees) split into available,
frozen by resting orders and held as position margin, so they are always the sum of the
history. Money moved into the futures account is not visible through Bitunix's futures API
(no transfer records), so the opening balance is not a deposit; the ground truth says so by
listing none.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lib.simulator.ledger import Fill, Ledger, Order, Position
from lib.simulator.market import DAY_MS, HOUR_MS, MARKETS, MINUTE_MS, SATS, PriceBook

#: the dialects whose accounts are futures accounts
FUTURES_DIALECTS = ("bitunix",)
LEVERAGE = 2
#: fee rates in parts per million (Bitunix futures: maker 0.02 %, taker 0.06 %)
MAKER_PPM, TAKER_PPM = 200, 600
#: the spot markets whose prices the perpetuals follow, and how often each is traded
SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "BNB/USDT")
WEIGHTS = np.array([0.4, 0.3, 0.2, 0.1])
MARGIN_COIN = "USDT"


def perpetual(spot: str) -> str:
    """The unified symbol of the linear perpetual on a spot market: BTC/USDT -> BTC/USDT:USDT."""
    return f"{spot}:{MARKETS[spot].quote}"


@dataclass(slots=True)
class PositionStats:
    """What a position did while open: fees, realised P&L, its largest size and how it closed."""

    position: Position
    basis: int = 0  # entry cost of the open size, sats USDT
    fee: int = 0
    realized: int = 0
    max_size: int = 0
    closed_size: int = 0
    close_cost: int = 0
    updated: int = 0


@dataclass
class FuturesLedger(Ledger):
    """One futures account; ``positions`` are the open ones, ``closed`` the history."""

    wallet: int = 0
    frozen: int = 0
    closed: list[PositionStats] = field(default_factory=list)
    #: perpetual symbol -> the open position's stats
    stats: dict[str, PositionStats] = field(default_factory=dict)
    #: fill seq -> (position seq, realised P&L of the fill)
    booked: dict[int, tuple[int, int]] = field(default_factory=dict)

    @property
    def margin(self) -> int:
        return sum(s.basis for s in self.stats.values()) // LEVERAGE

    @property
    def available(self) -> int:
        return self.wallet - self.margin - self.frozen

    def size(self, symbol: str) -> int:
        stats = self.stats.get(symbol)
        return stats.position.size if stats else 0

    def apply_order(self, order: Order, fills: list[Fill]) -> None:
        for fill in fills:
            self._apply_fill(fill)
            self.fills.append(fill, fill.seq, fill.ts)
            self.fills_by_symbol[fill.symbol].append(fill, fill.seq, fill.ts)
        self.orders.append(order, order.seq, order.ts)
        self.orders_by_symbol[order.symbol].append(order, order.seq, order.ts)

    def _apply_fill(self, fill: Fill) -> None:
        stats = self.stats.get(fill.symbol)
        if fill.buy:
            if stats is None:
                stats = PositionStats(Position(self.next_seq(), fill.ts, fill.symbol, 0, 0))
                self.stats[fill.symbol] = stats
                self.positions.append(stats.position)
            stats.basis += fill.cost
            stats.position.size += fill.amount
            realized = 0
        else:
            if stats is None or fill.amount > stats.position.size:
                raise ValueError(f"a sell of {fill.amount} exceeds the {fill.symbol} position")
            entry_cost = stats.basis * fill.amount // stats.position.size
            realized = fill.cost - entry_cost
            stats.basis -= entry_cost
            stats.position.size -= fill.amount
            stats.closed_size += fill.amount
            stats.close_cost += fill.cost
        self.wallet += realized - fill.fee
        stats.fee += fill.fee
        stats.realized += realized
        stats.max_size = max(stats.max_size, stats.position.size)
        stats.updated = fill.ts
        size = stats.position.size
        stats.position.entry = stats.basis * SATS // size if size else stats.position.entry
        self.booked[fill.seq] = (stats.position.seq, realized)
        if size == 0:
            del self.stats[fill.symbol]
            self.positions.remove(stats.position)
            self.closed.append(stats)
        if self.available < 0:
            raise ValueError("the futures account's available balance would become negative")

    def apply_open_order(self, order: Order) -> None:
        """A resting limit buy freezes the margin it would need."""
        self.frozen += order.amount * order.price // SATS // LEVERAGE
        if self.available < 0:
            raise ValueError("the futures account's available balance would become negative")
        self.open_orders.append(order)

    def balances(self) -> dict[str, tuple[int, int]]:
        return {MARGIN_COIN: (self.available, self.margin + self.frozen)}


class FuturesTrader:
    """Books orders on perpetuals the account can afford (the futures twin of ``history.Trader``)."""

    symbols = SYMBOLS

    def __init__(self, ledger: FuturesLedger, book: PriceBook) -> None:
        self.ledger = ledger
        self.book = book

    def _size(self, ts: int, spot: str, buy: bool, frac: float, dev: float) -> tuple[int, int]:
        market, ledger = MARKETS[spot], self.ledger
        price = self.book.price_sats(spot, ts, 1.0 + dev)
        if buy:
            amount = int(ledger.available * frac) * LEVERAGE * SATS // price
        else:
            held = ledger.size(perpetual(spot))
            amount = int(held * min(1.0, frac * 12))
            amount = held if held - amount < held // 10 else amount
        return amount - amount % market.step, price

    def order(self, ts: int, symbol: str, buy: bool, frac: float, dev: float, maker: bool, bnb: bool,
              parts: int) -> int:
        """One filled order of up to ``parts`` fills (``bnb`` is spot's and ignored); returns its fills.

        Tries the intended side, then the other, then every market, as ``history.Trader`` does.
        """
        attempts = [(symbol, buy), (symbol, not buy)] + [(s, b) for s in self.symbols for b in (True, False)]
        for spot, side in attempts:
            amount, price = self._size(ts, spot, side, frac, dev)
            if amount:
                return self._book(ts, spot, side, amount, price, maker, parts)
        return 0

    def fill_order(self, ts: int, symbol: str, buy: bool, frac: float, bnb: bool = False, parts: int = 1) -> int:
        amount, price = self._size(ts, symbol, buy, frac, 0.0)
        if not amount:
            raise ValueError(f"nothing to {'buy' if buy else 'sell'} on {symbol}")
        return self._book(ts, symbol, buy, amount, price, False, parts)

    def _book(self, ts: int, spot: str, buy: bool, amount: int, price: int, maker: bool, parts: int,
              ordered: int | None = None, canceled_at: int | None = None) -> int:
        market, ledger, symbol = MARKETS[spot], self.ledger, perpetual(spot)
        steps = amount // market.step
        parts = max(1, min(parts, steps))
        order = Order(ledger.next_seq(), ts, symbol, buy, price, amount if ordered is None else ordered,
                      update_ts=ts if canceled_at is None else canceled_at, canceled=canceled_at is not None)
        ppm = MAKER_PPM if maker else TAKER_PPM
        fills = []
        for i in range(parts):
            size = (steps // parts + (1 if i < steps % parts else 0)) * market.step
            cost = size * price // SATS
            fills.append(Fill(ledger.next_seq(), order.seq, ts, symbol, buy, size, price, cost,
                              cost * ppm // 1_000_000, MARGIN_COIN, maker))
            order.filled += size
            order.cost += cost
        ledger.apply_order(order, fills)
        return len(fills)

    def canceled_order(self, ts: int, spot: str, frac: float, filled_share: float, canceled_at: int) -> int:
        """A limit buy of which ``filled_share`` filled before it was canceled; returns its fills."""
        amount, price = self._size(ts, spot, True, frac, 0.0)
        step = MARKETS[spot].step
        filled = int(amount * filled_share) // step * step
        if filled:
            return self._book(ts, spot, True, filled, price, True, 1, amount, canceled_at)
        ledger = self.ledger
        ledger.apply_order(Order(ledger.next_seq(), ts, perpetual(spot), True, price, amount,
                                 update_ts=canceled_at, canceled=True), [])
        return 0

    def open_order(self, ts: int, spot: str, frac: float, distance: float) -> None:
        amount, price = self._size(ts, spot, True, frac, -distance)
        if amount:
            self.ledger.apply_open_order(Order(self.ledger.next_seq(), ts, perpetual(spot), True, price, amount,
                                               update_ts=ts, is_open=True))


def _times(rng: np.random.Generator, n: int, start: int, anchor: int, scenarios: bool) -> list[int]:
    """Order times; with ``scenarios`` none falls in a quiet gap of 11 to 14 days and some fall
    exactly on UTC midnights."""
    times = np.sort(rng.integers(start + HOUR_MS, anchor - MINUTE_MS, n)).tolist()
    if not scenarios:
        return times
    span = anchor - start
    gap_start = (start + span * 3 // 10) // DAY_MS * DAY_MS
    gap = int(rng.integers(11, 15)) * DAY_MS
    squeezed = [start + (t - start) * (span - gap) // span for t in times]
    moved = [t if t < gap_start else t + gap for t in squeezed]
    for k in range(1, n, max(1, n // 4)):
        moved[k] = max(start + HOUR_MS, moved[k] // DAY_MS * DAY_MS)
    return sorted(moved)


def generate(ledger: Ledger, book: PriceBook, dialect: str, tag: str, seed: int, index: int, fills: int,
             days: int, anchor_ms: int, open_orders: int | None = None, scenarios: bool = False) -> FuturesTrader:
    """A futures history of exactly ``fills`` fills ending at ``anchor_ms`` (``history.generate``'s
    signature; ``ledger`` must be a ``FuturesLedger``). ``scenarios`` adds a quiet gap, fills on
    UTC midnights, bursts of fills in one millisecond and canceled orders (their fills on top)."""
    assert isinstance(ledger, FuturesLedger), "a futures history needs a FuturesLedger"
    rng = np.random.default_rng([seed, index, 0xB17])
    start = anchor_ms - days * DAY_MS
    trader = FuturesTrader(ledger, book)
    ledger.wallet = int(rng.integers(50_000, 500_000)) * SATS
    sizes = rng.choice(np.array([1, 1, 1, 2, 2, 3]), size=max(1, fills))
    if scenarios:
        sizes[rng.choice(len(sizes), size=min(3, len(sizes)), replace=False)] = rng.integers(5, 10, min(3, len(sizes)))
    cum = np.cumsum(sizes)
    n_orders = int(np.searchsorted(cum, fills)) + 1 if fills else 0
    times = _times(rng, n_orders, start, anchor_ms, scenarios)
    picks = rng.choice(len(SYMBOLS), size=n_orders, p=WEIGHTS)
    sells, fracs = rng.random(n_orders) < 0.45, rng.uniform(0.01, 0.12, n_orders)
    devs, makers = rng.normal(0, 4e-4, n_orders), rng.random(n_orders) < 0.4
    #: order index -> (filled share, minutes until canceled) of a canceled order placed right after it
    cancels = {n_orders // 3: (0.0, 10), 2 * n_orders // 3: (0.5, 180)} if scenarios else {}
    made = 0
    for i in range(n_orders):
        want = min(int(sizes[i]), fills - made)
        if want > 0:
            made += trader.order(times[i], SYMBOLS[picks[i]], not sells[i], float(fracs[i]), float(devs[i]),
                                 bool(makers[i]), False, want)
        if i in cancels:
            share, minutes = cancels[i]
            trader.canceled_order(times[i], SYMBOLS[i % 2], 0.03, share, times[i] + minutes * MINUTE_MS)
    while made < fills:
        got = trader.order(anchor_ms - MINUTE_MS, SYMBOLS[made % len(SYMBOLS)], made % 2 == 0, 0.05, 0.0, False,
                           False, 1)
        if not got:
            raise RuntimeError("simulated futures account ran out of margin")
        made += got
    count = int(rng.integers(2, 6)) if open_orders is None else open_orders
    for k in range(count):
        trader.open_order(anchor_ms - int(rng.integers(HOUR_MS, 2 * DAY_MS)), SYMBOLS[k % len(SYMBOLS)],
                          min(0.08, 0.5 / max(1, count)), float(rng.uniform(0.03, 0.1)))
    return trader

