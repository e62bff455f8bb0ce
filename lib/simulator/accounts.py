"""Simulated accounts: configuration, derived credentials, lazy histories, ledgers, ground truth.

Credentials are derived from the seed at run time (HMAC of seed and account index) so
no key is ever written down, and the same seed always yields the same accounts.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import threading
import time
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from lib.simulator import futures
from lib.simulator.history import Trader, generate, live_fills
from lib.simulator.ledger import Fill, Ledger, Order, Position, Transfer
from lib.simulator.market import DAY_MS, MARKETS, SATS, PriceBook, to_float

#: every dialect the simulator speaks; without an explicit list, accounts alternate between the
#: first two (the demo's exchanges)
DIALECTS = ("binance", "okx", "cryptocom", "bybit", "bitunix", "bitmart")
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
    #: ccxt's ``uid`` where the exchange signs with one (BitMart's memo)
    uid: str | None = field(default=None, repr=False)

    @property
    def api_url(self) -> str:
        """The base URL to give ccxt (``lib.exchanges.override_api_urls`` convention)."""
        return f"{self.base_url}/{self.dialect}"

    def credentials(self) -> dict[str, str]:
        creds = {"apiKey": self.api_key, "secret": self.secret}
        if self.password is not None:
            creds["password"] = self.password
        if self.uid is not None:
            creds["uid"] = self.uid
        return creds


def _derive(seed: int, index: int, label: str) -> str:
    return hmac.new(f"simulator-seed-{seed}".encode(), f"{index}:{label}".encode(), hashlib.sha256).hexdigest()


def make_account(seed: int, index: int, dialect: str) -> SimAccount:
    key, secret = _derive(seed, index, "key"), _derive(seed, index, "secret")
    if dialect == "okx":
        uuid = f"{key[:8]}-{key[8:12]}-{key[12:16]}-{key[16:20]}-{key[20:32]}"
        password = "Sim-" + _derive(seed, index, "passphrase")[:12]
        return SimAccount(f"okx-{index}", index, dialect, uuid, secret[:32].upper(), password)
    if dialect == "bitmart":
        memo = "sim-" + _derive(seed, index, "memo")[:10]
        return SimAccount(f"bitmart-{index}", index, dialect, key, secret, uid=memo)
    return SimAccount(f"{dialect}-{index}", index, dialect, key, secret)


@dataclass(frozen=True)
class GroundTruth:
    """What an account really holds and did, in (close to) ccxt's unified shapes.

    ``balances`` is the trading account; ``balances_by_type`` holds it as "trading" and, when
    anything was moved there, the funding account as "funding". ``closed_orders`` are every
    finished order, canceled ones with status "canceled". ``ledger`` is what ccxt's
    ``fetch_ledger`` reads from the account's default ledger (see ``ledger_truth``);
    ``ledger_by_type`` holds it as "trading" and, where the dialect serves one (OKX's asset
    bills), the funding account's ledger as "funding".
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
    ledger: list[dict[str, Any]] = field(default_factory=list)
    ledger_by_type: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

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


# --- the ledger: every balance change as an exchange books it ------------------------------

#: the dialects whose account ledger is served (Binance's is not simulated)
LEDGER_DIALECTS = ("okx", "bybit", "cryptocom")
#: ids of OKX bills and Bybit transaction-log rows: this base plus the posting's key
LEDGER_ID_BASE = 720_000_000_000_000_000
#: postings one event may book (a key is seq * LEGS + leg)
LEGS = 4


@dataclass(frozen=True, slots=True)
class Posting:
    """One balance change of one asset in one account type, as the exchange books it.

    ``change`` is signed sats with any fee booked in it already taken, ``fee`` the sats of it
    that are fee; ``balance`` is what the account type holds of the asset afterwards, counting
    booked postings only (moves to the funding account are not recorded, so not booked).
    ``key`` orders postings as they were booked and is unique within the account.
    """

    key: int
    ts: int
    asset: str
    change: int
    fee: int
    kind: str
    fill: Fill | None = None
    transfer: Transfer | None = None
    balance: int = 0

    @property
    def gross(self) -> int:
        """The change before the fee taken in it."""
        return self.change + self.fee


