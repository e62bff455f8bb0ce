"""Migrations from empty produce exactly the models' schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
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
    with get_engine(database_url).connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == "0003"


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
