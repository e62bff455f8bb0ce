"""Syncing one connector: balances per account type, history streams, open orders, positions, prices.

Every exchange call goes through ``call_with_retry``; every database call goes through the
run's single writer thread (``Shared.db``), so hundreds of connectors can fetch at once
while SQLite still sees one writer. History (fills, closed orders, deposits, withdrawals) is
walked by ``lib.sync.walk`` under the rules of ``lib.capabilities``; each window commits with
its cursor (windows of many connectors share a commit, ``Db``), so a crash loses at most the
windows in flight and the next sync resumes there.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import ssl
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

import ccxt

from lib import exchanges
from lib.capabilities import ExchangeRules, StreamRules, history_rules
from lib.exchanges import ConnectionSpec
from lib.models import Base, Candle, Order, Position, Ticker, Trade, to_decimal, utcnow
from lib.prices import marks_from_tickers, price_path, price_source
from lib.sync import rows, store
from lib.sync.markets import MarketShare
from lib.sync.walk import Stream, Walker

T = TypeVar("T")

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
CANDLE_TIMEFRAME = "1d"
#: streams of one connector walked at once (ccxt's throttle still spaces the requests)
STREAM_CONCURRENCY = 4
THROTTLE_POLL_SECONDS = 0.02
#: database calls committed together at most (``Db``): a crash loses at most these windows
MAX_BATCH = 64
RETRY_ATTEMPTS = 8
RETRY_BASE_DELAY = 0.25
RETRY_MAX_DELAY = 10.0
#: how an exchange refuses positions to a key that may not see them (spot-only keys often
#: may not); anything else, a server error or a malformed answer, fails the sync as usual
POSITION_REFUSALS = (ccxt.PermissionDenied, ccxt.AuthenticationError, ccxt.NotSupported)
#: a transfer or order still unsettled after this long no longer holds its stream's cursor
#: back: an exchange status ccxt leaves unmapped (Binance's "rejected", OKX's "frozen") might
#: never change, and every later sync would re-read everything after it
UNSETTLED_HOLD_MS = 30 * DAY_MS
#: how an exchange refuses a ticker request it cannot answer (a symbol or a mix of market
#: types it does not take); each symbol is then asked for alone
TICKER_REFUSALS = (ccxt.BadRequest, ccxt.NotSupported, ccxt.ArgumentsRequired)
#: what a key may be refused when it reads an account type besides the default one
ACCOUNT_TYPE_REFUSALS = (ccxt.PermissionDenied, ccxt.AuthenticationError, ccxt.NotSupported, ccxt.BadRequest,
                         ccxt.BadSymbol)


class Db:
    """One thread for every database call of a run: writes never contend, the loop never blocks.

    Calls queued while the thread is busy run together: consecutive ``store.batchable`` ones in
    one transaction (``store.batch``, at most ``MAX_BATCH``), so two hundred connectors pay for
    a few commits a second instead of one per window. When a batch fails, it is rolled back as a
    whole and each of its calls runs again alone, so every caller gets its own result or error.
    Other calls (leases, the run's rows) run alone, in the order they were made.
    """

    def __init__(self, max_batch: int = 0) -> None:
        self.max_batch = max_batch or MAX_BATCH
        self.batches = 0  # transactions that ran two calls or more (tests and benchmarks read it)
        self._calls: queue.SimpleQueue[_DbCall | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="sync-db", daemon=True)
        self._thread.start()

    async def __call__(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._calls.put(_DbCall(fn, args, loop, future))
        return await future

    def close(self) -> None:
        self._calls.put(None)
        self._thread.join()

    def _serve(self) -> None:
        waiting: deque[_DbCall | None] = deque()
        while True:
            if not waiting:
                waiting.append(self._calls.get())
            with suppress(queue.Empty):
                while True:
                    waiting.append(self._calls.get_nowait())
            call = waiting.popleft()
            if call is None:
                return
            group = [call]
            while (store.is_batchable(call.fn) and waiting and len(group) < self.max_batch
                   and waiting[0] is not None and store.is_batchable(waiting[0].fn)):
                group.append(waiting.popleft())  # type: ignore[arg-type]
            if len(group) == 1:
                call.run()
            else:
                self._batch(group)

    def _batch(self, group: list[_DbCall]) -> None:
        try:
            with store.batch():
                results = [call.fn(*call.args) for call in group]
        except Exception:  # noqa: BLE001 - every call runs again alone and gets its own outcome
            log.debug("a batch of %d database calls failed; running them one by one", len(group), exc_info=True)
            for call in group:
                call.run()
            return
        self.batches += 1
        for call, result in zip(group, results, strict=True):
            call.settle(result, None)


@dataclass
class _DbCall:
    """One queued database call and the future its caller awaits."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]

    def run(self) -> None:
        try:
            result = self.fn(*self.args)
        except BaseException as error:  # noqa: BLE001 - handed to the caller, raised there
            self.settle(None, error)
        else:
            self.settle(result, None)

    def settle(self, result: Any, error: BaseException | None) -> None:  # noqa: ANN401 - any call's result
        def deliver() -> None:
            if self.future.done():  # the caller was cancelled meanwhile
                return
            if error is not None:
                self.future.set_exception(error)
            else:
                self.future.set_result(result)

        with suppress(RuntimeError):  # the loop is closed: nobody waits any more
            self.loop.call_soon_threadsafe(deliver)


@dataclass
class Shared:
    """What the connectors of one run share: markets, tickers, candles, the DB thread."""

    db: Db
    cash: frozenset[str]
    timeout_ms: int = exchanges.DEFAULT_TIMEOUT_MS
    markets: MarketShare = field(default_factory=MarketShare)
    prices: dict[tuple[str, str], float] = field(default_factory=dict)  # (price source, symbol) -> last
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
class Counts:
    balances: int = 0
    new_trades: int = 0
    new_transfers: int = 0
    new_orders: int = 0
    open_orders: int = 0
    positions: int = 0
    opening_balances: int = 0
    requests: int = 0
    refused: int = 0  # rows with a string longer than its column (``rows.fitting``), left out


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
        # numbers as the exchange wrote them: ccxt's parse_number then returns the string (its
        # safe_* helpers and Precise do their math on strings), which lib.sync.rows keeps as Decimal
        self.exchange.number = str
        # one TLS context per run instead of one per instance (loading CA files costs ~25 ms)
        self.exchange.ssl_context = shared.ssl_context(self.exchange)
        # ccxt's leaky bucket re-checks every 1 ms while a request waits for tokens; with
        # hundreds of instances waiting that polling alone saturates a core
        self.exchange.throttler.config["delay"] = THROTTLE_POLL_SECONDS
        self.key = (spec.exchange_id, spec.api_url, spec.sandbox)
        #: where this connector's tickers and candles are read, stored and valued from
        self.source = price_source(spec.exchange_id, spec.api_url, spec.sandbox)
        self.gate = asyncio.Semaphore(STREAM_CONCURRENCY)
        _counted(self.exchange, counts)

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        return await exchanges.call_with_retry(
            fn, attempts=RETRY_ATTEMPTS, base_delay=RETRY_BASE_DELAY, max_delay=RETRY_MAX_DELAY,
            last_headers=lambda: self.exchange.last_response_headers,
        )

    async def db(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.shared.db(fn, *args)

    def _fitting(self, model: type[Base], table: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows that fit their table; the others are logged and counted, and the sync goes on."""
        kept, refused = rows.fitting(model, table, self.job.connector_id)
        self.counts.refused += refused
        return kept

    async def run(self) -> None:
        job, ex = self.job, self.exchange
        await self.shared.markets.attach(ex, self.key, lambda: self.call(ex.load_markets))
        rules = history_rules(ex)
        holdings = await self._balances(rules)
        cursors = await self.db(store.cursors, job.connector_id)
        walker = Walker(self.call, self._save_stream, int(time.time() * 1000))
        # transfers and the ledger before the symbols: an asset deposited, withdrawn or moved
        # and no longer held still has fills to find where the exchange needs a symbol
        await self._walk_all(walker, [self._stream(rules.streams[kind], None, cursors, walker.now)
                                      for kind in ("deposits", "withdrawals") if rules.streams[kind].supported])
        if rules.streams["ledger"].supported:
            await self._walk_ledger(walker, self._stream(rules.streams["ledger"], None, cursors, walker.now))
        assets, traded = await self.db(store.known_assets_and_symbols, job.connector_id)
        symbols = self._symbols(assets | set(holdings), traded)
        async with asyncio.TaskGroup() as group:  # a failure cancels the others before the sync ends
            group.create_task(self._walk_all(walker, self._streams(rules.streams["trades"], symbols,
                                                                            cursors, walker.now)))
            orders = group.create_task(self._open_orders(symbols))
            positions = group.create_task(self._positions())
        open_orders = orders.result()
        order_streams = [stream for name in ("orders", "canceled")
                         for stream in self._streams(rules.streams[name], symbols, cursors, walker.now)]
        if order_streams:
            for stream in order_streams:  # an order open now may close later: read it again then
                stream.held = _oldest_open(open_orders, stream.symbol, walker.now)
            await self._walk_all(walker, order_streams)
        self.counts.open_orders, self.counts.positions = len(open_orders), positions.result()
        prices = await self._tickers(holdings, {o["symbol"] for o in open_orders if o.get("symbol")})
        await self._candles()
        if job.first_sync:
            await self._opening_balances(holdings, prices)

    # --- balances -----------------------------------------------------------------------

    async def _balances(self, rules: ExchangeRules) -> dict[str, Decimal]:
        """Every account type the rules name, one snapshot time; returns totals over all types.

        The default account must be readable (its failure fails the sync). Another type the
        key may not read is recorded in the coverage map and skipped, so a read-only spot key
        still syncs.
        """
        ex, taken = self.exchange, utcnow()
        holdings: dict[str, Decimal] = {}
        for account_type in rules.balance_types:
            params = {"type": account_type} if account_type else {}
            try:
                balance = await self.call(lambda p=params: ex.fetch_balance(p))
            except ACCOUNT_TYPE_REFUSALS as error:
                if not account_type:
                    raise
                await self.db(store.save_coverage, self.job.connector_id, f"balance:{account_type}", "balance",
                              {"failed_error": exchanges.describe_error(error)})
                continue
            balance, refused = rows.fitting_balance(balance, account_type, self.job.connector_id)
            self.counts.refused += refused
            for asset, amount in (balance.get("total") or {}).items():
                exact = to_decimal(amount or None)  # the exchange's string ("0.00000000" is none held)
                if exact:
                    holdings[asset] = holdings.get(asset, Decimal(0)) + exact
            self.counts.balances += await self.db(store.save_balance, self.job.connector_id, taken, balance,
                                                  account_type)
        return holdings

    # --- history streams ----------------------------------------------------------------

    def _symbols(self, assets: set[str], traded: set[str]) -> list[str]:
        """Markets walked where the exchange needs a symbol: every spot market whose base and
        quote the account holds or held (any account type), moved in a transfer, or traded
        before, plus the connector's extra symbols."""
        markets = self.exchange.markets or {}
        wanted = set(self.job.extra_symbols) | traded
        wanted |= {s for s, m in markets.items() if m.get("spot") and m.get("base") in assets
                   and m.get("quote") in assets}
        return sorted(s for s in wanted if s in markets and rows.too_long(Trade, {"symbol": s}) is None)

    def _streams(self, rules: StreamRules, symbols: list[str], cursors: Mapping[str, str],
                 now: int) -> list[Stream]:
        if not rules.supported:
            return []
        if not rules.symbol_required:
            return [self._stream(rules, None, cursors, now)]
        return [self._stream(rules, symbol, cursors, now) for symbol in symbols]

    def _stream(self, rules: StreamRules, symbol: str | None, cursors: Mapping[str, str], now: int) -> Stream:
        key = f"{rules.name}:{symbol}" if symbol else rules.name
        fetch = getattr(self.exchange, _snake(rules.method))
        stream = Stream(key, rules, symbol, fetch, cursors.get(key))
        recent = now - UNSETTLED_HOLD_MS
        if rules.kind == "ledger":
            stream.identity = rows.ledger_key
        elif rules.kind in ("deposits", "withdrawals"):
            kind = rules.kind[:-1]
            stream.unsettled = lambda t: not _settled(kind, t.get("status")) and int(t["timestamp"]) > recent
        elif rules.kind == "orders":
            stream.unsettled = lambda o: o.get("status") == "open" and int(o["timestamp"]) > recent
        return stream

    async def _walk_ledger(self, walker: Walker, stream: Stream) -> None:
        """The account ledger adds to what the other streams say. An exchange error there (a key
        that may not read it, an account type it does not cover, an endpoint ccxt reads wrongly)
        leaves the ledger out of this sync, with the failed window in the coverage map, and
        the sync goes on; an exchange that cannot be reached fails the sync as usual."""
        try:
            await walker.walk(stream)
        except ccxt.ExchangeError as error:
            log.warning("ledger of connector %s skipped: %s", self.job.connector_id, type(error).__name__)

    async def _walk_all(self, walker: Walker, streams: list[Stream]) -> None:
        async def one(stream: Stream) -> None:
            async with self.gate:
                await walker.walk(stream)

        async with asyncio.TaskGroup() as group:  # a failure cancels the other streams
            for stream in streams:
                group.create_task(one(stream))

    async def _save_stream(self, stream: Stream, found: list[dict[str, Any]], cursor: str | None,
                           coverage: dict[str, Any]) -> int:
        """Rows of one window as database rows, saved with the cursor and the coverage."""
        kind, ex = stream.rules.kind, self.exchange
        if kind == "trades":
            table = [rows.trade_row(ex, t) for t in found]
        elif kind == "orders":
            table = [rows.history_order_row(ex, o) for o in found if o.get("status") != "open"]
        elif kind == "ledger":
            table = [rows.ledger_row(e) for e in found]
        else:
            table = [rows.transfer_row(kind[:-1], t) for t in found]
        table = self._fitting(rows.HISTORY_MODELS[kind], table)
        coverage = {**coverage, "oldest_available": stream.oldest_available(int(time.time() * 1000)),
                    "lookback_source": stream.rules.source}
        added = await self.db(store.save_history, self.job.connector_id, kind, stream.key, table, cursor, coverage)
        if kind == "trades":
            self.counts.new_trades += added
        elif kind == "orders":
            self.counts.new_orders += added
        elif kind in ("deposits", "withdrawals"):
            self.counts.new_transfers += added
        return added

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
        await self.db(store.replace_orders, self.job.connector_id,
                      self._fitting(Order, [rows.open_order_row(o) for o in orders]))
        return orders

    async def _open_order_pages(self, symbol: str | None) -> list[dict[str, Any]]:
        """Every open order (of ``symbol``, or all), also past an exchange's page cap.

        Where the rules name a parameter for it (OKX: ``after``, orders older than an id),
        pages of ``features.spot.fetchOpenOrders.limit`` are read until a short one; ccxt's
        own ``paginate`` pages by time, which such endpoints ignore. Other exchanges answer
        in one call.
        """
        ex = self.exchange
        features = ((ex.features or {}).get("spot") or {}).get("fetchOpenOrders") or {}
        rules = history_rules(ex)
        limit, older_than = features.get("limit"), rules.open_orders_older_than
        base = {} if symbol else dict(rules.open_orders_params)
        if not limit or older_than is None:
            return await self.call(lambda: ex.fetch_open_orders(symbol, None, None, base))
        orders: dict[str, dict[str, Any]] = {}
        params: dict[str, Any] = base
        while True:
            page = await self.call(lambda p=params: ex.fetch_open_orders(symbol, None, limit, p))
            fresh = [o for o in page if str(o["id"]) not in orders]
            orders.update((str(o["id"]), o) for o in fresh)
            if len(page) < limit or not fresh:
                return list(orders.values())
            params = {**base, older_than: str(min(int(o["id"]) for o in page))}

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
        return await self.db(store.replace_positions, self.job.connector_id,
                             self._fitting(Position, [rows.position_row(p) for p in positions]))

    # --- prices -----------------------------------------------------------------------

    async def _tickers(self, holdings: Mapping[str, Decimal], order_symbols: set[str]) -> dict[str, float]:
        """Prices of the markets that value the holdings, and of open orders' markets (the
        Orders page's "Last"); fetched once per price source per run, so a connector with an API
        URL override or in sandbox mode reads (and stores) its own host's prices."""
        ex, cash = self.exchange, self.shared.cash
        markets = ex.markets or {}
        needed = {s for a in holdings for s in (price_path(a, markets, cash) or ())}
        # spot only: OKX's fetch_tickers asks for one instrument type, taken from the first symbol
        needed = sorted(s for s in needed | {s for s in order_symbols if (markets.get(s) or {}).get("spot")}
                        if rows.too_long(Ticker, {"symbol": s}) is None)
        book = self.shared.prices
        async with self.shared.lock("tickers", self.source):
            missing = [s for s in needed if (self.source, s) not in book]
            if missing:
                await self._fetch_tickers(missing)
        return {s: book[(self.source, s)] for s in needed if (self.source, s) in book}

    async def _fetch_tickers(self, symbols: list[str]) -> None:
        """``fetch_tickers`` in batches the exchange accepts (crypto.com: one symbol per call), and
        ``fetch_ticker`` per symbol where there is no batch call or a batch is refused (a market
        of another type in it, a symbol the ticker endpoint does not know). A symbol refused on
        its own is left unpriced, which the pages name, and the sync goes on."""
        ex = self.exchange
        tickers: dict[str, Any] = {}
        if not ex.has.get("fetchTickers"):
            for symbol in symbols:
                tickers.update(await self._one_ticker(symbol))
            return await self._save_tickers(tickers)
        per_call = history_rules(ex).tickers_per_call or len(symbols)
        for i in range(0, len(symbols), per_call):
            batch = symbols[i:i + per_call]
            try:
                tickers.update(await self.call(lambda b=batch: ex.fetch_tickers(b)))
            except TICKER_REFUSALS:
                for symbol in batch:
                    tickers.update(await self._one_ticker(symbol))
        await self._save_tickers(tickers)

    async def _one_ticker(self, symbol: str) -> dict[str, Any]:
        try:
            return {symbol: await self.call(lambda: self.exchange.fetch_ticker(symbol))}
        except TICKER_REFUSALS as error:
            log.warning("no ticker for %s on %s: %s", symbol, self.exchange.id, type(error).__name__)
            return {}

    async def _save_tickers(self, tickers: Mapping[str, Any]) -> None:
        ex = self.exchange
        quotes = []
        for symbol, t in tickers.items():
            bid, ask = (to_decimal(t.get(k) or None) for k in ("bid", "ask"))
            last = to_decimal(t.get("last") or None) or to_decimal(t.get("close") or None) or (
                (bid + ask) / 2 if bid and ask else None)
            if last:
                self.shared.prices[(self.source, symbol)] = float(last)
            quotes.append({"symbol": symbol, "last": last, "bid": bid, "ask": ask, "timestamp": t.get("timestamp")})
        await self.db(store.save_tickers, ex.id, self.source, quotes)

    async def _candles(self) -> None:
        """Daily candles of every market that values an asset P&L needs in the past (see
        ``store.fill_date_ranges``: quotes, fees, transfers, traded bases, holdings); fetched once
        per price source, so each host keeps its own history.

        Only closed days are stored, so a stored candle never changes; fills of the current
        day are valued from tickers.
        """
        ex, cash = self.exchange, self.shared.cash
        if not ex.has.get("fetchOHLCV"):
            return
        if ex.timeframes and CANDLE_TIMEFRAME not in ex.timeframes:
            # past prices then come from tickers only, and pages name what stays unpriced
            log.warning("%s offers no %s candles; past prices are not fetched", ex.id, CANDLE_TIMEFRAME)
            return
        ranges = await self.db(store.fill_date_ranges, self.job.connector_id, cash)
        last_closed = int(time.time() * 1000) // DAY_MS * DAY_MS - DAY_MS
        spans: dict[str, tuple[int, int]] = {}
        for asset, (first, last) in ranges.items():
            for symbol in price_path(asset, ex.markets or {}, cash) or ():
                if rows.too_long(Candle, {"symbol": symbol}) is not None:
                    continue
                old = spans.get(symbol, (first, last))
                spans[symbol] = (min(old[0], first), max(old[1], last))
        for symbol, (first, last) in sorted(spans.items()):
            start, end = first // DAY_MS * DAY_MS, min(last // DAY_MS * DAY_MS, last_closed)
            if start <= end:
                async with self.shared.lock("candles", self.source, symbol):
                    await self._fill_candles(symbol, start, end)

    async def _fill_candles(self, symbol: str, start: int, end: int) -> None:
        span = await self.db(store.candle_span, self.exchange.id, self.source, symbol, CANDLE_TIMEFRAME)
        gaps = [(start, end)] if span is None else [(start, span[0] - DAY_MS), (span[1] + DAY_MS, end)]
        limit = ((self.exchange.features or {}).get("spot") or {}).get("fetchOHLCV", {}).get("limit") or 100
        for since, until in gaps:
            while since <= until:
                candles = await self.call(lambda s=since: self.exchange.fetch_ohlcv(symbol, CANDLE_TIMEFRAME, s, limit))
                candles = [c for c in candles if since <= c[0] <= until]
                if not candles:
                    break
                await self.db(store.save_candles, self.exchange.id, self.source, symbol, CANDLE_TIMEFRAME, candles)
                since = int(candles[-1][0]) + DAY_MS

    # --- first sync ---------------------------------------------------------------------

    async def _opening_balances(self, holdings: Mapping[str, Decimal], prices: Mapping[str, float]) -> None:
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


def _snake(method: str) -> str:
    """ccxt's camelCase method name (``fetchMyTrades``) as its Python attribute (``fetch_my_trades``)."""
    return "".join("_" + c.lower() if c.isupper() else c for c in method)


def _oldest_open(orders: Iterable[Mapping[str, Any]], symbol: str | None, now: int) -> int | None:
    """The creation time of the oldest order open now (of ``symbol``, or any), at most 30 days back."""
    stamps = [int(o["timestamp"]) for o in orders if o.get("timestamp") is not None
              and (symbol is None or o.get("symbol") == symbol) and int(o["timestamp"]) > now - UNSETTLED_HOLD_MS]
    return min(stamps) if stamps else None