class Book:
    """One account type's postings in booking order; keys (and, unless a transfer was added
    with an older time, times) are sorted, so pages are bisected."""

    def __init__(self, postings: list[Posting]) -> None:
        self.items = postings
        self.keys = [p.key for p in postings]
        self.times = [p.ts for p in postings]
        self.times_sorted = all(a <= b for a, b in zip(self.times, self.times[1:], strict=False))

    def select(self, limit: int, key_min: int | None = None, key_max: int | None = None,
               ts_min: int | None = None, ts_max: int | None = None,
               keep: Callable[[Posting], bool] | None = None, oldest: bool = False) -> list[Posting]:
        """Up to ``limit`` postings within the inclusive bounds that ``keep`` accepts, newest
        first; ``oldest`` takes the oldest of them instead (a walk forward), still newest first."""
        i = 0 if key_min is None else bisect_left(self.keys, key_min)
        j = len(self.items) if key_max is None else bisect_right(self.keys, key_max)
        if self.times_sorted:
            i = i if ts_min is None else max(i, bisect_left(self.times, ts_min))
            j = j if ts_max is None else min(j, bisect_right(self.times, ts_max))
        page: list[Posting] = []
        for k in range(i, j) if oldest else range(j - 1, i - 1, -1):
            posting = self.items[k]
            if ((ts_min is not None and posting.ts < ts_min) or (ts_max is not None and posting.ts > ts_max)
                    or (keep is not None and not keep(posting))):
                continue
            page.append(posting)
            if len(page) == limit:
                break
        return page[::-1] if oldest else page


#: one leg of an event: (account type, leg, asset, change, fee, kind)
Leg = tuple[str, int, str, int, int, str]


def _fill_legs(fill: Fill, fee_apart: bool) -> list[Leg]:
    """A fill moves base and quote; its fee is its own entry (crypto.com's TRADE_FEE) or is
    netted into the leg of the asset it is charged in (OKX: "balChg" = "sz" + "fee" in the
    bills example; Bybit: "Change = cashFlow + funding - fee")."""
    market, sign = MARKETS[fill.symbol], 1 if fill.buy else -1
    legs = [[market.base, sign * fill.amount, 0, "trade"], [market.quote, -sign * fill.cost, 0, "trade"]]
    if fill.fee:
        charged = None if fee_apart else next((leg for leg in legs if leg[0] == fill.fee_asset), None)
        if charged is None:
            legs.append([fill.fee_asset, -fill.fee, fill.fee, "fee"])
        else:
            charged[1] = int(charged[1]) - fill.fee
            charged[2] = fill.fee
    return [("trading", n, str(a), int(c), int(f), str(k)) for n, (a, c, f, k) in enumerate(legs)]


def _transfer_legs(transfer: Transfer, dialect: str) -> list[Leg]:
    """A deposit is booked once it is credited, a withdrawal (with its fee) when it leaves.

    crypto.com has one wallet: the deposit and the withdrawal are its own entries. OKX and
    Bybit receive deposits in the funding account and withdraw from it, so the trading account
    (OKX bills, Bybit's UNIFIED transaction log) books a transfer in or out; OKX's asset bills
    book the deposit or withdrawal, the withdrawal fee and the transfer to or from trading.
    """
    if transfer.deposit and transfer.pending:
        return []
    asset, amount, fee = transfer.asset, transfer.amount, transfer.fee
    if dialect == "cryptocom":
        if transfer.deposit:
            return [("trading", 0, asset, amount, 0, "deposit")]
        return [("trading", 0, asset, -(amount + fee), fee, "withdrawal")]
    if transfer.deposit:
        legs: list[Leg] = [("trading", 0, asset, amount, 0, "transfer_in")]
        if dialect == "okx":
            legs += [("funding", 1, asset, amount, 0, "deposit"), ("funding", 2, asset, -amount, 0, "to_trading")]
        return legs
    legs = [("trading", 0, asset, -(amount + fee), 0, "transfer_out")]
    if dialect == "okx":
        legs += [("funding", 1, asset, amount + fee, 0, "from_trading"),
                 ("funding", 2, asset, -amount, 0, "withdrawal")]
        if fee:
            legs.append(("funding", 3, asset, -fee, fee, "withdrawal_fee"))
    return legs


def postings(ledger: Ledger, dialect: str) -> dict[str, list[Posting]]:
    """Every balance change of ``ledger`` as ``dialect`` books it, per account type, in booking order.

    The one derivation both the dialects' ledger endpoints and ``ledger_truth`` use.
    """
    if dialect not in LEDGER_DIALECTS:
        return {}
    events: list[tuple[int, Fill | None, Transfer | None, list[Leg]]] = []
    for fill in ledger.fills.items:
        events.append((fill.seq, fill, None, _fill_legs(fill, dialect == "cryptocom")))
    for transfer in (*ledger.deposits, *ledger.withdrawals):
        events.append((transfer.seq, None, transfer, _transfer_legs(transfer, dialect)))
    events.sort(key=lambda e: e[0])
    booked: dict[str, list[Posting]] = {"trading": [], **({"funding": []} if dialect == "okx" else {})}
    held: dict[tuple[str, str], int] = defaultdict(int)
    for seq, fill, transfer, legs in events:
        ts = fill.ts if fill is not None else transfer.ts if transfer is not None else 0
        for account, leg, asset, change, fee, kind in legs:
            held[account, asset] += change
            booked[account].append(Posting(seq * LEGS + leg, ts, asset, change, fee, kind, fill, transfer,
                                           held[account, asset]))
    return booked


