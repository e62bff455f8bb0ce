"""Migrations from empty produce exactly the models' schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from decimal import Decimal

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, select, text
from sqlalchemy.orm import Session

from lib.db import alembic_config, get_engine, migrate
from lib.models import BalanceSnapshot, Base, Candle, Ticker, Trade, decimal_text


def test_migrated_schema_matches_models(database_url):
    engine = get_engine(database_url)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())


def test_migrate_is_idempotent(database_url):
    migrate(database_url)
    migrate(database_url)
    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    with get_engine(database_url).connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == head


def _client_and_connector(connection: Connection) -> None:
    """Client 1 with connector 1, as raw rows any revision's schema takes."""
    connection.execute(text("INSERT INTO clients (id, name, created_at, updated_at) "
                            "VALUES (1, 'c', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
    connection.execute(text(
        "INSERT INTO connectors (id, client_id, exchange_id, label, credentials_ciphertext, key_hint, sandbox, "
        "enabled, status, consecutive_failures, extra_symbols, created_at, updated_at) VALUES "
        "(1, 1, 'binance', 'main', 'x', 'abcd', false, true, 'ok', 0, '', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))


def test_0002_keeps_fills_and_lets_two_markets_share_an_id(database_url):
    """Upgrading a 0001 database keeps its rows; afterwards one id may exist once per symbol."""
    command.downgrade(alembic_config(database_url), "0001")
    engine = get_engine(database_url)
    trade = ("INSERT INTO trades (connector_id, trade_id, timestamp, symbol, base, quote, side, amount, price, "
             "cost, fee_cost) VALUES (1, '7', 1, :symbol, 'X', 'USDT', 'buy', 1, 1, 1, 0)")
    order = ("INSERT INTO orders (connector_id, order_id, symbol, side, amount, filled) "
             "VALUES (1, '7', :symbol, 'buy', 1, 0)")
    with engine.begin() as connection:
        _client_and_connector(connection)
        connection.execute(text(trade), {"symbol": "BTC/USDT"})
        connection.execute(text(order), {"symbol": "BTC/USDT"})
    migrate(database_url)
    with engine.begin() as connection:
        connection.execute(text(trade), {"symbol": "ETH/USDT"})
        connection.execute(text(order), {"symbol": "ETH/USDT"})
        rows = connection.execute(text("SELECT id, symbol FROM trades ORDER BY id")).all()
        orders = connection.execute(text("SELECT symbol FROM orders ORDER BY symbol")).scalars().all()
    assert [symbol for _, symbol in rows] == ["BTC/USDT", "ETH/USDT"]
    assert rows[1][0] > rows[0][0]
    assert orders == ["BTC/USDT", "ETH/USDT"]


def test_0004_keeps_prices_as_the_default_source_and_lets_sources_differ(database_url):
    """Upgrading a 0003 database keeps every ticker and candle, as its exchange's default source;
    afterwards one symbol may have a price per source; the downgrade keeps the default's."""
    command.downgrade(alembic_config(database_url), "0003")
    engine = get_engine(database_url)
    ticker = ("INSERT INTO tickers (exchange_id, {source}symbol, last, fetched_at) "
              "VALUES (:exchange, {value}'BTC/USDT', :last, CURRENT_TIMESTAMP)")
    candle = ("INSERT INTO candles (exchange_id, {source}symbol, timeframe, timestamp, open, high, low, close) "
              "VALUES (:exchange, {value}'BTC/USDT', '1d', 86400000, :last, :last, :last, :last)")
    old = [("binance", 48179.19), ("okx", 48100.0)]
    with engine.begin() as connection:
        for statement in (ticker, candle):
            for exchange, last in old:
                connection.execute(text(statement.format(source="", value="")),
                                   {"exchange": exchange, "last": last})
    migrate(database_url)
    inspector = inspect(engine)
    for table in ("tickers", "candles"):
        model_key = [c.name for c in Base.metadata.tables[table].primary_key.columns]
        assert inspector.get_pk_constraint(table)["constrained_columns"] == model_key
        assert model_key[:2] == ["exchange_id", "source"]
    gateway = "binance@127.0.0.1:8900"
    with engine.begin() as connection:
        for statement in (ticker, candle):
            connection.execute(text(statement.format(source="source, ", value=":source, ")),
                               {"exchange": "binance", "source": gateway, "last": 75182.74})
        tickers = connection.execute(text("SELECT exchange_id, source, last FROM tickers ORDER BY source")).all()
        candles = connection.execute(text("SELECT exchange_id, source, close FROM candles ORDER BY source")).all()
    migrated = [("binance", "binance", 48179.19), ("binance", gateway, 75182.74), ("okx", "okx", 48100.0)]
    # amounts are exact decimals since 0007 (text on SQLite, NUMERIC on PostgreSQL)
    assert [(e, s, float(v)) for e, s, v in tickers] == migrated
    assert [(e, s, float(v)) for e, s, v in candles] == migrated
    command.downgrade(alembic_config(database_url), "0003")
    with engine.begin() as connection:
        kept = connection.execute(text("SELECT exchange_id, last FROM tickers ORDER BY exchange_id")).all()
    assert [tuple(row) for row in kept] == old


def test_0007_keeps_every_float_amount_as_its_shortest_decimal(database_url):
    """Upgrading a 0006 database (amounts as doubles) keeps every row of every amount column, each
    as the shortest decimal that reads back as the stored double; NULLs stay NULL; afterwards an
    amount with 24 significant digits and 18 decimals is kept exactly. The downgrade keeps the rows."""
    command.downgrade(alembic_config(database_url), "0006")
    engine = get_engine(database_url)
    noisy = [201.12956459999992, 0.1 + 0.2, 1e-07, 1.5e20, 123456789012.12344, -0.0, 3.0]
    with engine.begin() as connection:
        _client_and_connector(connection)
        for i, value in enumerate(noisy):
            connection.execute(text(
                "INSERT INTO trades (connector_id, trade_id, timestamp, symbol, base, quote, side, amount, price, "
                "cost, fee_cost) VALUES (1, :id, 1, 'BTC/USDT', 'BTC', 'USDT', 'buy', :v, :v, :v, :v)"),
                {"id": str(i), "v": value})
            connection.execute(text(
                "INSERT INTO balance_snapshots (connector_id, taken_at, asset, free, used, total, account_type) "
                "VALUES (1, CURRENT_TIMESTAMP, :asset, :v, 0, :v, '')"), {"asset": f"A{i}", "v": value})
            connection.execute(text(
                "INSERT INTO candles (exchange_id, source, symbol, timeframe, timestamp, open, high, low, close) "
                "VALUES ('binance', 'binance', 'BTC/USDT', '1d', :t, :v, :v, :v, :v)"), {"t": i, "v": value})
        connection.execute(text("INSERT INTO tickers (exchange_id, source, symbol, last, fetched_at) "
                                "VALUES ('binance', 'binance', 'BTC/USDT', NULL, CURRENT_TIMESTAMP)"))
    migrate(database_url)
    if engine.dialect.name == "sqlite":  # ids never reused (lib.queries' fill store relies on it)
        with engine.connect() as connection:
            assert "AUTOINCREMENT" in connection.execute(
                text("SELECT sql FROM sqlite_master WHERE name = 'trades'")).scalar_one()
    expected = [Decimal(repr(v)) for v in noisy]
    with Session(engine) as session:
        trades = session.scalars(select(Trade).order_by(Trade.id)).all()
        snapshots = session.scalars(select(BalanceSnapshot).order_by(BalanceSnapshot.id)).all()
        candles = session.scalars(select(Candle).order_by(Candle.timestamp)).all()
        ticker = session.scalars(select(Ticker)).one()
        assert [t.amount for t in trades] == [t.price for t in trades] == [t.fee_cost for t in trades] == expected
        assert [t.cost for t in trades] == expected
        assert [decimal_text(t.cost) for t in trades[:3]] == ["201.12956459999992", "0.30000000000000004",
                                                              "0.0000001"]
        assert [s.total for s in snapshots] == [c.close for c in candles] == expected
        assert [s.used for s in snapshots] == [Decimal(0)] * len(noisy)
        assert all(isinstance(t.amount, Decimal) for t in trades) and ticker.last is None
        extreme = Decimal("123456.123456789012345678")
        trades[0].amount = extreme
        session.commit()
        session.expire_all()
        assert session.get(Trade, trades[0].id).amount == extreme
        assert str(session.get(Trade, trades[0].id).amount) == "123456.123456789012345678"
    command.downgrade(alembic_config(database_url), "0006")
    with engine.connect() as connection:
        kept = connection.execute(text("SELECT cost FROM trades ORDER BY id")).scalars().all()
    assert kept[1:] == noisy[1:]
    assert kept[0] == float(extreme) or kept[0] == noisy[0]
