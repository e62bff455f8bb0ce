"""Exact amounts: every quantity, price, cost, fee and balance column becomes ``lib.models.Amount``
(NUMERIC on PostgreSQL, the decimal's text on SQLite) instead of a double.

Each stored double becomes the shortest decimal that reads back as the same double (Python's
``repr``, PostgreSQL's float8 text output): 0.1 stays 0.1, not 0.1000000000000000055511151231257827.
SQLite's own CAST keeps only 15 significant digits and writes exponents ("1.0e-07"), so there the
text is made by a Python function registered on the connection, through a scratch table keyed
by the primary key, and written back after the table is rebuilt.

Revision ID: 0007
Revises: 0006
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from lib.models import Amount, decimal_text, to_decimal

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: table -> (primary key columns, amount columns with whether they are nullable)
AMOUNTS: dict[str, tuple[tuple[str, ...], tuple[tuple[str, bool], ...]]] = {
    "balance_snapshots": (("id",), (("free", False), ("used", False), ("total", False))),
    "opening_balances": (("id",), (("amount", False), ("usd_price", True))),
    "trades": (("id",), (("amount", False), ("price", False), ("cost", False), ("fee_cost", False))),
    "orders": (("id",), (("price", True), ("amount", False), ("filled", False), ("remaining", True))),
    "order_history": (("id",), (("price", True), ("average", True), ("amount", True), ("filled", True),
                                 ("cost", True), ("fee_cost", True))),
    "ledger_entries": (("id",), (("amount", False), ("fee_cost", True))),
    "positions": (("id",), (("contracts", True), ("contract_size", True), ("entry_price", True),
                            ("mark_price", True), ("notional", True), ("unrealized_pnl", True),
                            ("leverage", True), ("liquidation_price", True))),
    "transfers": (("id",), (("amount", False), ("fee_cost", False))),
    "tickers": (("exchange_id", "source", "symbol"), (("last", True), ("bid", True), ("ask", True))),
    "candles": (("exchange_id", "source", "symbol", "timeframe", "timestamp"),
                (("open", False), ("high", False), ("low", False), ("close", False), ("volume", True))),
}
SCRATCH = "_exact_amounts"
#: tables whose SQLite ids are never reused (``lib.models.Trade``); 0006's rebuild of trades
#: dropped the keyword, the rebuild here puts it back
AUTOINCREMENT = {"trades"}


def _exact_text(value: object) -> str | None:
    """A stored REAL (or INTEGER) as the plain decimal text ``Amount`` keeps on SQLite."""
    number = to_decimal(value)
    return None if number is None else decimal_text(number)


def _upgrade_sqlite(table: str, keys: tuple[str, ...], columns: tuple[tuple[str, bool], ...]) -> None:
    names = [name for name, _ in columns]
    op.execute(f"DROP TABLE IF EXISTS {SCRATCH}")
    op.execute(f"CREATE TABLE {SCRATCH} AS SELECT {', '.join(keys)}, "
               f"{', '.join(f'exact_text({n}) AS {n}' for n in names)} FROM {table}")
    op.execute(f"CREATE UNIQUE INDEX ix{SCRATCH} ON {SCRATCH} ({', '.join(keys)})")
    with op.batch_alter_table(table, table_kwargs={"sqlite_autoincrement": table in AUTOINCREMENT}) as batch:
        for name, nullable in columns:
            batch.alter_column(name, type_=Amount(), existing_type=sa.Double(), existing_nullable=nullable)
    same = " AND ".join(f"s.{k} = {table}.{k}" for k in keys)
    op.execute(f"UPDATE {table} SET " + ", ".join(f"{n} = (SELECT s.{n} FROM {SCRATCH} s WHERE {same})"
                                                  for n in names))
    op.execute(f"DROP TABLE {SCRATCH}")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        bind.connection.driver_connection.create_function("exact_text", 1, _exact_text, deterministic=True)
        for table, (keys, columns) in AMOUNTS.items():
            _upgrade_sqlite(table, keys, columns)
        return
    op.execute("SET LOCAL extra_float_digits = 1")  # float8 as text: the shortest exact form
    for table, (_, columns) in AMOUNTS.items():
        for name, nullable in columns:
            op.alter_column(table, name, type_=Amount(), existing_type=sa.Double(), existing_nullable=nullable,
                            postgresql_using=f"{name}::text::numeric")


def downgrade() -> None:
    for table, (_, columns) in AMOUNTS.items():
        with op.batch_alter_table(table, table_kwargs={"sqlite_autoincrement": table in AUTOINCREMENT}) as batch:
            for name, nullable in columns:
                batch.alter_column(name, type_=sa.Double(), existing_type=Amount(), existing_nullable=nullable,
                                   postgresql_using=f"{name}::double precision")
