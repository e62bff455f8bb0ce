"""Migrations from empty produce exactly the models' schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from lib.db import get_engine, migrate
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
        assert MigrationContext.configure(connection).get_current_revision() == "0001"
