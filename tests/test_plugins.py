"""The exchange plug-in contract (lib.plugins): discovery, refusal of shadowing or broken plug-ins,
one body of code working as ccxt's sync and asyncio classes, and lib.exchanges consulting it."""

from __future__ import annotations

import asyncio
import logging
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import ccxt
import ccxt.async_support as ccxt_async
import pytest

from lib import exchanges, plugins
from lib.plugins.base import AsyncPluginExchange, PluginExchange, unified

ACME = textwrap.dedent('''
    import ccxt
    from lib.plugins.base import AsyncPluginExchange, PluginExchange, unified

    class Acme:
        API = {"public": {"get": {"v1/time": 1}}, "private": {"get": {"v1/wallet/{account}": {"cost": 2}}}}

        def describe(self):
            return self.deep_extend(super().describe(), {
                "id": "ID", "name": "Acme", "api": self.API,
                "urls": {"api": {"rest": "https://api.acme.test"}},
                "has": {"fetchTime": True, "fetchBalance": True},
                "requiredCredentials": {"apiKey": True, "secret": True, "uid": True},
                "credentialLabels": {"uid": "Memo"},
                "exceptions": {"exact": {"401": ccxt.AuthenticationError}},
            })

        def sign(self, path, api="public", method="GET", params={}, headers=None, body=None):
            url = self.urls["api"]["rest"] + "/" + self.implode_params(path, params)
            return {"url": url, "method": method, "body": body, "headers": {"X-Api": api}}

        @unified
        def fetch_time(self, params={}):
            response = yield self.publicGetV1Time(params)
            return response["t"]

        @unified
        def fetch_balance(self, params={}):
            try:
                response = yield self.privateGetV1WalletAccount({"account": "main"})
            except ccxt.AuthenticationError:
                return {"refused": True}
            return {"free": response}

    class Exchange(Acme, PluginExchange):
        pass

    class AsyncExchange(Acme, AsyncPluginExchange):
        pass
''')


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Third-party plug-ins as entry points: id -> module text (``ID`` replaced by the id)."""
    modules: dict[str, str] = {}
    monkeypatch.syspath_prepend(str(tmp_path))

    def entry_points(group: str) -> list[SimpleNamespace]:
        assert group == plugins.ENTRY_POINT_GROUP
        points = []
        for exchange_id, text in modules.items():
            name = f"plugin_{exchange_id}"
            (tmp_path / f"{name}.py").write_text(text.replace('"ID"', repr(exchange_id)))
            points.append(SimpleNamespace(name=exchange_id, value=name))
        return points

    monkeypatch.setattr(plugins, "entry_points", entry_points)
    plugins.available.cache_clear()
    yield modules
    plugins.available.cache_clear()
    for name in [name for name in sys.modules if name.startswith("plugin_")]:
        del sys.modules[name]


def test_an_installed_plugin_is_an_exchange_like_any_other(installed: dict[str, str]) -> None:
    installed["acmex"] = ACME
    assert exchanges.is_supported("acmex") and "acmex" in exchanges.supported_exchanges()
    assert issubclass(exchanges._exchange_class("acmex"), ccxt.Exchange)
    assert issubclass(exchanges._exchange_class("acmex", asynchronous=True), ccxt_async.Exchange)
    assert exchanges.required_credentials("acmex") == ["apiKey", "secret", "uid"]
    assert exchanges.credential_labels("acmex")["uid"] == "Memo"
    assert exchanges.credential_labels("binance")["uid"] == exchanges.CREDENTIAL_LABELS["uid"]


def test_a_plugin_never_shadows_ccxt(installed: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    installed["binance"] = ACME
    with caplog.at_level(logging.WARNING, logger="lib.plugins"):
        assert "binance" not in plugins.available()
    assert exchanges._exchange_class("binance") is ccxt.binance
    assert "refused: the installed ccxt" in caplog.text and "'binance'" in caplog.text


@pytest.mark.parametrize("text, reason", [
    ("raise ImportError('no such thing')", "failed to load (ImportError: no such thing)"),
    ("Exchange = AsyncExchange = object", "not a subclass of ccxt.Exchange"),
    (ACME.replace('"id": "ID"', '"id": "other"'), "names the id 'other'"),
])
def test_a_broken_plugin_is_refused_with_a_log_line(installed: dict[str, str], caplog: pytest.LogCaptureFixture,
                                                     text: str, reason: str) -> None:
    installed["acmex"] = text
    with caplog.at_level(logging.WARNING, logger="lib.plugins"):
        assert not exchanges.is_supported("acmex")
    assert reason in caplog.text
    with pytest.raises(exchanges.UnsupportedExchange, match="or any installed plug-in"):
        exchanges.required_credentials("acmex")


def test_the_project_plugins_keep_the_contract() -> None:
    """Every module in lib/plugins loads (none refused) and names its own id."""
    plugins.available.cache_clear()
    local = {name for name, _ in plugins._local()}
    assert local <= set(plugins.available())
    for exchange_id in local:
        assert exchanges._exchange_class(exchange_id)().id == exchange_id


def _answering(exchange: ccxt.Exchange, answers: dict[str, object], asynchronous: bool) -> list[tuple[str, dict]]:
    """Answer requests from ``answers`` by URL; an answer that is an exception is raised."""
    seen: list[tuple[str, dict]] = []

    def answer(url: str, method: str = "GET", headers: dict | None = None, body: object = None) -> object:
        seen.append((url, dict(headers or {})))
        reply = answers[url]
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def answer_async(*args: object, **kwargs: object) -> object:
        return answer(*args, **kwargs)

    exchange.fetch = answer_async if asynchronous else answer
    return seen


@pytest.mark.parametrize("asynchronous", [False, True])
def test_one_unified_body_runs_sync_and_async(installed: dict[str, str], asynchronous: bool) -> None:
    installed["acmex"] = ACME
    exchange = exchanges._exchange_class("acmex", asynchronous=asynchronous)({"enableRateLimit": False})
    seen = _answering(exchange, {"https://api.acme.test/v1/time": {"t": 42},
                                 "https://api.acme.test/v1/wallet/main": ccxt.AuthenticationError("401")},
                      asynchronous)

    async def both() -> tuple[object, object]:
        try:
            return await exchange.fetch_time(), await exchange.fetchBalance()
        finally:
            await exchange.close()

    time_, balance = asyncio.run(both()) if asynchronous else (exchange.fetch_time(), exchange.fetchBalance())
    assert time_ == 42 and balance == {"refused": True}  # the error reached the body's except
    assert [url for url, _ in seen] == ["https://api.acme.test/v1/time", "https://api.acme.test/v1/wallet/main"]
    assert seen[1][1] == {"X-Api": ["private"]}  # ccxt hands sign() the api path as a list
    assert exchange.privateGetV1WalletAccount.__name__ == exchange.private_get_v1_wallet_account.__name__


def test_unified_insists_on_a_generator() -> None:
    with pytest.raises(TypeError, match="must be a generator"):
        unified(lambda self: None)


def test_a_subclass_override_wins_over_the_mixin_body() -> None:
    class Mixin:
        @unified
        def fetch_time(self, params={}):  # noqa: B006 - ccxt's signature
            yield None
            return 1

    class Sync(Mixin, PluginExchange):
        pass

    class Override(Sync):
        def fetch_time(self, params={}):  # noqa: B006
            return 2

    class Async(Mixin, AsyncPluginExchange):
        pass

    assert Sync().fetch_time() == 1 and Override().fetch_time() == 2
    assert asyncio.iscoroutinefunction(Async.fetch_time)
