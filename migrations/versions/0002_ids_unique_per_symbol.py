"""Fills and orders are unique per (connector, symbol, exchange id).

Binance and OKX number trades and orders per symbol, so two markets of one account can
share an id: keyed on (connector, id) alone, the second fill was silently dropped.

Revision ID: 0002
Revises: 0001
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table, exchange id column, whether SQLite keeps AUTOINCREMENT on it (trades: ids never reused)
TABLES = (("trades", "trade_id", True), ("orders", "order_id", False))
# SQLite left the 0001 constraints unnamed: batch mode names them by this convention to drop them.
SQLITE_NAMES = {"uq": "uq_%(table_name)s_%(column_0_N_name)s"}


def _constraint_on(table: str, columns: list[str]) -> str:
    """The PostgreSQL name of the unique constraint over exactly ``columns``."""
    for constraint in sa.inspect(op.get_bind()).get_unique_constraints(table):
        if constraint["column_names"] == columns:
            return constraint["name"]
    raise RuntimeError(f"{table}: no unique constraint on {columns}")


def _replace_unique(table: str, autoincrement: bool, old: list[str], new: list[str], new_name: str) -> None:
    if op.get_bind().dialect.name == "sqlite":
        old_name = f"uq_{table}_connector_symbol_id" if "symbol" in old else f"uq_{table}_" + "_".join(old)
        with op.batch_alter_table(table, naming_convention=SQLITE_NAMES, recreate="always",
                                  table_kwargs={"sqlite_autoincrement": autoincrement}) as batch:
            batch.drop_constraint(old_name, type_="unique")
            batch.create_unique_constraint(new_name, new)
    else:
        op.drop_constraint(_constraint_on(table, old), table, type_="unique")
        op.create_unique_constraint(new_name, table, new)


def upgrade() -> None:
    for table, column, autoincrement in TABLES:
        _replace_unique(table, autoincrement, ["connector_id", column], ["connector_id", "symbol", column],
                        f"uq_{table}_connector_symbol_id")


def downgrade() -> None:
    """Fails if two markets already share an id: those rows cannot both fit the old key."""
    for table, column, autoincrement in TABLES:
        _replace_unique(table, autoincrement, ["connector_id", "symbol", column], ["connector_id", column],
                        f"uq_{table}_connector_id_{column}")
