"""Tickers and candles keyed by price source (exchange id, API host, sandbox), not exchange id alone.

Before, a connector with an API URL override (a gateway, a second account's proxy) or in
sandbox mode stored its prices under the bare exchange id, so its testnet or gateway prices
revalued every other account on that exchange. ``source`` (``lib.prices.price_source``) now
joins the primary keys: ``binance`` for the exchange's public API, ``binance@host:port`` for an
override, ``#sandbox`` appended in sandbox mode.

Existing rows become the exchange's default source (``source = exchange_id``). Where they were
really read cannot be known: the old key did not record it, and every connector of the exchange
wrote to the same rows. The default source is what most of them are (an override or a sandbox
is the exception) and what a connector without an override is valued from, so no row is lost.
Tickers are overwritten by the next sync of each source. Candles are kept once stored: on an
exchange that had a connector with an override or in sandbox, the default source's stored
candles may hold some of that host's days; deleting those candle rows makes the next sync
fetch them again from the exchange itself.

The downgrade keeps only the default source's rows: the old key has room for one price per
exchange and symbol, and the others are market data the old code would mistake for the
exchange's.

Revision ID: 0004
Revises: 0003
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: lib.models.SOURCE_MAX as this revision was written (exchange id, "@", an API URL, "#sandbox")
SOURCE_MAX = 559
#: table -> the primary key after "exchange_id" (and "source") of each
KEYS = {"tickers": ["symbol"], "candles": ["symbol", "timeframe", "timestamp"]}


def _rebuild(table: str, columns: list[str], source: bool) -> None:
    """Give ``table`` the primary key ``columns``, with a NOT NULL ``source`` column or without one.

    SQLite rebuilds the table (a primary key cannot be altered there); PostgreSQL alters it in
    place. 0001 left the key unnamed: PostgreSQL named it ``<table>_pkey``, and the naming
    convention gives SQLite's reflected key the same name so it can be dropped.
    """
    name = f"{table}_pkey"
    with op.batch_alter_table(table, naming_convention={"pk": "%(table_name)s_pkey"}) as batch:
        batch.drop_constraint(name, type_="primary")
        if source:
            batch.alter_column("source", existing_type=sa.String(length=SOURCE_MAX), nullable=False)
        else:
            batch.drop_column("source")
        batch.create_primary_key(name, columns)


def upgrade() -> None:
    for table, rest in KEYS.items():
        op.add_column(table, sa.Column("source", sa.String(length=SOURCE_MAX), nullable=True))
        op.execute(sa.text(f"UPDATE {table} SET source = exchange_id"))
        _rebuild(table, ["exchange_id", "source", *rest], source=True)


def downgrade() -> None:
    for table, rest in KEYS.items():
        op.execute(sa.text(f"DELETE FROM {table} WHERE source <> exchange_id"))
        _rebuild(table, ["exchange_id", *rest], source=False)
