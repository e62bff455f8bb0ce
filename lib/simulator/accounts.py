"""Simulated accounts: configuration, derived credentials, lazy histories, ground truth.

Credentials are derived from the seed at run time (HMAC of seed and account index) so
no key is ever written down, and the same seed always yields the same accounts.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from lib.simulator.history import Trader, generate, live_fills
from lib.simulator.ledger import Fill, Ledger, Order, Position, Transfer
from lib.simulator.market import DAY_MS, MARKETS, SATS, PriceBook, to_float

#: every dialect the simulator speaks; without an explicit list, accounts alternate between the
#: first two (the demo's exchanges)
DIALECTS = ("binance", "okx", "cryptocom", "bybit")
DEFAULT_DIALECTS = ("binance", "okx")
#: (swap symbol, signed contracts (scaled by account index / 2), days before the history's end it was entered)
DEMO_POSITIONS = (("BTC/USDT:USDT", 40.0, 6), ("ETH/USDT:USDT", -25.0, 2))


@dataclass(frozen=True)
class SimulatorConfig:
    """Everything that shapes the simulated world; equal configs give equal worlds."""

    seed: int = 1
    accounts: int = 3
    days: int = 90
    fills_per_account: int = 500
    latency_ms: float = 0.0
    fault_rate: float = 0.0
    dialects: Sequence[str] | None = None
    #: end of every history (ms); default: start of the current UTC day
    anchor_ms: int | None = None
    #: resting orders per account (default: 2 to 5 drawn from the seed); more than 100 makes
    #: OKX page them
    open_orders: int | None = None
    #: each OKX account also holds perpetual positions (DEMO_POSITIONS), so the demo's
    #: Orders & positions page has some; off by default, tests open their own
    positions: bool = False
    #: each history also holds the hard cases of ``history.Scenarios`` (a quiet gap of 11+ days,
    #: same-millisecond bursts, fills on UTC midnights, a token that comes and goes, canceled
    #: orders, a funding balance); needs ``days`` >= 40. Off: histories are exactly as without it
    scenarios: bool = False

    def dialect_of(self, index: int) -> str:
        """Dialect of the 1-based account ``index``: the given list, else alternating."""
        if self.dialects:
            dialect = self.dialects[(index - 1) % len(self.dialects)]
            if dialect not in DIALECTS:
                raise ValueError(f"unknown dialect {dialect!r}; known: {', '.join(DIALECTS)}")
            return dialect
        return DEFAULT_DIALECTS[(index - 1) % len(DEFAULT_DIALECTS)]


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class SimAccount:
    """One exchange account of the simulator and the credentials ccxt needs for it."""

    id: str
    index: int
    dialect: str
    api_key: str
    secret: str = field(repr=False)
    password: str | None = field(default=None, repr=False)
    base_url: str = ""

    @property
    def api_url(self) -> str:
        """The base URL to give ccxt (``lib.exchanges.override_api_urls`` convention)."""
        return f"{self.base_url}/{self.dialect}"

    def credentials(self) -> dict[str, str]:
        creds = {"apiKey": self.api_key, "secret": self.secret}
        if self.password is not None:
            creds["password"] = self.password
        return creds


def _derive(seed: int, index: int, label: str) -> str:
    return hmac.new(f"simulator-seed-{seed}".encode(), f"{index}:{label}".encode(), hashlib.sha256).hexdigest()


def make_account(seed: int, index: int, dialect: str) -> SimAccount:
    key, secret = _derive(seed, index, "key"), _derive(seed, index, "secret")
    if dialect == "okx":
        uuid = f"{key[:8]}-{key[8:12]}-{key[12:16]}-{key[16:20]}-{key[20:32]}"
        password = "Sim-" + _derive(seed, index, "passphrase")[:12]
        return SimAccount(f"okx-{index}", index, dialect, uuid, secret[:32].upper(), password)
    return SimAccount(f"{dialect}-{index}", index, dialect, key, secret)


@dataclass(frozen=True)
class GroundTruth:
    """What an account really holds and did, in (close to) ccxt's unified shapes.

    ``balances`` is the trading account; ``balances_by_type`` holds it as "trading" and, when
    anything was moved there, the funding account as "funding". ``closed_orders`` are every
    finished order, canceled ones with status "canceled".
    """

    account_id: str
    dialect: str
    balances: dict[str, dict[str, float]]
    fills: list[dict[str, Any]]
    open_orders: list[dict[str, Any]]
    closed_orders: list[dict[str, Any]]
    deposits: list[dict[str, Any]]
    withdrawals: list[dict[str, Any]]
    positions: list[dict[str, Any]] = field(default_factory=list)
    balances_by_type: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def fill_truth(fill: Fill) -> dict[str, Any]:
    return {
        "id": fill.trade_id,
        "order": fill.order_id,
        "symbol": fill.symbol,
        "side": "buy" if fill.buy else "sell",
        "amount": to_float(fill.amount),
        "price": to_float(fill.price),
        "cost": to_float(fill.cost),
        "fee": {"cost": to_float(fill.fee), "currency": fill.fee_asset},
        "timestamp": fill.ts,
        "takerOrMaker": "maker" if fill.maker else "taker",
    }


def order_truth(order: Order) -> dict[str, Any]:
    return {
        "id": order.order_id,
        "symbol": order.symbol,
        "side": "buy" if order.buy else "sell",
        "type": "limit",
        "price": to_float(order.price),
        "amount": to_float(order.amount),
        "filled": to_float(order.filled),
        "remaining": to_float(order.amount - order.filled),
        "cost": to_float(order.cost),
        "status": "open" if order.is_open else "canceled" if order.canceled else "closed",
        "timestamp": order.ts,
    }


def transfer_truth(transfer: Transfer) -> dict[str, Any]:
    return {
        "id": transfer.transfer_id,
        "txid": transfer.txid,
        "type": "deposit" if transfer.deposit else "withdrawal",
        "currency": transfer.asset,
        "amount": to_float(transfer.amount),
        "fee": {"cost": to_float(transfer.fee), "currency": transfer.asset},
        "address": transfer.address,
        "status": "pending" if transfer.pending else "ok",
        "timestamp": transfer.ts,
    }


def funding_truth(ledger: Ledger) -> dict[str, dict[str, float]]:
    """The funding account's non-zero balances; nothing there is ever held back by an order."""
    return {asset: {"free": to_float(amount), "used": 0.0, "total": to_float(amount)}
            for asset, amount in sorted(ledger.funding.items()) if amount}


