"""Markets loaded once per exchange id and API URL, then shared by every connector instance.

ccxt 4.5.90 offers ``Exchange.set_markets_from_exchange(source)``, which hands over the
already-indexed ``markets``, ``markets_by_id``, currencies and helper options by reference,
so the 200th instance costs no request and no re-indexing. The cache keeps a bare,
credential-less instance as the data holder for ``MARKETS_TTL_SECONDS``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

MARKETS_TTL_SECONDS = 3600.0

MarketKey = tuple[str, str | None, bool]

_cache: dict[MarketKey, tuple[float, Any]] = {}
_cache_lock = threading.Lock()


def _cached(key: MarketKey) -> Any | None:
    with _cache_lock:
        entry = _cache.get(key)
    if entry and time.monotonic() - entry[0] < MARKETS_TTL_SECONDS:
        return entry[1]
    return None


def forget() -> None:
    """Drop every cached market table (tests, or after an exchange lists new markets)."""
    with _cache_lock:
        _cache.clear()


class MarketShare:
    """Per-run coordinator: the first connector of a key loads, the others wait and copy."""

    def __init__(self) -> None:
        self._locks: dict[MarketKey, asyncio.Lock] = {}

    async def attach(self, exchange: Any, key: MarketKey, load: Callable[[], Awaitable[Any]]) -> None:
        """Give ``exchange`` the shared markets of ``key``, loading them with ``load`` if none.

        A failed load (say a revoked key on an exchange whose market list is private) fails
        only this connector; the next one of the same key tries with its own credentials.
        """
        source = _cached(key)
        if source is None:
            async with self._locks.setdefault(key, asyncio.Lock()):
                source = _cached(key)
                if source is None:
                    await load()
                    holder = type(exchange)().set_markets_from_exchange(exchange)
                    with _cache_lock:
                        _cache[key] = (time.monotonic(), holder)
                    return
        exchange.set_markets_from_exchange(source)
