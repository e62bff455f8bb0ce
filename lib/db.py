"""Engine, sessions and migrations.

One engine per database URL per process. SQLite gets foreign keys and WAL so the app,
the worker and the CLI can share the file; PostgreSQL needs nothing special. Statement
parameters never appear in errors (``hide_parameters``): they can hold password hashes and
ciphertext, and errors end up in logs. A SQLite file is created readable by its owner only
(its WAL and shared-memory files take the same mode), and a file replaced under a running
process (deleted and migrated anew) is reopened instead of read through stale handles.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, exc, make_url
from sqlalchemy.orm import Session, sessionmaker

from lib.settings import PROJECT_ROOT, get_settings

logging.getLogger("alembic").setLevel(logging.WARNING)  # its INFO lines repeat on every start

#: what the CLI and the worker tell an operator whose database has no tables or an old schema
MIGRATE_HINT = "run python -m lib.cli migrate"
#: SQLite's companion files, which hold recent writes (https://www.sqlite.org/tempfiles.html)
_SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")


class DatabaseNotReady(RuntimeError):
    """The database cannot be used as it is (unreachable, or not migrated); one plain sentence."""


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL; None for other databases and in-memory SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _private_file(path: Path) -> None:
    """Create the database file 0600 before SQLite does (it would use 0644 minus the umask), and
    tighten files an older version left readable by others.

    SQLite gives the WAL, shared-memory and journal files the database file's permissions
    (``robust_open`` with the mode of the database, https://www.sqlite.org/tempfiles.html).
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for suffix in _SQLITE_SUFFIXES:
        companion = path.with_name(path.name + suffix)
        with suppress(FileNotFoundError, PermissionError):
            if companion.stat().st_mode & 0o077:
                companion.chmod(0o600)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    return status.st_dev, status.st_ino


def _sqlite_engine(url: str, path: Path) -> Engine:
    engine = create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)

    @event.listens_for(engine, "do_connect")
    def create_private(_dialect, _record, _cargs, _cparams) -> None:  # noqa: ANN001 - pool callback
        _private_file(path)

    @event.listens_for(engine, "connect")
    def pragmas(dbapi_connection, record) -> None:  # noqa: ANN001 - DBAPI callback
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()
        record.info["file"] = _identity(path)

    @event.listens_for(engine, "checkout")
    def same_file(_dbapi_connection, record, _proxy) -> None:  # noqa: ANN001 - pool callback
        """A pooled connection keeps reading a deleted file's old contents: when the path now
        names another file (or none), every pooled connection is dropped and a new one opens
        (SQLAlchemy's pessimistic disconnect handling,
        https://docs.sqlalchemy.org/en/20/core/pooling.html#custom-legacy-pessimistic-ping)."""
        if record.info.get("file") != _identity(path):
            raise exc.InvalidatePoolError("the SQLite database file was replaced")

    return engine


_engines: dict[str, Engine] = {}
_factories: dict[str, sessionmaker[Session]] = {}


def get_engine(url: str | None = None) -> Engine:
    """The process's engine for ``url`` (default: the configured DATABASE_URL)."""
    url = url or get_settings().database_url
    if url not in _engines:
        path = _sqlite_file(url)
        if path is not None:
            _private_file(path)
            engine = _sqlite_engine(url, path)
        else:
            engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, hide_parameters=True)
        _engines[url] = engine
    return _engines[url]


def _session_factory(url: str) -> sessionmaker[Session]:
    if url not in _factories:
        _factories[url] = sessionmaker(get_engine(url), expire_on_commit=False)
    return _factories[url]


def dispose_engines() -> None:
    """Close every pooled connection (tests switching databases, forked workers)."""
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()
    _factories.clear()


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A unit of work: commits on success, rolls back everything on any error."""
    session = _session_factory(url or get_settings().database_url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(url: str | None = None) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", (url or get_settings().database_url).replace("%", "%%"))
    return config


def migrate(url: str | None = None) -> None:
    """Bring the schema to the newest revision; safe to call on every start."""
    get_engine(url or get_settings().database_url)  # creates the SQLite folder and a 0600 file
    command.upgrade(alembic_config(url), "head")


def check_schema(url: str | None = None) -> None:
    """Raise DatabaseNotReady unless the database answers and its schema is the newest.

    The CLI and the worker call it to tell "not migrated" (a database recreated empty, say)
    from "unreachable" in one sentence instead of a driver error.
    """
    url = url or get_settings().database_url
    try:
        with get_engine(url).connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    except exc.SQLAlchemyError as error:
        raise DatabaseNotReady(
            f"The database could not be reached ({type(error).__name__}): check DATABASE_URL and that it is up."
        ) from None
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    if current is None:
        raise DatabaseNotReady(f"The database has no tables yet: {MIGRATE_HINT}.")
    if current != head:
        raise DatabaseNotReady(f"The database schema is at revision {current}, this code needs {head}: "
                               f"{MIGRATE_HINT} (or update the code if the database is newer).")


def describe_failure(error: exc.SQLAlchemyError) -> str:
    """One sentence for a database error: unreachable, not migrated, or refused (without the
    driver's text, which may quote data)."""
    try:
        check_schema()
    except DatabaseNotReady as problem:
        return str(problem)
    return f"The database refused the change ({type(error).__name__}); nothing was changed."
