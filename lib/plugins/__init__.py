"""Exchanges the installed ccxt does not list, added as plug-ins the rest of the product cannot tell apart.

The contract
------------
A plug-in is a module ``lib/plugins/<id>.py`` (every module here but ``base``), or a module of a
third-party package registered under the entry point group ``exchange_dashboard.exchanges``
(name: the exchange id; value: the module, e.g. ``acme = "acme_exchange.plugin"``). It defines:

- ``Exchange``, a subclass of ``ccxt.Exchange`` (sync: Test connection, metadata), and
- ``AsyncExchange``, a subclass of ``ccxt.async_support.Exchange`` (the sync worker),

both with ccxt's unified interface: ``describe()`` giving ``id`` (the plug-in's id), ``name``,
``urls`` (``api`` among them, so a connector's API URL can replace it), ``api``, ``has``,
``features``, ``requiredCredentials``, ``rateLimit``, ``exceptions`` (the exchange's error codes
mapped to ccxt's error classes, so retries and plain-language messages apply), ``timeframes`` if
it serves candles, and optionally ``credentialLabels`` (how a form names a credential, e.g.
``{"uid": "Memo"}``); ``sign()``; and the unified methods named in ``has``. ``lib.plugins.base``
lets one mixin hold all of it for both classes (see its docstring)::

    class Acme:                                     # describe, sign, parse_* and @unified bodies
        API = {"private": {"get": {"v1/wallet": 1}}}
        def describe(self): return self.deep_extend(super().describe(), {"id": "acme", "api": self.API, ...})
        @unified
        def fetch_balance(self, params={}):
            response = yield self.privateGetV1Wallet(params)
            return self.parse_balance(response)

    class Exchange(Acme, PluginExchange): pass
    class AsyncExchange(Acme, AsyncPluginExchange): pass

A plug-in never shadows an exchange the installed ccxt lists: ccxt's class is used and the plug-in
is refused with a log line. A plug-in whose module cannot be imported or whose classes break the
contract is refused likewise; the product then calls the exchange unsupported, as it would anyway.
"""

from __future__ import annotations

import functools
import importlib
import logging
import pkgutil
from collections.abc import Mapping
from importlib.metadata import entry_points
from types import ModuleType

import ccxt
import ccxt.async_support as ccxt_async

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "exchange_dashboard.exchanges"
#: modules of this package that are not plug-ins
_NOT_PLUGINS = frozenset({"base"})


def _local() -> list[tuple[str, str]]:
    return [(info.name, f"{__name__}.{info.name}") for info in pkgutil.iter_modules(__path__)
            if info.name not in _NOT_PLUGINS and not info.name.startswith("_")]


def _installed() -> list[tuple[str, str]]:
    return [(point.name, point.value) for point in entry_points(group=ENTRY_POINT_GROUP)]


def _refusal(exchange_id: str, module: ModuleType) -> str | None:
    """Why a loaded module breaks the contract; None when it keeps it."""
    sync, asynchronous = getattr(module, "Exchange", None), getattr(module, "AsyncExchange", None)
    if not (isinstance(sync, type) and issubclass(sync, ccxt.Exchange)):
        return "its Exchange is not a subclass of ccxt.Exchange"
    if not (isinstance(asynchronous, type) and issubclass(asynchronous, ccxt_async.Exchange)):
        return "its AsyncExchange is not a subclass of ccxt.async_support.Exchange"
    described = sync().id
    if described != exchange_id:
        return f"its describe() names the id {described!r}"
    return None


def _load(exchange_id: str, module_name: str, found: Mapping[str, ModuleType]) -> ModuleType | None:
    if exchange_id in ccxt.exchanges:
        log.warning("exchange plug-in %r (%s) refused: the installed ccxt %s lists %r, whose class is used",
                    exchange_id, module_name, ccxt.__version__, exchange_id)
        return None
    if exchange_id in found:
        log.warning("exchange plug-in %r (%s) refused: %s already provides it",
                    exchange_id, module_name, found[exchange_id].__name__)
        return None
    try:
        module = importlib.import_module(module_name)
        refusal = _refusal(exchange_id, module)
    except Exception as error:  # noqa: BLE001 - a broken third-party package must not stop the product
        refusal = f"it failed to load ({type(error).__name__}: {error})"
    if refusal:
        log.warning("exchange plug-in %r (%s) refused: %s", exchange_id, module_name, refusal)
        return None
    return module


@functools.cache
def available() -> Mapping[str, ModuleType]:
    """Exchange id -> plug-in module, the project's own first, then installed packages'."""
    found: dict[str, ModuleType] = {}
    for exchange_id, module_name in [*_local(), *_installed()]:
        module = _load(exchange_id, module_name, found)
        if module is not None:
            found[exchange_id] = module
    return found


def exchange_class(exchange_id: str, *, asynchronous: bool = False) -> type | None:
    """The plug-in's sync or asyncio class; None when no plug-in provides ``exchange_id``."""
    module = available().get(exchange_id)
    if module is None:
        return None
    return module.AsyncExchange if asynchronous else module.Exchange
