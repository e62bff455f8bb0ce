"""The database's identity and write version, which every cache derived from it is keyed by.

The identity is drawn here, once per database: a database created anew at the same path or URL
gets another one, a restored copy keeps its own (its write version tells the copies apart).

Revision ID: 0009
Revises: 0008
"""
import secrets
import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    state = op.create_table(
        "database_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("identity", sa.String(length=36), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.Column("trades_epoch", sa.String(length=32), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_database_state_one_row"),
        sa.PrimaryKeyConstraint("id"),
    )
    versions = op.create_table(
        "database_versions",
        sa.Column("version", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("version"),
    )
    token = secrets.token_hex(16)
    op.bulk_insert(state, [{"id": 1, "identity": str(uuid.uuid4()), "version": 0, "token": token,
                            "trades_epoch": token}])
    op.bulk_insert(versions, [{"version": 0, "token": token}])


def downgrade() -> None:
    op.drop_table("database_versions")
    op.drop_table("database_state")
