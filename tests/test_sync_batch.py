"""The sync's database thread commits the calls queued behind one another together (group commit),
and a failing call in such a batch costs only its own result."""

from __future__ import annotations

import asyncio
import threading
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from lib.db import session_scope
from lib.models import Ticker
from lib.sync import store
from lib.sync.connector import Db


def _quote(symbol: str) -> dict[str, object]:
    return {"symbol": symbol, "last": Decimal("1.5"), "bid": None, "ask": None, "timestamp": None}


@store.batchable
def _save(symbol: str) -> None:
    store.save_tickers("binance", "binance", [_quote(symbol)])


@store.batchable
def _count_tickers() -> int:
    with store.unit() as session:
        return session.scalar(select(func.count()).select_from(Ticker))


@store.batchable
def _save_then_fail(symbol: str) -> None:
    with store.unit() as session:
        store.upsert(session, Ticker, [{**_quote(symbol), "exchange_id": "binance", "source": "binance"}],
                     ("exchange_id", "source", "symbol"))
        raise ValueError("refused after writing")


def _save_in_own_session(symbol: str) -> str:
    """Not batchable: writes through a session of its own, as the leases do."""
    with session_scope() as session:
        store.upsert(session, Ticker, [{**_quote(symbol), "exchange_id": "binance", "source": "binance"}],
                     ("exchange_id", "source", "symbol"))
    return symbol


def _stored() -> set[str]:
    with session_scope() as session:
        return set(session.scalars(select(Ticker.symbol)))


async def _queued_behind_a_busy_thread(db: Db, calls: list[tuple]) -> list[object]:
    """Run ``calls`` while the database thread is held busy, so they all wait in its queue."""
    busy, release = threading.Event(), threading.Event()

    def hold() -> None:
        busy.set()
        release.wait(30)

    holding = asyncio.ensure_future(db(hold))
    await asyncio.get_running_loop().run_in_executor(None, busy.wait, 30)
    pending = [asyncio.ensure_future(db(fn, *args)) for fn, *args in calls]
    await asyncio.sleep(0.05)  # every call is in the queue before the thread is free
    release.set()
    await holding
    return await asyncio.gather(*pending, return_exceptions=True)


def test_queued_calls_share_one_transaction_and_see_each_others_writes(database_url: str) -> None:
    db = Db()
    try:
        calls = [(_save, f"S{i}/USDT") for i in range(5)] + [(_count_tickers,)]
        results = asyncio.run(_queued_behind_a_busy_thread(db, calls))
    finally:
        db.close()
    assert results == [None] * 5 + [5]  # the count ran in the same transaction, after the saves
    assert db.batches == 1
    assert _stored() == {f"S{i}/USDT" for i in range(5)}


def test_a_failing_call_gets_its_error_and_the_others_are_committed(database_url: str) -> None:
    db = Db()
    try:
        results = asyncio.run(_queued_behind_a_busy_thread(db, [
            (_save, "A/USDT"), (_save_then_fail, "X/USDT"), (_save, "B/USDT")]))
    finally:
        db.close()
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], ValueError)
    assert _stored() == {"A/USDT", "B/USDT"}  # the failed call's own write was rolled back
    assert db.batches == 0  # the batch failed as a whole; each call then ran alone


def test_a_call_with_its_own_session_runs_alone_between_batches(database_url: str) -> None:
    db = Db()
    try:
        results = asyncio.run(_queued_behind_a_busy_thread(db, [
            (_save, "A/USDT"), (_save, "B/USDT"), (_save_in_own_session, "C/USDT"), (_save, "D/USDT")]))
    finally:
        db.close()
    assert results == [None, None, "C/USDT", None]
    assert _stored() == {"A/USDT", "B/USDT", "C/USDT", "D/USDT"}
    assert db.batches == 1  # A and B together; C alone (its own session would wait on the batch's lock); D alone


def test_max_batch_caps_a_transaction(database_url: str) -> None:
    db = Db(max_batch=2)
    try:
        asyncio.run(_queued_behind_a_busy_thread(db, [(_save, f"S{i}/USDT") for i in range(5)]))
    finally:
        db.close()
    assert db.batches == 2  # 2 + 2 together, the fifth alone
    assert len(_stored()) == 5


def test_a_unit_outside_a_batch_commits_by_itself(database_url: str) -> None:
    _save("A/USDT")
    assert _stored() == {"A/USDT"}
    with pytest.raises(RuntimeError), store.batch(), store.batch():
        pass