#: posting kind -> the type ccxt 4.5.90 reports. OKX: parse_ledger_entry_type of the bill type,
#: with the trading account's table also for asset bills (so a deposit, asset bill type 1,
#: reads "transfer" and a withdrawal, type 2, "trade"); Bybit: TRADE, TRANSFER_IN/OUT;
#: crypto.com: TRADING, TRADE_FEE, and the on-chain journal types it does not map
CCXT_LEDGER_TYPES: dict[str, dict[str, str]] = {
    "okx": {"trade": "trade", "transfer_in": "transfer", "transfer_out": "transfer", "deposit": "transfer",
            "withdrawal": "trade", "to_trading": "131", "from_trading": "130", "withdrawal_fee": "221"},
    "bybit": {"trade": "trade", "transfer_in": "transaction", "transfer_out": "transaction"},
    "cryptocom": {"trade": "trade", "fee": "fee", "deposit": "ONCHAIN_DEPOSIT", "withdrawal": "ONCHAIN_WITHDRAWAL"},
}


def ledger_entry_truth(dialect: str, posting: Posting) -> dict[str, Any]:
    """One posting as ccxt's ``fetch_ledger`` reports it (amount absolute, sign as direction).

    The ``id`` is ccxt's: the bill id on OKX, the log id on Bybit, and the ORDER id on
    crypto.com (ccxt reads ``order_id``; the unique ``journal_id`` stays in ``info``), so a
    crypto.com fill's entries share one id and a transfer's is None. ``referenceId`` is the
    order id on OKX (``ordId``; None on asset bills), the trade id on crypto.com, None on Bybit.
    """
    fill = posting.fill
    if dialect == "cryptocom":
        entry_id = fill.order_id if fill else None
        reference = fill.trade_id if fill else None
    else:
        entry_id = str(LEDGER_ID_BASE + posting.key)
        reference = fill.order_id if dialect == "okx" and fill else None
    direction = "in" if posting.change > 0 else "out" if posting.change < 0 else None if dialect == "okx" else "in"
    return {
        "id": entry_id,
        "currency": posting.asset,
        "amount": to_float(abs(posting.change)),
        "direction": direction,
        "type": CCXT_LEDGER_TYPES[dialect][posting.kind],
        "timestamp": posting.ts,
        "referenceId": reference,
    }


def ledger_truth(dialect: str, books: dict[str, Book]) -> dict[str, list[dict[str, Any]]]:
    """Each served ledger (account type -> entries in booking order) as ccxt reports it."""
    return {account: [ledger_entry_truth(dialect, p) for p in book.items] for account, book in books.items()}


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
        self._books: dict[str, tuple[tuple[int, ...], dict[str, Book]]] = {}
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
                is_futures = account.dialect in futures.FUTURES_DIALECTS  # a margin account, not spot wallets
                trader = (futures.generate if is_futures else generate)(
                    futures.FuturesLedger() if is_futures else Ledger(), self.book, account.dialect, account.id,
                    cfg.seed, account.index, cfg.fills_per_account, cfg.days, self.anchor_ms, cfg.open_orders,
                    cfg.scenarios)
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

    def books(self, account_id: str) -> dict[str, Book]:
        """The account's ledgers per account type (``postings``), rebuilt only after the history
        changed: a new fill or transfer, or a pending deposit credited."""
        account, ledger = self.account(account_id), self.ledger(account_id)
        with ledger.lock:
            version = (len(ledger.fills), len(ledger.deposits), len(ledger.withdrawals),
                       *(t.seq for t in ledger.deposits if t.pending))
            cached = self._books.get(account_id)
            if cached is None or cached[0] != version:
                cached = version, {k: Book(v) for k, v in postings(ledger, account.dialect).items()}
                self._books[account_id] = cached
            return cached[1]

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
            ledgers = ledger_truth(account.dialect, self.books(account_id))
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
                ledger=ledgers.get("trading", []),
                ledger_by_type=ledgers,
            )
