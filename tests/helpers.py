"""Helpers shared by tests: database snapshots for "nothing changed" assertions."""

from __future__ import annotations

from sqlalchemy import select

from lib.db import get_engine
from lib.models import Base


def database_contents(url: str) -> dict[str, list[tuple]]:
    """Every row of every table, in a stable order: equal before and after = nothing changed."""
    contents = {}
    with get_engine(url).connect() as connection:
        for name, table in Base.metadata.tables.items():
            rows = connection.execute(select(table)).all()
            contents[name] = sorted((tuple(row) for row in rows), key=repr)
    return contents
