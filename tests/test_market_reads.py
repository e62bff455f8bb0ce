"""Market data read once per write version (lib.reports.scope_candles / scope_tickers): the same
rows as ``queries`` reads at that version, read again after any commit (a new candle or ticker, or
anything else), per scope, and never kept inside a transaction with uncommitted writes."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import select

from lib import prices, queries, reports
from lib.db import session_scope
from lib.models import Candle, Ticker, utcnow
from tests.test_queries import Seeded, seed_portfolio


@pytest.fixture
def seeded(database_url: str) -> Seeded:
    reports._MARKET_READS.clear()
    return seed_portfolio()


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the market queries run, in order."""
    ran: list[str] = []
    for name in ("candles", "tickers"):
        original = getattr(queries, name)
        monkeypatch.setattr(queries, name, lambda *a, _o=original, _n=name, **k: ran.append(_n) or _o(*a, **k))
    return ran


def _candle(close: float, exchange_id: str = "binance") -> Candle:
    day = int(utcnow().timestamp() * 1000) // 86_400_000 * 86_400_000
    return Candle(exchange_id=exchange_id, symbol="BTC/USDT", timeframe="1d", timestamp=day, open=close, high=close,
                  low=close, close=close, volume=1.0)


def _read(seeded: Seeded, client_id: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    admin = seeded.viewer("admin")
    with session_scope() as session:
        return (reports.scope_candles(session, admin, client_id), reports.scope_tickers(session, admin, client_id))


def _assert_as_queried(seeded: Seeded, found: tuple[pd.DataFrame, pd.DataFrame], client_id: int | None = None) -> None:
    admin = seeded.viewer("admin")
    with session_scope() as session:
        pd.testing.assert_frame_equal(found[0], queries.candles(session, admin, client_id), check_exact=True)
        pd.testing.assert_frame_equal(found[1], queries.tickers(session, admin, client_id), check_exact=True)


def test_one_read_per_version_and_scope(seeded: Seeded, reads: list[str]) -> None:
    first = _read(seeded)
    assert reads == ["candles", "tickers"]
    again = _read(seeded)
    assert reads == ["candles", "tickers"]  # the same version: read once
    for kept, shown in zip(first, again, strict=True):
        pd.testing.assert_frame_equal(shown, kept, check_exact=True)
    alpha = _read(seeded, seeded.alpha)
    assert reads == ["candles", "tickers"] * 2  # another scope: its own rows
    _assert_as_queried(seeded, first)
    _assert_as_queried(seeded, alpha, seeded.alpha)


def test_callers_cannot_change_what_the_others_get(seeded: Seeded) -> None:
    candles, _ = _read(seeded)
    before = candles.copy()
    candles.loc[:, "close"] = -1.0  # a caller's own change
    pd.testing.assert_frame_equal(_read(seeded)[0], before, check_exact=True)
    admin = seeded.viewer("admin")
    with session_scope() as session:
        series = reports.scope_series(session, admin)
    times, closes = next(iter(next(iter(series.values())).values()))
    with pytest.raises(ValueError, match="read-only"):
        closes[0] = -1.0


def test_a_commit_reads_again(seeded: Seeded) -> None:
    before = _read(seeded)
    with session_scope() as session:
        session.add(_candle(123456.0))
    after = _read(seeded)
    assert len(after[0]) == len(before[0]) + 1
    assert 123456.0 in after[0]["close"].tolist()
    _assert_as_queried(seeded, after)
    with session_scope() as session:
        ticker = session.scalars(select(Ticker).where(Ticker.symbol == "BTC/USDT")).first()
        ticker.last = 654321.0  # an updated ticker: the same rows, one value changed
    later = _read(seeded)
    assert 654321.0 in later[1]["last"].tolist()
    _assert_as_queried(seeded, later)


def test_uncommitted_writes_are_read_and_not_kept(seeded: Seeded, reads: list[str]) -> None:
    admin = seeded.viewer("admin")
    before = _read(seeded)
    with session_scope() as session:
        session.add(_candle(777.0))
        session.flush()
        inside = reports.scope_candles(session, admin)
        assert 777.0 in inside["close"].tolist()
        session.rollback()
    assert reads == ["candles", "tickers", "candles"]  # inside the transaction: read, not kept
    pd.testing.assert_frame_equal(_read(seeded)[0], before[0], check_exact=True)
    assert reads == ["candles", "tickers", "candles"]  # nothing committed: the version's rows as they were


def _assert_same_series(found: dict, expected: dict) -> None:
    assert found.keys() == expected.keys()
    for source, table in expected.items():
        assert found[source].keys() == table.keys()
        for symbol, (times, closes) in table.items():
            assert found[source][symbol][0].tobytes() == times.tobytes()
            assert found[source][symbol][1].tobytes() == closes.tobytes()


def test_series_as_indexed_from_the_rows_and_renewed_with_them(seeded: Seeded) -> None:
    admin = seeded.viewer("admin")
    with session_scope() as session:
        session.add(_candle(61000.0, "okx"))  # Beta's source
    with session_scope() as session:
        candles = queries.candles(session, admin)
        series = reports.scope_series(session, admin)
        sources = queries.price_sources(session, admin, seeded.alpha)
        assert reports.scope_series(session, admin) is series  # one dict, its arrays read-only
    assert len(series) == 2 and len(set(sources.values())) == 1  # two sources; Alpha's is one of them
    _assert_same_series(series, prices.source_series(candles))
    own = candles[candles["source"].isin(set(sources.values()))]
    _assert_same_series(reports.own_series(series, sources), prices.source_series(own))
    with session_scope() as session:
        session.add(_candle(4242.0))
    with session_scope() as session:
        renewed = reports.scope_series(session, admin)
        _assert_same_series(renewed, prices.source_series(queries.candles(session, admin)))
    assert 4242.0 in renewed["binance"]["BTC/USDT"][1].tolist()
