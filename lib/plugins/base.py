"""What every exchange plug-in builds on: one body of code for ccxt's sync and asyncio classes.

ccxt generates each exchange twice (``ccxt/binance.py`` and ``ccxt/async_support/binance.py``):
the two files are the same but for ``async def`` and ``await`` in front of every call that reaches
the network. A plug-in writes that code once, as generator methods marked ``@unified``: each call
that may reach the network is yielded (``response = yield self.privateGetSpotV1Wallet(request)``).
In the sync class the call has already answered when it is yielded, so ``drive`` hands its value
straight back; in the asyncio class the call returned an awaitable, which ``drive_async`` awaits
(an error is thrown back into the generator at the ``yield``, so ``try``/``except`` reads as in
plain code). ``PluginExchange`` and ``AsyncPluginExchange`` wrap every ``@unified`` method of a
subclass into a plain method or a coroutine method when the subclass is defined, so ccxt's own
base methods (``load_markets`` awaiting ``fetch_markets``) and the product see ordinary ccxt
methods. ``describe()``, ``sign()``, ``handle_errors()`` and the ``parse_*`` methods make no
requests and are written once in a mixin shared by both classes.

ccxt declares each endpoint as an attribute of a generated ``ImplicitAPI`` class
(``ccxt/abstract/<id>.py``); here the attributes are made from the class's ``API`` (the same
tree ``describe()`` returns under ``api``), named as ccxt names them (``privateGetSpotV1Wallet``
and ``private_get_spot_v1_wallet``), so the table is written once too.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Awaitable, Callable, Generator, Iterator, Mapping
from typing import Any, ClassVar

import ccxt
import ccxt.async_support as ccxt_async
from ccxt.base.types import Entry

#: a unified method's body: yields calls that may reach the network, returns the unified result
Steps = Generator[Any, Any, Any]

_HTTP_METHODS = frozenset({"get", "post", "put", "delete", "patch"})


def unified(method: Callable[..., Steps]) -> Callable[..., Steps]:
    """Mark a generator method as a unified ccxt method, to be made sync or async per class."""
    if not inspect.isgeneratorfunction(method):
        raise TypeError(f"@unified {method.__qualname__} must be a generator (yield each request)")
    method.__unified__ = True  # type: ignore[attr-defined]
    return method


def drive(steps: Steps) -> Any:
    """Run a unified body in the sync class: each yielded call has already answered."""
    value = None
    while True:
        try:
            value = steps.send(value)
        except StopIteration as stop:
            return stop.value


async def drive_async(steps: Steps) -> Any:
    """Run a unified body in the asyncio class: await each yielded call, throw its error back in."""
    value: Any = None
    error: Exception | None = None
    while True:
        try:
            step = steps.throw(error) if error is not None else steps.send(value)
        except StopIteration as stop:
            return stop.value
        try:
            value, error = (await step if inspect.isawaitable(step) else step), None
        except Exception as raised:  # noqa: BLE001 - handed to the unified body, which may catch it
            value, error = None, raised


def start_end(exchange: Any, params: Mapping[str, Any] | None, since: int | None,
              start: str = "startTime", end: str = "endTime") -> dict[str, Any]:
    """``params`` with ccxt's ``since`` and ``until`` (the sync's window) as the exchange's own
    start and end parameters in milliseconds, which most exchanges name startTime/endTime."""
    until = exchange.safe_integer(params or {}, "until")
    request = exchange.omit(dict(params or {}), "until")
    if since is not None:
        request[start] = since
    if until is not None:
        request[end] = until
    return request


def _words(*parts: str) -> list[str]:
    return [word for part in parts for word in re.split(r"[^A-Za-z0-9]+", part) if word]


def implicit_endpoints(api: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[list[str], Entry]]:
    """(names, Entry) for every endpoint of a ccxt ``api`` tree: ``{"private": {"get": {path: cost}}}``."""
    for key, value in api.items():
        if key.lower() in _HTTP_METHODS and isinstance(value, Mapping) and prefix:
            for path, cost in value.items():
                words = _words(*prefix, key, path)
                camel = words[0].lower() + "".join(word[:1].upper() + word[1:] for word in words[1:])
                snake = "_".join(word.lower() for word in words)
                config = dict(cost) if isinstance(cost, Mapping) else {"cost": cost}
                yield [camel, snake], Entry(path, list(prefix), key.upper(), config)
        elif isinstance(value, Mapping):
            yield from implicit_endpoints(value, (*prefix, key))


def _wrap_unified(cls: type, wrap: Callable[[Callable[..., Steps]], Callable[..., Any]]) -> None:
    """Give ``cls`` its implicit API and a sync or async method for every ``@unified`` body it has
    (the nearest definition in the MRO wins, so a subclass may override either kind)."""
    for names, entry in implicit_endpoints(getattr(cls, "API", {}) or {}):
        for name in names:
            if name not in vars(cls):
                setattr(cls, name, entry)
    seen: set[str] = set()
    for klass in cls.__mro__:
        for name, value in vars(klass).items():
            if name in seen:
                continue
            seen.add(name)
            if getattr(value, "__unified__", False) is True:
                method = wrap(value)
                method.__unified__ = False  # type: ignore[attr-defined]
                setattr(cls, name, method)


def _sync_method(body: Callable[..., Steps]) -> Callable[..., Any]:
    @functools.wraps(body)
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        return drive(body(self, *args, **kwargs))
    return method


def _async_method(body: Callable[..., Steps]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(body)
    async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        return await drive_async(body(self, *args, **kwargs))
    return method


class PluginExchange(ccxt.Exchange):
    """Base of a plug-in's sync ``Exchange``."""

    API: ClassVar[Mapping[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _wrap_unified(cls, _sync_method)


class AsyncPluginExchange(ccxt_async.Exchange):
    """Base of a plug-in's asyncio ``AsyncExchange``."""

    API: ClassVar[Mapping[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _wrap_unified(cls, _async_method)
