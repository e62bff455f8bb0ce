"""Walking one history stream from the oldest row the exchange keeps to now, resumably.

A stream is one connector's fills, closed orders, deposits or withdrawals (per symbol where
the exchange needs one). How it is paged comes from ``lib.capabilities`` (ccxt's metadata and
the override table), never from the exchange's class:

* ``time``: windows no longer than the exchange allows, walked forward from the cursor (or
  from the exchange's look-back on the first sync) to now, with an explicit start and end on
  every request, so an exchange's default window never decides what is fetched. Inside a
  window, a full page narrows the range to the side the rows are missing from (both sides
  when the page order is unknown) and the range's edge is read again: rows sharing the edge's
  millisecond are kept, duplicates dropped by the exchange's id. A short or empty page ends a
  range, never the history. Consecutive windows overlap by 1 ms, so inclusive and exclusive
  bounds both lose nothing. Each window's rows, the cursor and the coverage commit together.
* ``id``: ids that rise per symbol (Binance ``fromId``/``orderId``) are paged forward from the
  first id; each page commits with its cursor (the last id).
* ``bill-id``: OKX's newest-first bill ids, split into intervals until every interval is
  exhausted; the cursor (newest bill id) moves after the last page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import ccxt

from lib.capabilities import DAY_MS, DEFAULT_LOOKBACK_DAYS, StreamRules
from lib.exchanges import describe_error

Call = Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]]
#: rows, cursor value (or None to keep it), coverage fields -> rows that were new
Save = Callable[["Stream", list[dict[str, Any]], str | None, dict[str, Any]], Awaitable[int]]
#: an incremental walk starts this long before the cursor: rows an exchange indexes a little
#: late are still found, and the exchange's ids drop the ones already stored
REREAD_MS = 5 * 60_000


class HistoryError(ccxt.ExchangeError):
    """The exchange answered in a way that cannot be walked completely (e.g. more rows in one
    millisecond than one page holds); the stream stops at its last committed window."""


def row_time(row: Mapping[str, Any]) -> int:
    stamp = row.get("timestamp")
    if stamp is None:
        raise ccxt.BadResponse("the exchange sent a history row without a timestamp")
    return int(stamp)


def row_id(row: Mapping[str, Any]) -> str:
    ident = row.get("id") or row.get("txid")
    if ident is None:
        raise ccxt.BadResponse("the exchange sent a history row without an id")
    return str(ident)


@dataclass
class Stream:
    """One walk: what to read, how the exchange pages it, and where the last walk stopped."""

    key: str  # cursor and coverage key: "trades", "trades:BTC/USDT", "orders", "deposits", ...
    rules: StreamRules
    symbol: str | None
    fetch: Callable[..., Awaitable[list[dict[str, Any]]]]  # ccxt unified method (symbol, since, limit, params)
    cursor: str | None
    #: a row's identity for de-duplication: the exchange's id, unless the stream names another
    identity: Callable[[Mapping[str, Any]], str] = row_id
    #: whether a row may still change (an order still open, a transfer still pending): the
    #: cursor never passes it, so the next walk reads it again
    unsettled: Callable[[Mapping[str, Any]], bool] = lambda row: False
    added: int = 0
    held: int | None = field(default=None, init=False)  # time (time paging) or id - 1 (id paging)

    def hold(self, rows: Sequence[Mapping[str, Any]], by_id: bool = False) -> None:
        marks = [int(row_id(r)) - 1 if by_id else row_time(r) for r in rows if self.unsettled(r)]
        if marks:
            self.held = min(marks) if self.held is None else min(self.held, *marks)

    def oldest_available(self, now: int) -> int | None:
        days = self.rules.days_back
        return None if days is None else now - int(days * DAY_MS)


@dataclass
class Walker:
    call: Call
    save: Save
    now: int

    async def walk(self, stream: Stream) -> int:
        paging = stream.rules.paging
        if paging == "id":
            await self._by_id(stream)
        elif paging == "bill-id":
            await self._by_bill_id(stream)
        else:
            await self._by_time(stream)
        return stream.added

    # --- time windows -------------------------------------------------------------------

    def start_of(self, stream: Stream) -> int:
        """Where the walk begins: just before the cursor, else the oldest the exchange keeps."""
        if stream.cursor is not None:
            return max(0, int(stream.cursor) - REREAD_MS)
        oldest = stream.oldest_available(self.now)
        return oldest if oldest is not None else self.now - DEFAULT_LOOKBACK_DAYS * DAY_MS

    async def _by_time(self, stream: Stream) -> None:
        window = stream.rules.window_ms
        start = self.start_of(stream)
        coverage: dict[str, Any] = {"fetched_from": start}
        while True:
            end = self.now if window is None else min(self.now, start + window - 1)
            try:
                rows = await self._window(stream, start, end)
            except Exception as error:
                await self._failed(stream, start, end, error)
                raise
            stream.hold(rows)
            cursor = end if stream.held is None else min(end, stream.held)
            if end >= self.now:
                coverage["complete"] = True
            stream.added += await self.save(stream, rows, str(cursor), {**coverage, "fetched_to": end})
            coverage = {}
            if end >= self.now:
                return
            start = end - 1

    async def _window(self, stream: Stream, start: int, end: int) -> list[dict[str, Any]]:
        """Every row in [start, end]: ranges narrowed on full pages until each is exhausted."""
        rules = stream.rules
        rows: dict[str, dict[str, Any]] = {}
        ranges = [(start, end)]
        while ranges:
            low, high = ranges.pop()
            params = {**rules.params, rules.until_param: high}
            if rules.since_param:
                params[rules.since_param] = low
            page = await self.call(lambda lo=low, p=params: stream.fetch(stream.symbol, lo, rules.limit, p))
            inside = [r for r in page if low <= row_time(r) <= high]
            keyed = [(stream.identity(r), r) for r in inside]  # once per row: a ledger key is a digest
            fresh = [r for key, r in keyed if key not in rows]
            rows.update((key, r) for key, r in keyed if key not in rows)
            # with the page size unknown, any new row may mean more: narrow until none comes
            full = len(page) >= rules.limit if rules.limit else bool(fresh)
            if not full:
                continue
            if not fresh:
                # the one side rows could be missing from made no progress inside the range
                if inside and rules.newest_first is not None:
                    raise HistoryError(f"more than {len(page)} rows share a millisecond; "
                                       "the exchange cannot page past them")
                continue
            # the edge's millisecond is read again (1 ms wider, for exclusive bounds such as
            # OKX's before/after), so rows sharing it across the page edge are all kept
            stamps = [row_time(r) for r in inside]
            if rules.newest_first is not False:
                ranges.append((low, min(stamps) + 1))
            if rules.newest_first is not True:
                ranges.append((max(stamps) - 1, high))
        return sorted(rows.values(), key=row_time)

    async def _failed(self, stream: Stream, start: int | None, end: int | None, error: BaseException) -> None:
        """Record the window that failed (times; None where the walk pages by id, not time);
        the rows of earlier windows are already committed."""
        await self.save(stream, [], None, {"failed_from": start, "failed_to": end,
                                           "failed_error": describe_error(error)})

    # --- ids ----------------------------------------------------------------------------

    async def _by_id(self, stream: Stream) -> None:
        rules = stream.rules
        assert rules.id_param is not None
        limit = rules.limit or 1000
        last = int(stream.cursor) if stream.cursor is not None else None
        coverage: dict[str, Any] = {}
        while True:
            from_id = last + 1 if last is not None else 0
            try:
                page = await self.call(lambda f=from_id: stream.fetch(
                    stream.symbol, None, limit, {**rules.params, rules.id_param: f}))
            except Exception as error:
                await self._failed(stream, None, None, error)
                raise
            page = [r for r in page if int(row_id(r)) >= from_id]
            if page:
                stamps = [row_time(r) for r in page]
                coverage = {"fetched_to": max(stamps)}
                if last is None:
                    coverage["fetched_from"] = min(stamps)
            done = len(page) < limit
            if done:
                coverage["complete"] = True
            stream.hold(page, by_id=True)
            newest = max((int(row_id(r)) for r in page), default=last)
            cursor = newest if stream.held is None or newest is None else min(newest, stream.held)
            stream.added += await self.save(stream, page, None if cursor is None else str(cursor), coverage)
            if done:
                return
            last = newest

    # --- OKX bill ids ---------------------------------------------------------------------

    async def _by_bill_id(self, stream: Stream) -> None:
        """Intervals of bill ids (newer than, older than); a full page splits its interval."""
        limit = stream.rules.limit or 100
        cursor = int(stream.cursor) if stream.cursor is not None else None
        newest = cursor
        intervals: list[tuple[int | None, int | None]] = [(cursor, None)]
        oldest_time: int | None = None
        while intervals:
            low, high = intervals.pop()
            params = {k: str(v) for k, v in (("before", low), ("after", high)) if v is not None}
            try:
                page = await self.call(lambda p=params: stream.fetch(None, None, limit, p))
            except Exception as error:
                await self._failed(stream, None, None, error)
                raise
            bills = [(int(r["info"]["billId"]), r) for r in page]
            inside = [(b, r) for b, r in bills if (low is None or b > low) and (high is None or b < high)]
            if not inside:
                continue
            stamps = [row_time(r) for _, r in inside]
            oldest_time = min(stamps) if oldest_time is None else min(oldest_time, *stamps)
            stream.added += await self.save(stream, [r for _, r in inside], None, {})
            ids = [b for b, _ in inside]
            newest = max(ids) if newest is None else max(newest, *ids)
            if len(page) >= limit:
                intervals.append((low, min(ids)))
                if low is not None:
                    intervals.append((max(ids), high))
        coverage: dict[str, Any] = {"complete": True, "fetched_to": self.now}
        if cursor is None:
            coverage["fetched_from"] = oldest_time if oldest_time is not None else stream.oldest_available(self.now)
        await self.save(stream, [], None if newest is None else str(newest), coverage)
