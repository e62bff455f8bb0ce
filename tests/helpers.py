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


def session_state_dump(at) -> str:  # noqa: ANN001 - streamlit.testing AppTest
    """Every value the session keeps, widget values included (the public view hides unkeyed ones).

    Left out: the raw widget message of the run just made (``_new_widget_state``), which is the
    browser's request itself and is replaced by the next interaction.
    """
    state = at.session_state._state._state
    public = {key: at.session_state[key] for key in at.session_state}
    return repr(state._old_state) + repr(state._new_session_state) + repr(public)
