"""Fetching every fill exactly once, incrementally, per exchange's way of paging.

Strategies (chosen by ``strategy_for``):

* ``trade-id`` (Binance family). ``myTrades`` needs a symbol, returns at most 1000 rows and
  with ``startTime`` only accepts a 24 h window, so walking time from an unknown account
  opening would cost thousands of calls. Trade ids rise monotonically per symbol, so we
  page forward with ``fromId`` (0 on the first sync = the very first fill), one cursor per
  symbol (``trades:BTC/USDT`` = last trade id), saved with each page. A second sync asks
  ``fromId=last+1`` once per symbol and gets nothing old back.
  Symbols: every spot market whose base and quote the account holds or held (current and
  past balance snapshots, transfer currencies), markets traded before, and the connector's
  ``extra_symbols``. A market traded and fully exited before the first sync, with neither
  asset left in the account, is only found when the user adds it to ``extra_symbols``.
* ``bill-id`` (OKX family). ``fills-history`` (3 months) is newest-first, 100 per call,
  paged by ``billId`` with ``after`` (older than) and ``before`` (newer than). The cursor
  (``trades`` = newest billId) bounds the next sync to ``before=cursor``. A full page splits
  the remaining interval in two on its lowest and highest billId, so the result is complete
  whether the exchange answers a bounded query with the newest or the oldest rows of the
  interval. Pages are saved as they arrive; the cursor moves only after the last one.
* ``time`` (any other exchange): the unified ``since``/``until`` parameters, newest-first
  pages walked backwards with an inclusive ``until`` (ids de-duplicated), bounded below by
  the cursor (``trades`` or ``trades:SYMBOL`` = newest fill time + 1).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import ccxt.async_support as ccxt_async

Call = Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]]
SaveTrades = Callable[[list[dict[str, Any]], dict[str, str]], Awaitable[int]]
SaveCursor = Callable[[dict[str, str]], Awaitable[None]]

#: per-symbol requests of one connector in flight at once (ccxt's throttle still applies)
SYMBOL_CONCURRENCY = 4


def strategy_for(exchange: Any) -> str:
    if isinstance(exchange, ccxt_async.binance):
        return "trade-id"
    if isinstance(exchange, ccxt_async.okx):
        return "bill-id"
    return "time"


def symbol_required(exchange: Any, market_type: str = "spot") -> bool:
    features = (exchange.features or {}).get(market_type) or {}
    return bool((features.get("fetchMyTrades") or {}).get("symbolRequired"))


def page_limit(exchange: Any, market_type: str = "spot") -> int | None:
    features = (exchange.features or {}).get(market_type) or {}
    return (features.get("fetchMyTrades") or {}).get("limit")


def trade_row(exchange: Any, trade: Mapping[str, Any]) -> dict[str, Any]:
    """A unified ccxt trade as a ``trades`` row (without the connector id)."""
    symbol = trade["symbol"]
    market = exchange.markets.get(symbol) if exchange.markets else None
    base, _, quote = symbol.partition("/")
    if market:
        base, quote = market["base"], market["quote"]
    fee = trade.get("fee") or {}
    amount, price = float(trade["amount"]), float(trade["price"])
    cost = trade.get("cost")
    return {
        "trade_id": str(trade["id"]),
        "order_id": str(trade["order"]) if trade.get("order") is not None else None,
        "timestamp": int(trade["timestamp"]),
        "symbol": symbol,
        "base": base,
        "quote": quote.split(":")[0],
        "side": trade["side"],
        "taker_or_maker": trade.get("takerOrMaker"),
        "amount": amount,
        "price": price,
        "cost": float(cost) if cost is not None else amount * price,
        "fee_cost": float(fee.get("cost") or 0.0),
        "fee_currency": fee.get("currency"),
    }


@dataclass
class FillSync:
    """One connector's fill sync: the exchange, how to call it, and how to save."""

    exchange: Any
    call: Call
    save: SaveTrades
    save_cursor: SaveCursor
    cursors: Mapping[str, str]

    async def run(self, symbols: Iterable[str]) -> int:
        """Fetch and save every fill newer than the cursors; returns how many were new."""
        strategy = strategy_for(self.exchange)
        if strategy == "bill-id":
            return await self._by_bill_id()
        per_symbol = symbol_required(self.exchange)
        if strategy == "time" and not per_symbol:
            return await self._by_time(None)
        page = self._by_trade_id if strategy == "trade-id" else self._by_time
        gate = asyncio.Semaphore(SYMBOL_CONCURRENCY)

        async def one(symbol: str) -> int:
            async with gate:
                return await page(symbol)

        return sum(await asyncio.gather(*(one(s) for s in sorted(symbols))))

    def _rows(self, trades: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        return [trade_row(self.exchange, t) for t in trades]

    async def _by_trade_id(self, symbol: str) -> int:
        key = f"trades:{symbol}"
        last = self.cursors.get(key)
        limit = page_limit(self.exchange) or 1000
        added = 0
        while True:
            from_id = int(last) + 1 if last is not None else 0
            trades = await self.call(lambda f=from_id: self.exchange.fetch_my_trades(
                symbol, None, limit, {"fromId": f}))
            trades = [t for t in trades if int(t["id"]) >= from_id]
            if not trades:
                return added
            last = str(max(int(t["id"]) for t in trades))
            added += await self.save(self._rows(trades), {key: last})
            if len(trades) < limit:
                return added

    async def _by_bill_id(self) -> int:
        key = "trades"
        limit = page_limit(self.exchange) or 100
        cursor = int(self.cursors[key]) if key in self.cursors else None
        newest = cursor
        intervals: list[tuple[int | None, int | None]] = [(cursor, None)]  # (newer than, older than)
        added = 0
        while intervals:
            low, high = intervals.pop()
            params = {k: str(v) for k, v in (("before", low), ("after", high)) if v is not None}
            trades = await self.call(lambda p=params: self.exchange.fetch_my_trades(None, None, limit, p))
            bills = [(int(t["info"]["billId"]), t) for t in trades]
            inside = [(b, t) for b, t in bills if (low is None or b > low) and (high is None or b < high)]
            if not inside:
                continue
            added += await self.save(self._rows(t for _, t in inside), {})
            ids = [b for b, _ in inside]
            newest = max(ids) if newest is None else max(newest, *ids)
            if len(trades) >= limit:
                intervals.append((low, min(ids)))
                if low is not None:
                    intervals.append((max(ids), high))
        if newest is not None and newest != cursor:
            await self.save_cursor({key: str(newest)})
        return added

    async def _by_time(self, symbol: str | None) -> int:
        key = f"trades:{symbol}" if symbol else "trades"
        since = int(self.cursors[key]) if key in self.cursors else None
        limit = page_limit(self.exchange)
        seen: set[str] = set()
        newest, until, added = since, None, 0
        while True:
            params = {"until": until} if until is not None else {}
            trades = await self.call(lambda p=params: self.exchange.fetch_my_trades(symbol, since, limit, p))
            fresh = [t for t in trades if str(t["id"]) not in seen]
            if not fresh:
                break
            seen.update(str(t["id"]) for t in fresh)
            added += await self.save(self._rows(fresh), {})
            stamps = [int(t["timestamp"]) for t in fresh]
            newest = max(stamps) + 1 if newest is None else max(newest, max(stamps) + 1)
            if limit and len(trades) < limit:
                break
            until = min(stamps)
        if newest is not None and newest != since:
            await self.save_cursor({key: str(newest)})
        return added
