"""One run's connectors synced by child processes, so a large first sync uses every core.

Two hundred connectors fetching at once make a sync CPU-bound (ccxt parses every row in
Python), and one process tops out at one core (the GIL). The run itself stays in the parent
(``lib.sync.runner``): it selects and leases the connectors, keeps the concurrency gate and the
stop check, records every result, releases the leases and finishes the run exactly as
in-process. Only syncing a connector (``runner._sync_job``) moves: ``Pool`` starts
SYNC_PROCESSES children and hands each connector to the one with the fewest of its exchange in
hand.

A child is told connector ids only. It reads the connector and decrypts its credentials
itself (plaintext keys never cross a pipe), syncs it with its own market cache, and sends back
the ``ConnectorResult``. Its database calls (``lib.sync.store``'s, the same calls with the same
arguments) run in the parent's database thread (``Db``): SQLite keeps one writer for the whole
run, and the parent's group commits span every child. (Children writing themselves gained
nothing: each waited on the others' write lock, and 200 connectors took 57 s with two children,
73 s with three, 46 s now.) A child that dies fails every connector it had in hand with
``DIED_MESSAGE``; the calls it had sent still commit whole (a window with its cursor), and the
next sync resumes after them. A child whose parent is gone exits at once: nobody would record
its results.

A child is a fresh interpreter running ``child_main`` (``python -m lib.sync.child``) with the
parent's environment, hence the same settings and database, talking over a socket pair: never a
fork of a process holding threads and connections, and not multiprocessing's "spawn", which runs
the parent's ``__main__`` again in the child (in the dashboard that is the page Streamlit ran
last). Starting one costs about 2.2 s of CPU (imports). ``processes_for`` therefore gives a run children only when its
connectors' expected CPU (``FIRST_SYNC_CPU_S`` each first sync, ``LATER_SYNC_CPU_S`` each later
one: bench/bench_sync.py's figures) gives each child ``MIN_CPU_PER_PROCESS_S``: a first sync of
dozens of connectors is spread; the worker's incremental runs (200 connectors: ~8 s of CPU, and
children would add 2 x 2.2 s) and runs of a few connectors (a save, a retry, the tests, which
patch code in their own process) stay in-process.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from lib.db import session_scope
from lib.models import Connector
from lib.settings import PROJECT_ROOT, configure_logging, get_settings
from lib.sync.connector import Db, Job, Shared
from lib.vault import Vault, load_vault

if TYPE_CHECKING:
    from lib.sync.runner import ConnectorResult

log = logging.getLogger(__name__)

#: CPU seconds one connector's sync takes in one process (bench/bench_sync.py, 2026-12-05: 0.30
#: for a first sync of 1,000 fills, 0.04 for a later one with nothing new)
FIRST_SYNC_CPU_S = 0.3
LATER_SYNC_CPU_S = 0.04
#: expected CPU seconds per child at least: twice what starting one costs (~2.2 s of imports), so a
#: child spends at most a third of its time starting
MIN_CPU_PER_PROCESS_S = 5.0
#: how long a child may take to finish after the run told it to, before it is terminated
CLOSE_SECONDS = 30.0
DIED_MESSAGE = ("The sync process syncing this connector stopped unexpectedly ({how}); what it had committed is "
                "kept and the next sync resumes from there.")


class ChildDied(RuntimeError):
    """The child syncing a connector stopped before sending its result; the message says so plainly."""


def processes_for(first_syncs: int, later_syncs: int, concurrency: int, configured: int) -> int:
    """How many children sync a run (1: in-process): at most SYNC_PROCESSES, at most the
    concurrency (one at a time is in-process), each with ``MIN_CPU_PER_PROCESS_S`` of expected work."""
    work = first_syncs * FIRST_SYNC_CPU_S + later_syncs * LATER_SYNC_CPU_S
    return max(1, min(configured, concurrency, int(work // MIN_CPU_PER_PROCESS_S)))


@dataclass
class _Child:
    """One child process, its end of the pipe and the results it owes (connector id -> future)."""

    process: subprocess.Popen[bytes]
    name: str
    pipe: Connection
    owed: dict[int, asyncio.Future[ConnectorResult]] = field(default_factory=dict)
    exchanges: dict[int, str] = field(default_factory=dict)  # connector id -> exchange id, of those owed
    alive: bool = True


class Pool:
    """``size`` children for one run; ``sync(connector_id, exchange_id)`` awaits that connector's
    result, and the children's database calls run in the run's ``db``."""

    def __init__(self, size: int, db: Db, cash: frozenset[str], timeout_ms: int) -> None:
        self.size, self.db, self.cash, self.timeout_ms = size, db, cash, timeout_ms
        self._children: list[_Child] = []
        self._calls: set[asyncio.Task[None]] = set()  # children's database calls running here
        self._readers: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._death: ChildDied | None = None  # how the last child that ended went

    async def __aenter__(self) -> Pool:
        self._loop = asyncio.get_running_loop()
        try:
            for number in range(self.size):
                mine, theirs = socket.socketpair()
                with theirs:
                    process = subprocess.Popen(  # noqa: S603 - this interpreter, our own module
                        [sys.executable, "-m", "lib.sync.child", str(theirs.fileno()), json.dumps(sorted(self.cash)),
                         str(self.timeout_ms)], pass_fds=(theirs.fileno(),), cwd=PROJECT_ROOT)
                child = _Child(process, f"sync-{number + 1}", Connection(mine.detach()))
                self._children.append(child)
                reader = threading.Thread(target=self._read, args=(child,), name=f"{child.name}-reader",
                                          daemon=True)
                reader.start()
                self._readers.append(reader)
        except BaseException:
            await self._stop(gracefully=False)
            raise
        return self

    async def __aexit__(self, kind: type[BaseException] | None, *_: object) -> None:
        await self._stop(gracefully=kind is None)

    async def sync(self, connector_id: int, exchange_id: str) -> ConnectorResult:
        """The child with the fewest connectors of this exchange in hand (then the fewest in all)
        syncs this one: exchanges differ in CPU per connector and in rate limits, so each child
        gets its share of every exchange. Raises ``ChildDied``."""
        alive = [c for c in self._children if c.alive]
        if not alive:  # the last one's end is this connector's too
            raise ChildDied(str(self._death))
        child = min(alive, key=lambda c: (sum(e == exchange_id for e in c.exchanges.values()), len(c.owed)))
        future: asyncio.Future[ConnectorResult] = asyncio.get_running_loop().create_future()
        child.owed[connector_id] = future
        child.exchanges[connector_id] = exchange_id
        with suppress(OSError):  # it died since: its reader fails what it owed, this one included
            child.pipe.send(("sync", connector_id))
        return await future

    def _read(self, child: _Child) -> None:
        """Deliver the child's results and run its database calls until its pipe ends; then fail
        whatever it still owed."""
        while True:
            try:
                message = child.pipe.recv()
            except (EOFError, OSError):
                break
            if message[0] == "db":
                self._call(self._start_call, child, *message[1:])
            else:
                self._call(self._deliver, child, message[1], message[2], None)
        with suppress(subprocess.TimeoutExpired):
            child.process.wait(CLOSE_SECONDS)
        code = child.process.returncode
        how = f"exit code {code}" if code is not None and code >= 0 else f"signal {-code}" if code else "no exit code"
        with_error = ChildDied(DIED_MESSAGE.format(how=how))
        self._call(self._died, child, with_error)

    def _call(self, fn: Callable[..., None], *args: object) -> None:
        """Run ``fn`` in the run's event loop; a loop closed meanwhile has nobody waiting."""
        with suppress(RuntimeError):
            self._loop.call_soon_threadsafe(fn, *args)  # type: ignore[union-attr]

    def _start_call(self, child: _Child, call_id: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        task = asyncio.get_running_loop().create_task(self._run_call(child, call_id, fn, args))
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)

    async def _run_call(self, child: _Child, call_id: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        """One database call of a child in this run's ``Db``; its result or error goes back."""
        result, error = None, None
        try:
            result = await self.db(fn, *args)
        except Exception as caught:  # noqa: BLE001 - raised in the child, where the connector's sync handles it
            error = _sendable(caught)
        with suppress(OSError):  # the child died since: nobody waits for this
            child.pipe.send(("reply", call_id, result, error))

    def _deliver(self, child: _Child, connector_id: int, result: ConnectorResult | None,
                 error: BaseException | None) -> None:
        future = child.owed.pop(connector_id, None)
        child.exchanges.pop(connector_id, None)
        if future is None or future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def _died(self, child: _Child, error: ChildDied) -> None:
        child.alive, self._death = False, error
        if child.owed:
            log.warning("sync process %s stopped with %d connector(s) in hand: %s", child.name,
                        len(child.owed), error)
        for connector_id in list(child.owed):
            self._deliver(child, connector_id, None, error)

    async def _stop(self, *, gracefully: bool) -> None:
        """Tell every child to finish (or terminate it when the run failed) and wait for it."""
        for child in self._children:
            if gracefully and child.alive:
                with suppress(OSError):  # it died since: its reader saw that
                    child.pipe.send(None)
            else:
                child.process.terminate()
        for child, reader in zip(self._children, self._readers, strict=False):
            await asyncio.to_thread(reader.join, CLOSE_SECONDS)
            if child.process.poll() is None:
                log.warning("sync process %s did not stop within %g s; terminating it", child.name, CLOSE_SECONDS)
                child.process.terminate()
                with suppress(subprocess.TimeoutExpired):
                    await asyncio.to_thread(child.process.wait, CLOSE_SECONDS)
            child.pipe.close()
        await asyncio.gather(*self._calls, return_exceptions=True)  # those of a child that died


def _sendable(error: Exception) -> Exception:
    """``error`` if it survives pickling, else one of its kind that does: the runner tells a
    database error by its class (``SQLAlchemyError``) and names only its type."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:  # noqa: BLE001 - any failure to pickle or unpickle
        kind = SQLAlchemyError if isinstance(error, SQLAlchemyError) else RuntimeError
        return kind(f"{type(error).__name__} (in the sync's database thread)")
    return error


class _RemoteDb:
    """A child's ``Shared.db``: awaiting ``db(fn, *args)`` runs the call in the parent's ``Db``."""

    def __init__(self, pipe: Connection, loop: asyncio.AbstractEventLoop) -> None:
        self._pipe, self._loop = pipe, loop
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count()

    async def __call__(self, fn: Callable[..., Any], *args: Any) -> Any:  # noqa: ANN401 - any call's result
        call_id = next(self._ids)
        future: asyncio.Future[Any] = self._loop.create_future()
        self._waiting[call_id] = future
        _send(self._pipe, ("db", call_id, fn, args))
        return await future

    def settle(self, call_id: int, result: Any, error: Exception | None) -> None:  # noqa: ANN401
        future = self._waiting.pop(call_id)
        if future.done():  # its connector was cancelled meanwhile
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


def _send(pipe: Connection, message: tuple[Any, ...]) -> None:
    """Send to the parent; when it is gone, nobody would record anything: exit at once."""
    try:
        pipe.send(message)
    except OSError:
        os._exit(1)


# --- the child ----------------------------------------------------------------------------

def child_main(pipe: Connection, cash: frozenset[str], timeout_ms: int) -> None:
    """A child's whole life: sync the connector ids it is sent until told to stop (None)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
    configure_logging(get_settings().log_level, "%(levelname)s:%(processName)s:%(name)s:%(message)s")
    asyncio.run(_serve(pipe, cash, timeout_ms))


async def _serve(pipe: Connection, cash: frozenset[str], timeout_ms: int) -> None:
    loop = asyncio.get_running_loop()
    incoming: asyncio.Queue[int | None] = asyncio.Queue()
    db = _RemoteDb(pipe, loop)

    def read() -> None:
        while True:
            try:
                message = pipe.recv()
            except (EOFError, OSError):  # the parent is gone: nobody would record a result
                os._exit(1)
            if message is None:
                loop.call_soon_threadsafe(incoming.put_nowait, None)
                return
            if message[0] == "reply":
                loop.call_soon_threadsafe(db.settle, *message[1:])
            else:
                loop.call_soon_threadsafe(incoming.put_nowait, message[1])

    threading.Thread(target=read, name="sync-pipe", daemon=True).start()
    shared = Shared(db=db, cash=cash, timeout_ms=timeout_ms)  # type: ignore[arg-type] - awaited like a Db
    vault = load_vault()
    tasks: set[asyncio.Task[None]] = set()

    async def one(connector_id: int) -> None:
        _send(pipe, ("result", connector_id, await _sync_one(connector_id, vault, shared)))

    try:
        while (connector_id := await incoming.get()) is not None:
            task = asyncio.create_task(one(connector_id))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
    finally:
        pipe.close()


async def _sync_one(connector_id: int, vault: Vault, shared: Shared) -> ConnectorResult:
    """``runner._sync_job`` of the connector as stored now; any failure, reading it included, is
    its result (described as in-process, never a traceback)."""
    from lib.sync.runner import ConnectorResult, _describe, _job, _sync_job  # here: the runner imports this module

    def load() -> Job | None:
        with session_scope() as session:
            connector = session.get(Connector, connector_id)
            return None if connector is None else _job(connector, vault)

    try:
        job = await asyncio.to_thread(load)  # a read: this process may do it itself
        if job is None:
            return ConnectorResult(connector_id, "", "", "", False, error=f"No connector with id {connector_id}.")
        return await _sync_job(job, shared)
    except Exception as error:  # noqa: BLE001 - every failure becomes a result
        log.info("sync of connector %s failed: %s", connector_id, type(error).__name__)
        return ConnectorResult(connector_id, "", "", "", False, error=_describe(error))
