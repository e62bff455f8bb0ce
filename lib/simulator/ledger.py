"""One account's books: fills, orders, transfers and the balances they imply.

Every change goes through ``Ledger.apply_*`` so balances are always the sum of the
history; a change that would make a balance negative is a bug and raises. Records are
kept sorted by id and by time at once so the dialects can page with bisect.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Generic, TypeVar

from lib.simulator.market import MARKETS

T = TypeVar("T")

TRADE_ID_BASE = 100_000_000
ORDER_ID_BASE = 5_000_000_000
BILL_ID_BASE = 700_000_000_000_000_000
TRANSFER_ID_BASE = 900_000_000_000


@dataclass(slots=True)
class Fill:
    seq: int
    order_seq: int
    ts: int
    symbol: str
    buy: bool
    amount: int
    price: int
    cost: int
    fee: int
    fee_asset: str
    maker: bool

    @property
    def trade_id(self) -> str:
        return str(TRADE_ID_BASE + self.seq)

    @property
    def bill_id(self) -> str:
        return str(BILL_ID_BASE + self.seq)

    @property
    def order_id(self) -> str:
        return str(ORDER_ID_BASE + self.order_seq)


@dataclass(slots=True)
class Order:
    seq: int
    ts: int
    symbol: str
    buy: bool
    price: int
    amount: int
    filled: int = 0
    cost: int = 0
    update_ts: int = 0
    is_open: bool = False
    #: ended canceled at ``update_ts`` (partly filled or not at all); it holds nothing back
    canceled: bool = False

    @property
    def order_id(self) -> str:
        return str(ORDER_ID_BASE + self.seq)

    @property
    def locked(self) -> tuple[str, int]:
        """Asset and amount an open limit order holds back (Binance and OKX spot alike)."""
        market = MARKETS[self.symbol]
        if self.buy:
            return market.quote, (self.amount - self.filled) * self.price // 10**8
        return market.base, self.amount - self.filled


@dataclass(slots=True)
class Transfer:
    seq: int
    ts: int
    deposit: bool
    asset: str
    amount: int
    fee: int
    address: str
    txid: str
    #: still in flight: a pending deposit is not credited yet, a pending withdrawal is debited
    pending: bool = False

    @property
    def transfer_id(self) -> str:
        return str(TRANSFER_ID_BASE + self.seq)


@dataclass(slots=True)
class Position:
    """A derivative position (one-way mode); the spot balances do not model its margin."""

    seq: int
    ts: int
    symbol: str
    #: signed size in contracts and entry price, both in sats (1e-8)
    size: int
    entry: int


class Series(Generic[T]):
    """Records in id order whose times never decrease, so id and time ranges are slices."""

    def __init__(self) -> None:
        self.items: list[T] = []
        self.keys: list[int] = []
        self.times: list[int] = []

    def append(self, item: T, key: int, ts: int) -> None:
        if self.keys and (key <= self.keys[-1] or ts < self.times[-1]):
            raise ValueError("records must be appended in id and time order")
        self.items.append(item)
        self.keys.append(key)
        self.times.append(ts)

    def window(
        self,
        key_min: int | None = None,
        key_max: int | None = None,
        ts_min: int | None = None,
        ts_max: int | None = None,
    ) -> tuple[int, int]:
        """Index range [i, j) of records with key and time within the inclusive bounds."""
        i, j = 0, len(self.items)
        if key_min is not None:
            i = max(i, bisect_left(self.keys, key_min))
        if key_max is not None:
            j = min(j, bisect_right(self.keys, key_max))
        if ts_min is not None:
            i = max(i, bisect_left(self.times, ts_min))
        if ts_max is not None:
            j = min(j, bisect_right(self.times, ts_max))
        return i, max(i, j)

    def __len__(self) -> int:
        return len(self.items)


@dataclass
class Ledger:
    """Balances plus the full history; ``lock`` guards every read-modify-write."""

    free: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    used: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    fills: Series[Fill] = field(default_factory=Series)
    fills_by_symbol: dict[str, Series[Fill]] = field(default_factory=lambda: defaultdict(Series))
    orders: Series[Order] = field(default_factory=Series)
    orders_by_symbol: dict[str, Series[Order]] = field(default_factory=lambda: defaultdict(Series))
    open_orders: list[Order] = field(default_factory=list)
    deposits: list[Transfer] = field(default_factory=list)
    withdrawals: list[Transfer] = field(default_factory=list)
    positions: list[Position] = field(default_factory=list)
    #: the second account type (OKX funding, Bybit FUND, ...): asset -> sats moved there by
    #: ``move_to_funding``; ``free`` and ``used`` are the trading account
    funding: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    #: holdings finer than a sat (``hold_exact``): asset -> (free, used) in sats, as Decimals
    exact: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    _seq: int = 0

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _change(self, asset: str, delta: int) -> None:
        value = self.free[asset] + delta
        if value < 0:
            raise ValueError(f"{asset} balance would become negative")
        self.free[asset] = value

    def apply_transfer(self, transfer: Transfer) -> None:
        """Book a transfer; a pending deposit is credited only when it settles."""
        if transfer.deposit:
            if not transfer.pending:
                self._change(transfer.asset, transfer.amount)
            self.deposits.append(transfer)
        else:
            self._change(transfer.asset, -(transfer.amount + transfer.fee))
            self.withdrawals.append(transfer)

    def settle(self, transfer: Transfer) -> None:
        """A pending transfer completes: a deposit is credited now, a withdrawal was already debited."""
        if not transfer.pending:
            raise ValueError(f"transfer {transfer.transfer_id} is not pending")
        transfer.pending = False
        if transfer.deposit:
            self._change(transfer.asset, transfer.amount)

    def apply_order(self, order: Order, fills: list[Fill]) -> None:
        """A finished (filled or canceled) order and its fills; balances move once per fill."""
        market = MARKETS[order.symbol]
        for fill in fills:
            if fill.buy:
                self._change(market.quote, -fill.cost)
                self._change(market.base, fill.amount)
            else:
                self._change(market.base, -fill.amount)
                self._change(market.quote, fill.cost)
            self._change(fill.fee_asset, -fill.fee)
            self.fills.append(fill, fill.seq, fill.ts)
            self.fills_by_symbol[fill.symbol].append(fill, fill.seq, fill.ts)
        self.orders.append(order, order.seq, order.ts)
        self.orders_by_symbol[order.symbol].append(order, order.seq, order.ts)

    def apply_open_order(self, order: Order) -> None:
        """A resting limit order: its funds move from free to used."""
        asset, amount = order.locked
        self._change(asset, -amount)
        self.used[asset] += amount
        self.open_orders.append(order)

    def move_to_funding(self, asset: str, amount: int) -> None:
        """An internal transfer from trading to funding: the account's total does not change."""
        self._change(asset, -amount)
        self.funding[asset] += amount

    def hold_exact(self, asset: str, free: str, used: str = "0") -> None:
        """The exchange reports ``asset`` with more decimals than a sat (an 18-decimal token, up
        to 28 significant digits), and no fill or transfer explains it (an airdrop, say). Every
        dialect serves it as the exchange's decimal strings, digit for digit (``market.fmt``)."""
        self.exact[asset] = (Decimal(free).scaleb(8), Decimal(used).scaleb(8))

    def balances(self) -> dict[str, tuple[int | Decimal, int | Decimal]]:
        """Asset -> (free, used) for every asset the account ever held (sats; a fractional
        Decimal of sats where ``hold_exact`` holds finer amounts)."""
        held: dict[str, tuple[int | Decimal, int | Decimal]] = {}
        for asset in sorted(set(self.free) | set(self.used) | set(self.exact)):
            free, used = self.free.get(asset, 0), self.used.get(asset, 0)
            finer = self.exact.get(asset)
            held[asset] = (free, used) if finer is None else (free + finer[0], used + finer[1])
        return held
