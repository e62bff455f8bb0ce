"""The aiohttp server: routes ``/binance``, ``/okx``, ``/cryptocom`` and ``/bybit`` to their dialects, injects faults,
and offers loopback-only ``/_sim`` endpoints; ``Simulator`` runs it in a background thread.

Everything slow (latency, timeouts) is an ``asyncio.sleep``, so hundreds of concurrent
connections are served by one event loop.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import threading
from collections.abc import Callable
from types import ModuleType, TracebackType
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from lib.simulator import binance, bitmart, bitunix, bybit, cryptocom, okx
from lib.simulator.accounts import GroundTruth, SimAccount, SimulatorConfig, World, now_ms
from lib.simulator.faults import Faults
from lib.simulator.protocol import Call, Reply

DIALECT_MODULES: dict[str, ModuleType] = {"binance": binance, "okx": okx, "cryptocom": cryptocom, "bybit": bybit,
                                        "bitunix": bitunix, "bitmart": bitmart}


def is_loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


def _response(reply: Reply) -> web.Response:
    if isinstance(reply.payload, str):
        return web.Response(status=reply.status, text=reply.payload, content_type="text/html", headers=reply.headers)
    body = json.dumps(reply.payload, separators=(",", ":"))
    return web.Response(status=reply.status, text=body, content_type="application/json", headers=reply.headers)


class SimServer:
    """Request handling for one world and fault plan."""

    def __init__(self, world: World, faults: Faults) -> None:
        self.world = world
        self.faults = faults

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/_sim/accounts", self.sim_accounts)
        app.router.add_get("/_sim/truth/{account_id}", self.sim_truth)
        app.router.add_post("/_sim/accounts/{account_id}/fills", self.sim_add_fills)
        app.router.add_post("/_sim/accounts/{account_id}/transfers", self.sim_add_transfer)
        app.router.add_post("/_sim/accounts/{account_id}/transfers/{transfer_id}/complete", self.sim_complete_transfer)
        app.router.add_post("/_sim/accounts/{account_id}/revoke", self.sim_revoke)
        app.router.add_post("/_sim/accounts/{account_id}/funding", self.sim_move_to_funding)
        app.router.add_post("/_sim/faults", self.sim_set_faults)
        app.router.add_delete("/_sim/faults", self.sim_clear_faults)
        app.router.add_route("*", "/{dialect:" + "|".join(DIALECT_MODULES) + "}{tail:/.*}", self.exchange)
        return app

    # --- exchange dialects ----------------------------------------------------------

    async def exchange(self, request: web.Request) -> web.StreamResponse:
        dialect = request.match_info["dialect"]
        module = DIALECT_MODULES[dialect]
        account = self.world.by_key.get(module.api_key(request.headers) or "")
        decision = self.faults.decide(account.id if account else None, request.path)
        if decision.latency_ms:
            await asyncio.sleep(decision.latency_ms / 1000)
        if decision.kind == "429":
            return _response(module.rate_limited())
        if decision.kind == "denied":
            return _response(module.permission_denied())
        if decision.kind == "5xx":
            return _response(module.server_error())
        if decision.kind == "timeout":
            await asyncio.sleep(self.faults.timeout_s)
            return _response(Reply(504, "<html><body><h1>504 Gateway Time-out</h1></body></html>"))
        if decision.kind == "drop":
            if request.transport is not None:
                request.transport.abort()  # the client sees the connection reset, no answer
            return web.Response(status=200)
        prefix = "/" + dialect
        raw_query = request.rel_url.raw_query_string
        call = Call(
            world=self.world,
            method=request.method,
            path=request.path[len(prefix):],
            raw_path_qs=request.raw_path[len(prefix):],
            raw_query=raw_query,
            params=dict(parse_qsl(raw_query, keep_blank_values=True)),
            headers=request.headers,
            body=await request.text(),
            now=now_ms(),
        )
        response = _response(module.handle(call))
        if decision.kind == "malformed":
            text = response.text or ""
            return web.Response(status=200, text=text[: max(1, len(text) // 2)], content_type="application/json")
        return response

    # --- loopback-only control ------------------------------------------------------

    @staticmethod
    def _guard(request: web.Request) -> None:
        if not is_loopback(request.remote):
            raise web.HTTPForbidden(text="the simulator control API answers loopback clients only")

    def _account(self, request: web.Request) -> SimAccount:
        try:
            return self.world.account(request.match_info["account_id"])
        except KeyError as exc:
            raise web.HTTPNotFound(text=str(exc)) from None

    async def sim_accounts(self, request: web.Request) -> web.Response:
        self._guard(request)
        accounts = self.world.accounts
        rows = [{"id": a.id, "exchange": a.dialect, "api_url": a.api_url, **a.credentials()} for a in accounts]
        return web.json_response(rows)

    async def sim_truth(self, request: web.Request) -> web.Response:
        self._guard(request)
        return web.json_response(self.world.truth(self._account(request).id).as_dict())

    async def sim_add_fills(self, request: web.Request) -> web.Response:
        self._guard(request)
        account = self._account(request)
        try:
            n = int(request.query.get("n", "1"))
        except ValueError:
            raise web.HTTPBadRequest(text="n must be an integer") from None
        return web.json_response({"added": self.world.add_fills(account.id, n)})

    async def sim_add_transfer(self, request: web.Request) -> web.Response:
        """?kind=deposit|withdrawal&asset=BTC&amount=0.5[&pending=true]: a transfer timestamped now."""
        self._guard(request)
        account, query = self._account(request), request.query
        try:
            transfer = self.world.add_transfer(account.id, query.get("kind", "deposit"), query["asset"],
                                               float(query["amount"]), query.get("pending") == "true")
        except (KeyError, ValueError) as exc:
            raise web.HTTPBadRequest(text=f"bad transfer: {exc}") from None
        return web.json_response({"added": transfer})

    async def sim_complete_transfer(self, request: web.Request) -> web.Response:
        self._guard(request)
        account = self._account(request)
        try:
            transfer = self.world.complete_transfer(account.id, request.match_info["transfer_id"])
        except KeyError as exc:
            raise web.HTTPNotFound(text=str(exc)) from None
        except ValueError as exc:
            raise web.HTTPConflict(text=str(exc)) from None
        return web.json_response({"completed": transfer})

    async def sim_move_to_funding(self, request: web.Request) -> web.Response:
        """?asset=USDT&amount=100: moves that much from the trading to the funding account."""
        self._guard(request)
        account = self._account(request)
        try:
            funding = self.world.move_to_funding(account.id, request.query["asset"], float(request.query["amount"]))
        except (KeyError, ValueError) as exc:
            raise web.HTTPBadRequest(text=f"bad move: {exc}") from None
        return web.json_response({"funding": funding})

    async def sim_revoke(self, request: web.Request) -> web.Response:
        self._guard(request)
        self.world.revoke(self._account(request).id)
        return web.json_response({"revoked": request.match_info["account_id"]})

    async def sim_set_faults(self, request: web.Request) -> web.Response:
        self._guard(request)
        spec: dict[str, Any] = await request.json() if request.can_read_body else {}
        try:
            self.faults.set(**spec)
        except (TypeError, ValueError) as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        return web.json_response({"ok": True})

    async def sim_clear_faults(self, request: web.Request) -> web.Response:
        self._guard(request)
        self.faults.clear()
        return web.json_response({"ok": True})


class Simulator:
    """A simulated exchange server with deterministic accounts; see ``lib/simulator/__init__``."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self.world = World(self.config)
        self.faults = Faults(self.config.seed, self.config.fault_rate, self.config.latency_ms)
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    @property
    def accounts(self) -> list[SimAccount]:
        return self.world.accounts

    def account(self, account_id: str) -> SimAccount:
        return self.world.account(account_id)

    def truth(self, account_id: str) -> GroundTruth:
        return self.world.truth(account_id)

    def revoke(self, account_id: str) -> None:
        self.world.revoke(account_id)

    def add_fills(self, account_id: str, n: int) -> list[dict[str, Any]]:
        return self.world.add_fills(account_id, n)

    def add_transfer(self, account_id: str, kind: str, asset: str, amount: float, pending: bool = False,
                     ts: int | None = None) -> dict[str, Any]:
        return self.world.add_transfer(account_id, kind, asset, amount, pending, ts)

    def complete_transfer(self, account_id: str, transfer_id: str) -> dict[str, Any]:
        return self.world.complete_transfer(account_id, transfer_id)

    async def serve(self, host: str = "127.0.0.1", port: int = 0, ready: Callable[[str], None] | None = None) -> None:
        """Serve until ``stop()`` (or cancellation); ``ready(url)`` runs once listening."""
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        runner = web.AppRunner(SimServer(self.world, self.faults).app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port, backlog=2048)
            await site.start()
            bound_port = runner.addresses[0][1]
            self.url = f"http://{host}:{bound_port}"
            for account in self.world.accounts:
                account.base_url = self.url
            if ready is not None:
                ready(self.url)
            await self._stopping.wait()
        finally:
            await runner.cleanup()

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Simulator:
        """Run the server in a background thread with its own event loop; returns once listening."""
        if self._thread is not None:
            raise RuntimeError("simulator already started")
        listening = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                asyncio.run(self.serve(host, port, ready=lambda _url: listening.set()))
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                listening.set()

        self._thread = threading.Thread(target=run, name="exchange-simulator", daemon=True)
        self._thread.start()
        listening.wait(timeout=30)
        if failure:
            self._thread = None
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> Simulator:
        if self._thread is None:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
