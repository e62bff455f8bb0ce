"""Complete history: balances per account type, closed-order history, ledger entries, coverage per stream.

Revision ID: 0003
Revises: 0002
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from lib.models import UtcDateTime

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("balance_snapshots") as batch:
        batch.add_column(sa.Column("account_type", sa.String(length=30), nullable=False, server_default=""))
    op.create_table(
        "order_history",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.String(length=100), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=True),
        sa.Column("last_update", sa.BigInteger(), nullable=True),
        sa.Column("symbol", sa.String(length=50), nullable=False),
        sa.Column("side", sa.String(length=4), nullable=True),
        sa.Column("type", sa.String(length=20), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=True),
        sa.Column("price", sa.Double(), nullable=True),
        sa.Column("average", sa.Double(), nullable=True),
        sa.Column("amount", sa.Double(), nullable=True),
        sa.Column("filled", sa.Double(), nullable=True),
        sa.Column("cost", sa.Double(), nullable=True),
        sa.Column("fee_cost", sa.Double(), nullable=True),
        sa.Column("fee_currency", sa.String(length=30), nullable=True),
        sa.ForeignKeyConstraint(["connector_id"], ["connectors.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("connector_id", "symbol", "order_id", name="uq_order_history_connector_symbol_id"),
    )
    op.create_index("ix_order_history_connector_ts", "order_history", ["connector_id", "timestamp"])
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("entry_key", sa.String(length=200), nullable=False),
        sa.Column("entry_id", sa.String(length=100), nullable=True),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=30), nullable=False),
        sa.Column("amount", sa.Double(), nullable=False),
        sa.Column("direction", sa.String(length=3), nullable=True),
        sa.Column("type", sa.String(length=30), nullable=True),
        sa.Column("account", sa.String(length=50), nullable=True),
        sa.Column("reference_id", sa.String(length=100), nullable=True),
        sa.Column("fee_cost", sa.Double(), nullable=True),
        sa.Column("fee_currency", sa.String(length=30), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=True),
        sa.ForeignKeyConstraint(["connector_id"], ["connectors.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("connector_id", "entry_key", name="uq_ledger_entries_connector_key"),
    )
    op.create_index("ix_ledger_entries_connector_ts", "ledger_entries", ["connector_id", "timestamp"])
    op.create_table(
        "history_coverage",
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("stream", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("oldest_available", sa.BigInteger(), nullable=True),
        sa.Column("lookback_source", sa.String(length=200), nullable=False),
        sa.Column("fetched_from", sa.BigInteger(), nullable=True),
        sa.Column("fetched_to", sa.BigInteger(), nullable=True),
        sa.Column("complete_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("failed_from", sa.BigInteger(), nullable=True),
        sa.Column("failed_to", sa.BigInteger(), nullable=True),
        sa.Column("failed_error", sa.Text(), nullable=True),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["connector_id"], ["connectors.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("connector_id", "stream"),
    )


def downgrade() -> None:
    op.drop_table("history_coverage")
    op.drop_index("ix_ledger_entries_connector_ts", table_name="ledger_entries")
    op.drop_table("ledger_entries")
    op.drop_index("ix_order_history_connector_ts", table_name="order_history")
    op.drop_table("order_history")
    with op.batch_alter_table("balance_snapshots") as batch:
        batch.drop_column("account_type")
