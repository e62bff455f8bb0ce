"""Client statements kept per month, and a contract fill's realised P&L as the exchange reports it.

Revision ID: 0008
Revises: 0007
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from lib.models import Amount, UtcDateTime

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("trades") as batch:
        batch.add_column(sa.Column("realized_pnl", Amount(), nullable=True))
    op.create_table(
        "statements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("data_version", sa.String(length=200), nullable=False),
        sa.Column("generated_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("pdf", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("client_id", "period"),
    )
    op.create_index("ix_statements_client_id", "statements", ["client_id"])


def downgrade() -> None:
    op.drop_index("ix_statements_client_id", table_name="statements")
    op.drop_table("statements")
    with op.batch_alter_table("trades") as batch:
        batch.drop_column("realized_pnl")