def position_truth(position: Position) -> dict[str, Any]:
    return {
        "symbol": position.symbol,
        "side": "long" if position.size > 0 else "short",
        "contracts": to_float(abs(position.size)),
        "entryPrice": to_float(position.entry),
        "timestamp": position.ts,
    }


class World:
    """All accounts of one simulator; histories are generated on first use."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.anchor_ms = config.anchor_ms if config.anchor_ms is not None else now_ms() // DAY_MS * DAY_MS
        self.start_ms = self.anchor_ms - config.days * DAY_MS
        self.book = PriceBook(config.seed, self.start_ms - DAY_MS, config.days + 1)
        self.accounts = [make_account(config.seed, i, config.dialect_of(i)) for i in range(1, config.accounts + 1)]
        self.by_id = {a.id: a for a in self.accounts}
        self.by_key = {a.api_key: a for a in self.accounts}
        self.revoked: set[str] = set()
        self._traders: dict[str, Trader] = {}
        self._live_rng: dict[str, random.Random] = {}
        self._lock = threading.Lock()

    def account(self, account_id: str) -> SimAccount:
        try:
            return self.by_id[account_id]
        except KeyError:
            raise KeyError(f"no simulated account {account_id!r}") from None

    def trader(self, account_id: str) -> Trader:
        account = self.account(account_id)
        with self._lock:
            trader = self._traders.get(account_id)
            if trader is None:
                cfg = self.config
                trader = generate(Ledger(), self.book, account.dialect, account.id, cfg.seed, account.index,
                                  cfg.fills_per_account, cfg.days, self.anchor_ms, cfg.open_orders, cfg.scenarios)
                if cfg.positions and account.dialect == "okx":
                    for symbol, contracts, days in DEMO_POSITIONS:
                        ts = self.anchor_ms - days * DAY_MS
                        entry = self.book.price_sats(symbol.split(":")[0], ts)
                        trader.ledger.positions.append(
                            Position(trader.ledger.next_seq(), ts, symbol,
                                     round(contracts * account.index / 2 * SATS), entry))
                self._traders[account_id] = trader
                self._live_rng[account_id] = random.Random(f"{cfg.seed}:{account.index}:live")
            return trader

    def ledger(self, account_id: str) -> Ledger:
        return self.trader(account_id).ledger

    def revoke(self, account_id: str) -> None:
        """From now on every request signed with this account's key fails authentication."""
        self.revoked.add(self.account(account_id).id)

    def add_fills(self, account_id: str, n: int) -> list[dict[str, Any]]:
        """``n`` new fills timestamped now (balance-consistent); returns them as truth."""
        trader = self.trader(account_id)
        ledger = trader.ledger
        with ledger.lock:
            before = len(ledger.fills)
            last = ledger.fills.times[-1] if before else 0
            live_fills(trader, self._live_rng[account_id], max(now_ms(), last), n)
            return [fill_truth(f) for f in ledger.fills.items[before:]]

    def trade(self, account_id: str, symbol: str, buy: bool, fraction: float, ts: int | None = None,
              bnb_fee: bool = False) -> list[dict[str, Any]]:
        """One filled order of ``fraction`` of what is free, on exactly this market and side.

        ``ts`` (default now) may not be older than the account's last fill; ``bnb_fee`` pays
        the fee in BNB where the dialect allows it. Returns the new fills as truth.
        """
        ledger = self.ledger(account_id)
        with ledger.lock:
            before = len(ledger.fills)
            when = now_ms() if ts is None else ts
            if before and when < ledger.fills.times[-1]:
                raise ValueError("a fill may not be older than the account's last fill")
            self.trader(account_id).fill_order(when, symbol, buy, fraction, bnb_fee)
            return [fill_truth(f) for f in ledger.fills.items[before:]]

    def add_transfer(self, account_id: str, kind: str, asset: str, amount: float, pending: bool = False,
                     ts: int | None = None) -> dict[str, Any]:
        """A deposit or withdrawal at ``ts`` (default now), possibly still pending; returns its truth.

        A pending deposit is credited by ``complete_transfer``; a withdrawal leaves the
        balance at once, as on the exchanges.
        """
        if kind not in ("deposit", "withdrawal"):
            raise ValueError("kind must be 'deposit' or 'withdrawal'")
        ledger = self.ledger(account_id)
        with ledger.lock:
            records = ledger.deposits if kind == "deposit" else ledger.withdrawals
            when = now_ms() if ts is None else ts
            if records and when < records[-1].ts:
                raise ValueError(f"a {kind} may not be older than the account's last one")
            sats = round(amount * SATS)
            transfer = self.trader(account_id).transfer(when, kind == "deposit", asset, sats, pending)
            return transfer_truth(transfer)

    def complete_transfer(self, account_id: str, transfer_id: str) -> dict[str, Any]:
        """A pending transfer completes now (a deposit is credited); returns its truth."""
        ledger = self.ledger(account_id)
        with ledger.lock:
            for transfer in (*ledger.deposits, *ledger.withdrawals):
                if transfer.transfer_id == transfer_id:
                    ledger.settle(transfer)
                    return transfer_truth(transfer)
        raise KeyError(f"no transfer {transfer_id!r} in {account_id!r}")

    def move_to_funding(self, account_id: str, asset: str, amount: float) -> dict[str, dict[str, float]]:
        """Move ``amount`` of what is free in the trading account to the funding account (an
        internal transfer: no deposit or withdrawal); returns the funding balances."""
        sats = round(amount * SATS)
        if sats <= 0:
            raise ValueError("amount must be positive")
        ledger = self.ledger(account_id)
        with ledger.lock:
            ledger.move_to_funding(asset, sats)
            return funding_truth(ledger)

    def open_position(self, account_id: str, symbol: str, contracts: float,
                      entry_price: float | None = None) -> dict[str, Any]:
        """A derivative position (negative ``contracts``: short), entered now at ``entry_price``
        (default: the spot price of the underlying); returns its truth."""
        base, quote = symbol.split(":")[0].split("/")
        spot = f"{base}/{quote}"
        if spot not in MARKETS:
            raise ValueError(f"no simulated market for {symbol!r}")
        ts = now_ms()
        entry = self.book.price_sats(spot, ts) if entry_price is None else round(entry_price * SATS)
        ledger = self.ledger(account_id)
        with ledger.lock:
            position = Position(ledger.next_seq(), ts, symbol, round(contracts * SATS), entry)
            ledger.positions.append(position)
            return position_truth(position)

    def truth(self, account_id: str) -> GroundTruth:
        account = self.account(account_id)
        ledger = self.ledger(account_id)
        with ledger.lock:
            balances = {
                asset: {"free": to_float(free), "used": to_float(used), "total": to_float(free + used)}
                for asset, (free, used) in ledger.balances().items()
            }
            funding = funding_truth(ledger)
            return GroundTruth(
                account_id=account.id,
                dialect=account.dialect,
                balances=balances,
                fills=[fill_truth(f) for f in ledger.fills.items],
                open_orders=[order_truth(o) for o in ledger.open_orders],
                closed_orders=[order_truth(o) for o in ledger.orders.items],
                deposits=[transfer_truth(t) for t in ledger.deposits],
                withdrawals=[transfer_truth(t) for t in ledger.withdrawals],
                positions=[position_truth(p) for p in ledger.positions],
                balances_by_type={"trading": balances, **({"funding": funding} if funding else {})},
            )
