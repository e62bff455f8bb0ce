"""The snapshots epoch: drawn anew by a write that may change or remove balance snapshots.

Reconciliation keeps each connector's daily snapshots and continues them with the rows a sync
adds (``lib.daily_snapshots``); it may do so only while no snapshot was changed or removed.

Revision ID: 0010
Revises: 0009
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("database_state") as batch:
        batch.add_column(sa.Column("snapshots_epoch", sa.String(length=32), nullable=False, server_default=""))
    op.execute("UPDATE database_state SET snapshots_epoch = token")
    with op.batch_alter_table("database_state") as batch:
        batch.alter_column("snapshots_epoch", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("database_state") as batch:
        batch.drop_column("snapshots_epoch")
