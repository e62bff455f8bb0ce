"""Syncing one connector: balance, fills, transfers, open orders, positions, prices.

Every exchange call goes through ``call_with_retry``; every database call goes through the
run's single writer thread (``Shared.db``), so hundreds of connectors can fetch at once
while SQLite still sees one writer. Rows are committed page by page, so a crash loses at
most the page in flight and the next sync resumes from the committed cursors.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import ccxt
import ccxt.async_support as ccxt_async

from lib import exchanges
from lib.exchanges import ConnectionSpec
from lib.models import utcnow
from lib.prices import marks_from_tickers, price_path
from lib.sync import store
from lib.sync.fills import FillSync
from lib.sync.markets import MarketShare

T = TypeVar("T")

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
CANDLE_TIMEFRAME = "1d"
TRANSFER_WINDOW_MS = 90 * DAY_MS
EMPTY_WINDOWS_TO_STOP = 2
THROTTLE_POLL_SECONDS = 0.02
RETRY_ATTEMPTS = 8
RETRY_BASE_DELAY = 0.25
RETRY_MAX_DELAY = 10.0
#: how an exchange refuses positions to a key that may not see them (spot-only keys often
#: may not); anything else, a server error or a malformed answer, fails the sync as usual
POSITION_REFUSALS = (ccxt.PermissionDenied, ccxt.AuthenticationError, ccxt.NotSupported)
#: a transfer still unsettled after this long no longer holds the transfer cursor back: an
#: exchange status ccxt leaves unmapped (Binance's "rejected", OKX's "frozen") might never
#: change, and every later sync would re-read everything after it
UNSETTLED_HOLD_MS = 30 * DAY_MS


class Db:
    """One thread for every database call of a run: writes never contend, the loop never blocks."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-db")

    async def __call__(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        self._executor.shutdown(wait=True)


@dataclass
class Shared:
    """What the connectors of one run share: markets, tickers, candles, the DB thread."""

    db: Db
    cash: frozenset[str]
    timeout_ms: int = exchanges.DEFAULT_TIMEOUT_MS
    markets: MarketShare = field(default_factory=MarketShare)
    prices: dict[tuple[tuple[str, str | None, bool], str], float] = field(default_factory=dict)
    _locks: dict[tuple[str, ...], asyncio.Lock] = field(default_factory=dict)
    _ssl: dict[str | None, ssl.SSLContext] = field(default_factory=dict)

    def ssl_context(self, exchange: Any) -> ssl.SSLContext | bool:
        if not exchange.verify:
            return False
        if exchange.cafile not in self._ssl:
            self._ssl[exchange.cafile] = ssl.create_default_context(cafile=exchange.cafile)
        return self._ssl[exchange.cafile]

    def lock(self, *key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())


@dataclass(frozen=True)
class Job:
    """A connector as read at the start of a run (credentials decrypted, memory only)."""

    connector_id: int
    client: str
    exchange_id: str
    label: str
    spec: ConnectionSpec | None
    problem: BaseException | None  # unsupported exchange or undecryptable credentials
    extra_symbols: tuple[str, ...]
    first_sync: bool


@dataclass
class _TransferWalk:
    """One kind of transfer walked back from ``end`` in windows, down to ``floor`` (the cursor)."""

    kind: str
    fetch: Callable[..., Awaitable[list[dict[str, Any]]]]
    floor: int | None
    started: int  # when the walk began: "now" for the unsettled age
    end: int  # where the walk goes on from; starts at ``started``
    seen: set[str] = field(default_factory=set)
    newest: int | None = None  # newest timestamp seen + 1
    unsettled: int | None = None  # oldest timestamp of a transfer whose status can still change
    added: int = 0

    def cursor(self) -> int | None:
        """The next sync's floor: past the newest transfer, but never past an unsettled one."""
        if self.newest is None or self.unsettled is None:
            return self.newest
        return min(self.newest, self.unsettled)


@dataclass
class Counts:
    balances: int = 0
    new_trades: int = 0
    new_transfers: int = 0
    open_orders: int = 0
    positions: int = 0
    opening_balances: int = 0
    requests: int = 0


def _counted(exchange: Any, counts: Counts) -> None:
    """Count requests, and turn a body that is not JSON into a retryable BadResponse.

    ccxt hands a non-JSON 200 body back as text, which the parsers would read as an empty
    page; an empty page would end pagination early, so it must not pass as one.
    """
    fetch = exchange.fetch

    async def counting_fetch(*args: Any, **kwargs: Any) -> Any:
        counts.requests += 1
        response = await fetch(*args, **kwargs)
        if isinstance(response, (str, bytes)):
            raise ccxt.BadResponse(f"{exchange.id} answered with a body that is not JSON")
        return response

    exchange.fetch = counting_fetch


class ConnectorSync:
    def __init__(self, job: Job, shared: Shared, counts: Counts) -> None:
        assert job.spec is not None
        self.job = job
        self.shared = shared
        self.counts = counts
        spec = job.spec
        self.exchange = exchanges.build_async_exchange(ConnectionSpec(
            spec.exchange_id, spec.credentials, spec.api_url, spec.sandbox, shared.timeout_ms))
        self.exchange.options["warnOnFetchOpenOrdersWithoutSymbol"] = False
        # one TLS context per run instead of one per instance (loading CA files costs ~25 ms)
        self.exchange.ssl_context = shared.ssl_context(self.exchange)
        # ccxt's leaky bucket re-checks every 1 ms while a request waits for tokens; with
        # hundreds of instances waiting that polling alone saturates a core
        self.exchange.throttler.config["delay"] = THROTTLE_POLL_SECONDS
        self.key = (spec.exchange_id, spec.api_url, spec.sandbox)
        _counted(self.exchange, counts)

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        return await exchanges.call_with_retry(
            fn, attempts=RETRY_ATTEMPTS, base_delay=RETRY_BASE_DELAY, max_delay=RETRY_MAX_DELAY,
            last_headers=lambda: self.exchange.last_response_headers,
        )

    async def db(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.shared.db(fn, *args)

    async def run(self) -> None:
        job, ex = self.job, self.exchange
        await self.shared.markets.attach(ex, self.key, lambda: self.call(ex.load_markets))
        balance = await self.call(ex.fetch_balance)
        holdings = {a: float(v) for a, v in (balance.get("total") or {}).items() if v}
        self.counts.balances = await self.db(store.save_balance, job.connector_id, utcnow(), balance)
        cursors = await self.db(store.cursors, job.connector_id)
        # transfers before the symbols: an asset deposited or withdrawn and no longer held
        # still has fills to find where the exchange needs a symbol per fills query
        walks = [w for w in (self._transfer_walk("deposit", cursors), self._transfer_walk("withdrawal", cursors)) if w]
        oldest_fill = await self.db(store.oldest_fill, job.connector_id)
        async with asyncio.TaskGroup() as group:  # a failure cancels the other walk before the sync ends
            for walk in walks:
                group.create_task(self._walk_transfers(walk, oldest_fill))
        assets, traded = await self.db(store.known_assets_and_symbols, job.connector_id)
        symbols = self._fill_symbols(assets | set(holdings), traded)
        fills = FillSync(ex, self.call, self._save_trades, self._save_cursor, cursors)
        async with asyncio.TaskGroup() as group:
            trades = group.create_task(fills.run(symbols))
            orders = group.create_task(self._open_orders(symbols))
            positions = group.create_task(self._positions())
        oldest_fill = await self.db(store.oldest_fill, job.connector_id)
        async with asyncio.TaskGroup() as group:
            for walk in walks:
                group.create_task(self._finish_transfers(walk, oldest_fill))
        self.counts.new_trades = trades.result()
        self.counts.new_transfers = sum(w.added for w in walks)
        self.counts.open_orders, self.counts.positions = len(orders.result()), positions.result()
        prices = await self._tickers(holdings, {o["symbol"] for o in orders.result() if o.get("symbol")})
        await self._candles()
        if job.first_sync:
            await self._opening_balances(holdings, prices)

    # --- fills ------------------------------------------------------------------------

    def _fill_symbols(self, assets: set[str], traded: set[str]) -> list[str]:
        """Where to ask for fills when the exchange needs a symbol (see lib.sync.fills)."""
        markets = self.exchange.markets or {}
        wanted = set(self.job.extra_symbols) | traded
        wanted |= {s for s, m in markets.items() if m.get("spot") and m.get("base") in assets
                   and m.get("quote") in assets}
        return sorted(s for s in wanted if s in markets)

    async def _save_trades(self, rows: list[dict[str, Any]], cursor: dict[str, str]) -> int:
        return await self.db(store.save_trades, self.job.connector_id, rows, cursor)

    async def _save_cursor(self, cursor: dict[str, str]) -> None:
        await self.db(store.save_cursor, self.job.connector_id, cursor)

    # --- transfers --------------------------------------------------------------------

    def _transfer_walk(self, kind: str, cursors: Mapping[str, str]) -> _TransferWalk | None:
        method = "fetchDeposits" if kind == "deposit" else "fetchWithdrawals"
        if not self.exchange.has.get(method):
            return None
        key = f"{kind}s"
        fetch = self.exchange.fetch_deposits if kind == "deposit" else self.exchange.fetch_withdrawals
        floor = int(cursors[key]) if key in cursors else None
        now = int(time.time() * 1000)
        return _TransferWalk(kind, fetch, floor, started=now, end=now)

    async def _walk_transfers(self, walk: _TransferWalk, oldest_fill: int | None) -> None:
        """Deposits or withdrawals newer than the cursor, walked back in bounded time windows.

        Exchanges cap a history query's time range (Binance: 90 days, and the last 90 days
        when none is given), so the walk goes back one ``TRANSFER_WINDOW_MS`` at a time: down
        to the cursor, or without one until two windows in a row are empty and older than
        the account's first fill. Windows overlap by 1 ms (ids de-duplicated) because some
        exchanges treat the upper bound as exclusive.
        """
        empty_windows = 0
        while True:
            start = walk.end - TRANSFER_WINDOW_MS + 1
            if walk.floor is not None:
                start = max(start, walk.floor)
            found = await self._transfer_window(walk, start, walk.end)
            walk.end = start
            if walk.floor is not None and start <= walk.floor:
                return
            empty_windows = 0 if found else empty_windows + 1
            if empty_windows >= EMPTY_WINDOWS_TO_STOP and (oldest_fill is None or start <= oldest_fill):
                return

    async def _finish_transfers(self, walk: _TransferWalk, oldest_fill: int | None) -> None:
        """Walk further back if fills turned out older than where the first walk stopped; save the cursor.

        Without a cursor the walk runs before the fills are known (their symbols depend on
        the transfer currencies), so it may have stopped above the first fill.
        """
        if walk.floor is None and oldest_fill is not None and oldest_fill < walk.end:
            await self._walk_transfers(walk, oldest_fill)
        cursor = walk.cursor()
        if cursor is not None and cursor != walk.floor:
            await self.db(store.save_cursor, self.job.connector_id, {f"{walk.kind}s": str(cursor)})

    async def _transfer_window(self, walk: _TransferWalk, start: int, end: int) -> int:
        """Every transfer in [start, end]: newest-first pages, each ending at the last one's time.

        The next page's ``until`` is the oldest time on the page + 1: some exchanges (OKX's
        ``after``) exclude it, and transfers sharing that millisecond must not be skipped.
        """
        found, until = 0, end
        while True:
            items = await self.call(lambda u=until: walk.fetch(None, start, None, {"until": u}))
            fresh = [t for t in items if t.get("timestamp") is not None and start <= int(t["timestamp"]) <= end
                     and _transfer_id(t) not in walk.seen]
            if not fresh:
                return found
            found += len(fresh)
            walk.seen.update(_transfer_id(t) for t in fresh)
            rows = [_transfer_row(walk.kind, t) for t in fresh]
            walk.added += await self.db(store.save_transfers, self.job.connector_id, rows, {})
            stamps = [int(t["timestamp"]) for t in fresh]
            walk.newest = max(max(stamps) + 1, walk.newest or 0)
            for t in fresh:
                stamp = int(t["timestamp"])
                if not _settled(walk.kind, t.get("status")) and stamp > walk.started - UNSETTLED_HOLD_MS:
                    walk.unsettled = stamp if walk.unsettled is None else min(walk.unsettled, stamp)
            until = min(stamps) + 1

    # --- open orders and positions ------------------------------------------------------

    async def _open_orders(self, symbols: Iterable[str]) -> list[dict[str, Any]]:
        """Replace the stored open orders with the exchange's; returns them."""
        ex = self.exchange
        if not ex.has.get("fetchOpenOrders"):
            return []
        features = (ex.features or {}).get("spot") or {}
        if (features.get("fetchOpenOrders") or {}).get("symbolRequired"):
            orders = []
            for symbol in symbols:
                orders += await self._open_order_pages(symbol)
        else:
            orders = await self._open_order_pages(None)
        await self.db(store.replace_orders, self.job.connector_id, [_order_row(o) for o in orders])
        return orders

    async def _open_order_pages(self, symbol: str | None) -> list[dict[str, Any]]:
        """Every open order (of ``symbol``, or all), also past an exchange's page cap.

        The OKX family answers at most ``features.spot.fetchOpenOrders.limit`` (100) newest
        orders and pages with ``after`` (orders older than an order id); ccxt's own
        ``paginate`` pages by time, which OKX's open orders ignore. Other exchanges answer
        in one call.
        """
        ex = self.exchange
        features = ((ex.features or {}).get("spot") or {}).get("fetchOpenOrders") or {}
        limit = features.get("limit")
        if not limit or not isinstance(ex, ccxt_async.okx):
            return await self.call(lambda: ex.fetch_open_orders(symbol))
        orders: dict[str, dict[str, Any]] = {}
        params: dict[str, str] = {}
        while True:
            page = await self.call(lambda p=params: ex.fetch_open_orders(symbol, None, limit, p))
            fresh = [o for o in page if str(o["id"]) not in orders]
            orders.update((str(o["id"]), o) for o in fresh)
            if len(page) < limit or not fresh:
                return list(orders.values())
            params = {"after": str(min(int(o["id"]) for o in page))}

    async def _positions(self) -> int:
        """Positions wherever the exchange has them and lists contract markets; replaced each sync.

        Whether the account trades derivatives is not known from spot fills, so the listing
        decides. A key that may not see positions (spot-only keys often may not) skips them
        for this sync, keeping the stored ones, instead of failing the whole connector; a
        refusal is not retried, network errors are. ccxt.binance raises its -2015 ("invalid
        key, IP, or permissions for action") as DDoSProtection once the key has worked in
        this session, so that one counts as a refusal too; a real ban (418/429) does not.
        """
        ex = self.exchange
        if not ex.has.get("fetchPositions") or not any(m.get("contract") for m in (ex.markets or {}).values()):
            return 0

        async def fetch() -> list[dict[str, Any]] | None:
            try:
                return await ex.fetch_positions()
            except (*POSITION_REFUSALS, ccxt.DDoSProtection) as error:
                if isinstance(error, ccxt.DDoSProtection) and '"code":-2015' not in str(error).replace(" ", ""):
                    raise
                log.warning("positions of connector %s skipped: %s", self.job.connector_id, type(error).__name__)
                return None

        positions = await self.call(fetch)
        if positions is None:
            return 0
        return await self.db(store.replace_positions, self.job.connector_id, [_position_row(p) for p in positions])

    # --- prices -----------------------------------------------------------------------

    async def _tickers(self, holdings: Mapping[str, float], order_symbols: set[str]) -> dict[str, float]:
        """Prices of the markets that value the holdings, and of open orders' markets (the
        Orders page's "Last"); fetched once per exchange per run."""
        ex, cash = self.exchange, self.shared.cash
        markets = ex.markets or {}
        needed = {s for a in holdings for s in (price_path(a, markets, cash) or ())}
        # spot only: OKX's fetch_tickers asks for one instrument type, taken from the first symbol
        needed = sorted(needed | {s for s in order_symbols if (markets.get(s) or {}).get("spot")})
        book = self.shared.prices
        async with self.shared.lock("tickers", *map(str, self.key)):
            missing = [s for s in needed if (self.key, s) not in book]
            if missing:
                await self._fetch_tickers(missing)
        return {s: book[(self.key, s)] for s in needed if (self.key, s) in book}

    async def _fetch_tickers(self, symbols: list[str]) -> None:
        ex = self.exchange
        if ex.has.get("fetchTickers"):
            tickers = await self.call(lambda: ex.fetch_tickers(symbols))
        else:
            tickers = {}
            for symbol in symbols:
                tickers[symbol] = await self.call(lambda s=symbol: ex.fetch_ticker(s))
        rows = []
        for symbol, t in tickers.items():
            bid, ask = t.get("bid"), t.get("ask")
            last = t.get("last") or t.get("close") or ((bid + ask) / 2 if bid and ask else None)
            if last:
                self.shared.prices[(self.key, symbol)] = float(last)
            rows.append({"symbol": symbol, "last": last, "bid": bid, "ask": ask, "timestamp": t.get("timestamp")})
        await self.db(store.save_tickers, ex.id, rows)

    async def _candles(self) -> None:
        """Daily candles of every market that values an asset P&L needs in the past (see
        ``store.fill_date_ranges``: quotes, fees, transfers, traded bases, holdings); fetched once.

        Only closed days are stored, so a stored candle never changes; fills of the current
        day are valued from tickers.
        """
        ex, cash = self.exchange, self.shared.cash
        if not ex.has.get("fetchOHLCV"):
            return
        ranges = await self.db(store.fill_date_ranges, self.job.connector_id, cash)
        last_closed = int(time.time() * 1000) // DAY_MS * DAY_MS - DAY_MS
        spans: dict[str, tuple[int, int]] = {}
        for asset, (first, last) in ranges.items():
            for symbol in price_path(asset, ex.markets or {}, cash) or ():
                old = spans.get(symbol, (first, last))
                spans[symbol] = (min(old[0], first), max(old[1], last))
        for symbol, (first, last) in sorted(spans.items()):
            start, end = first // DAY_MS * DAY_MS, min(last // DAY_MS * DAY_MS, last_closed)
            if start <= end:
                async with self.shared.lock("candles", ex.id, symbol):
                    await self._fill_candles(symbol, start, end)

    async def _fill_candles(self, symbol: str, start: int, end: int) -> None:
        span = await self.db(store.candle_span, self.exchange.id, symbol, CANDLE_TIMEFRAME)
        gaps = [(start, end)] if span is None else [(start, span[0] - DAY_MS), (span[1] + DAY_MS, end)]
        limit = ((self.exchange.features or {}).get("spot") or {}).get("fetchOHLCV", {}).get("limit") or 100
        for since, until in gaps:
            while since <= until:
                candles = await self.call(lambda s=since: self.exchange.fetch_ohlcv(symbol, CANDLE_TIMEFRAME, s, limit))
                candles = [c for c in candles if since <= c[0] <= until]
                if not candles:
                    break
                await self.db(store.save_candles, self.exchange.id, symbol, CANDLE_TIMEFRAME, candles)
                since = int(candles[-1][0]) + DAY_MS

    # --- first sync ---------------------------------------------------------------------

    async def _opening_balances(self, holdings: Mapping[str, float], prices: Mapping[str, float]) -> None:
        explained = await self.db(store.explained_holdings, self.job.connector_id)
        amounts = store.unexplained(holdings, explained)
        usd = marks_from_tickers(prices, amounts, usd_like=self.shared.cash)
        self.counts.opening_balances = await self.db(
            store.book_opening_balances, self.job.connector_id, amounts, usd, int(time.time() * 1000))

    async def close(self) -> None:
        await self.exchange.close()


def _settled(kind: str, status: str | None) -> bool:
    """Whether a transfer's status is final, so later syncs need not look at it again.

    A deposit counts once credited (``ok``) or once it failed or was cancelled; any other
    status (``pending``, or an exchange's own unmapped code) may still change, for at most
    ``UNSETTLED_HOLD_MS``. A withdrawal leaves the balance at once and only ``pending`` may
    still fail. No status at all is taken as final, or such an exchange would be re-read
    from its first transfer forever.
    """
    if kind == "deposit":
        return status in (None, "ok", "failed", "canceled")
    return status != "pending"


def _transfer_id(t: Mapping[str, Any]) -> str:
    return str(t.get("id") or t.get("txid"))


def _transfer_row(kind: str, t: Mapping[str, Any]) -> dict[str, Any]:
    fee = t.get("fee") or {}
    return {
        "transfer_id": _transfer_id(t), "type": kind, "timestamp": int(t["timestamp"]),
        "currency": t["currency"], "amount": float(t.get("amount") or 0.0),
        "fee_cost": float(fee.get("cost") or 0.0), "fee_currency": fee.get("currency"),
        "status": t.get("status"), "txid": t.get("txid"),
    }


def _order_row(o: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "order_id": str(o["id"]), "timestamp": o.get("timestamp"), "symbol": o["symbol"], "side": o["side"],
        "type": o.get("type"), "price": o.get("price"), "amount": float(o.get("amount") or 0.0),
        "filled": float(o.get("filled") or 0.0), "remaining": o.get("remaining"), "status": o.get("status"),
    }


def _position_row(p: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "symbol": p["symbol"], "side": p.get("side"), "contracts": p.get("contracts"),
        "contract_size": p.get("contractSize"), "entry_price": p.get("entryPrice"),
        "mark_price": p.get("markPrice"), "notional": p.get("notional"),
        "unrealized_pnl": p.get("unrealizedPnl"), "leverage": p.get("leverage"),
        "liquidation_price": p.get("liquidationPrice"), "timestamp": p.get("timestamp"),
    }

