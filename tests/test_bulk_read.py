"""The fill store's bulk read (lib.bulk_read: COPY on PostgreSQL, printf on SQLite) gives what a
row-by-row read gives.

Awkward values on purpose: text with the CSV's own quote, commas, newlines, the word NULL,
an empty string, non-ASCII; NULL text and NULL amounts; amounts whose decimal text SQLite's own
CAST turns into a double one bit off the nearest; an amount SQLite holds as a number (as no
writer here stores it); ids with gaps wider than a chunk. Compared value for value with the rows
read one by one, each exact amount made the nearest double (what PostgreSQL's cast gives).
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import insert, select, text

from lib import bulk_read, queries
from lib.db import session_scope
from lib.models import Trade
from tests.test_queries import Seeded, seed_portfolio

AWKWARD_TEXT = ["it's", 'say "hi"', "a,b", "two\nlines", "NULL", "", "Ünïcødé ✓", "'", "''", "\\"]
#: 22.7299236781906, 3269.24603313179 and 9.4367488210446: SQLite's CAST AS REAL is one bit off the nearest double
AWKWARD_AMOUNTS = ["0.000000000000000001", "123456789012345678.123456789", "22.7299236781906", "-17.25",
                   "0", "3269.24603313179", "0.1", "9.4367488210446", "3.3333333333333333333333", "1e-30"]


def _reference(after_id: int | None) -> pd.DataFrame:
    """Row by row through SQLAlchemy, each exact amount (``Decimal``) made the nearest double."""
    query = select(*(getattr(Trade, c) for c in queries._STORE_COLUMNS)).order_by(Trade.id)
    if after_id is not None:
        query = query.where(Trade.id > after_id)
    with session_scope() as session:
        frame = pd.DataFrame([tuple(row) for row in session.execute(query)], columns=queries._STORE_COLUMNS)
    for column in queries._FLOAT_COLUMNS:
        frame[column] = [np.nan if value is None else float(value) for value in frame[column]]
    return frame


def _assert_same(found: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(found.columns) == list(expected.columns)
    assert len(found) == len(expected)
    for name, kind in queries._STORE_KINDS.items():
        got, want = found[name], expected[name]
        if kind == "float":
            got_values, want_values = got.to_numpy(float), want.astype(float).to_numpy()
            assert np.array_equal(got_values, want_values, equal_nan=True), name  # bit for bit, NaN for NULL
            assert got.dtype == np.float64
        elif kind == "int":
            assert got.dtype == np.int64 and np.array_equal(got.to_numpy(), want.to_numpy()), name
        else:
            assert [None if pd.isna(v) else v for v in got] == [None if pd.isna(v) else v for v in want], name


@pytest.fixture
def awkward(database_url: str) -> Seeded:
    seeded = seed_portfolio()
    rows = []
    for n, (word, amount) in enumerate(zip(AWKWARD_TEXT, AWKWARD_AMOUNTS, strict=True)):
        rows.append({"id": 1000 + n * 7, "connector_id": seeded.alpha_binance, "trade_id": f"{word}-{n}",
                     "timestamp": 1_700_000_000_000 + n, "symbol": f"{word}/USDT", "base": word, "quote": "USDT",
                     "side": "buy", "amount": Decimal(amount), "price": Decimal(AWKWARD_AMOUNTS[-1 - n]),
                     "cost": Decimal(amount) * 3, "fee_cost": Decimal(amount) / 7,
                     "fee_currency": None if n % 3 == 0 else word,
                     "realized_pnl": None if n % 2 else Decimal(AWKWARD_AMOUNTS[(n + 3) % 10])})
    with session_scope() as session:
        session.execute(insert(Trade), rows)
        if session.get_bind().dialect.name == "sqlite":  # a number where the decimal text should be
            session.execute(text("UPDATE trades SET price = 0.1 + 0.2, realized_pnl = 1e-7 WHERE id = 1007"))
    return seeded


@pytest.mark.parametrize("chunk", [bulk_read.CHUNK_IDS, 3])  # 3: many chunks, some of them empty
def test_the_bulk_read_equals_the_row_by_row_read(awkward: Seeded, monkeypatch: pytest.MonkeyPatch,
                                                   chunk: int) -> None:
    monkeypatch.setattr(bulk_read, "CHUNK_IDS", chunk)
    with session_scope() as session:
        everything = queries._read_trades(session)
        later = queries._read_trades(session, after_id=1010)
        none = queries._read_trades(session, after_id=10**9)
    _assert_same(everything, _reference(None))
    _assert_same(later, _reference(1010))
    assert later["id"].min() > 1010
    assert none.empty and list(none.columns) == queries._STORE_COLUMNS
    assert everything["trade_id"].str.contains("\n").any()  # the awkward rows did travel


def test_an_empty_table_reads_as_typed_empty_columns(database_url: str) -> None:
    with session_scope() as session:
        frame = queries._read_trades(session)
    assert frame.empty and list(frame.columns) == queries._STORE_COLUMNS
    assert frame["amount"].dtype == np.float64 and frame["id"].dtype == np.int64


def test_postgresql_floats_stay_exact_where_the_server_writes_fewer_digits(awkward: Seeded,
                                                                            database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("extra_float_digits is PostgreSQL's")
    with session_scope() as session:
        session.execute(text("SET LOCAL extra_float_digits = 0"))  # 15 significant digits, as before PostgreSQL 12
        frame = queries._read_trades(session)
    _assert_same(frame, _reference(None))
