"""Migrations from empty produce exactly the models' schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from lib.db import alembic_config, get_engine, migrate
from lib.models import Base


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


def test_0002_keeps_fills_and_lets_two_markets_share_an_id(database_url):
    """Upgrading a 0001 database keeps its rows; afterwards one id may exist once per symbol."""
    command.downgrade(alembic_config(database_url), "0001")
    engine = get_engine(database_url)
    trade = ("INSERT INTO trades (connector_id, trade_id, timestamp, symbol, base, quote, side, amount, price, "
             "cost, fee_cost) VALUES (1, '7', 1, :symbol, 'X', 'USDT', 'buy', 1, 1, 1, 0)")
    order = ("INSERT INTO orders (connector_id, order_id, symbol, side, amount, filled) "
             "VALUES (1, '7', :symbol, 'buy', 1, 0)")
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO clients (id, name, created_at, updated_at) "
                                "VALUES (1, 'c', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
        connection.execute(text(
            "INSERT INTO connectors (id, client_id, exchange_id, label, credentials_ciphertext, key_hint, sandbox, "
            "enabled, status, consecutive_failures, extra_symbols, created_at, updated_at) VALUES "
            "(1, 1, 'binance', 'main', 'x', 'abcd', false, true, 'ok', 0, '', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
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
    assert [tuple(row) for row in tickers] == migrated
    assert [tuple(row) for row in candles] == migrated
    command.downgrade(alembic_config(database_url), "0003")
    with engine.begin() as connection:
        kept = connection.execute(text("SELECT exchange_id, last FROM tickers ORDER BY exchange_id")).all()
    assert [tuple(row) for row in kept] == old
