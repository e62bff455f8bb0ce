"""Reconciliation status per sync result, and CSV imports of history the exchange no longer serves.

Revision ID: 0006
Revises: 0005
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from lib.models import UtcDateTime

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sync_results") as batch:
        batch.add_column(sa.Column("reconciliation", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("unbalanced", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "history_imports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("new_rows", sa.Integer(), nullable=False),
        sa.Column("first_timestamp", sa.BigInteger(), nullable=True),
        sa.Column("last_timestamp", sa.BigInteger(), nullable=True),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("imported_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["connector_id"], ["connectors.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_history_imports_connector_id", "history_imports", ["connector_id"])
    for table in ("trades", "transfers"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("import_id", sa.Integer(), nullable=True))
            batch.create_foreign_key(
                f"fk_{table}_import_id", "history_imports", ["import_id"], ["id"], ondelete="SET NULL"
            )


def downgrade() -> None:
    for table in ("transfers", "trades"):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"fk_{table}_import_id", type_="foreignkey")
            batch.drop_column("import_id")
    op.drop_index("ix_history_imports_connector_id", table_name="history_imports")
    op.drop_table("history_imports")
    with op.batch_alter_table("sync_results") as batch:
        batch.drop_column("unbalanced")
        batch.drop_column("reconciliation")
