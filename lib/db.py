"""Engine, sessions and migrations.

One engine per database URL per process. SQLite gets foreign keys and WAL so the app,
the worker and the CLI can share the file; PostgreSQL needs nothing special. Statement
parameters never appear in errors (``hide_parameters``): they can hold password hashes and
ciphertext, and errors end up in logs. A SQLite file is created readable by its owner only
(its WAL and shared-memory files take the same mode), and a file replaced under a running
process (deleted and migrated anew) is reopened instead of read through stale handles.

Write version (``lib.models.DatabaseState``): every commit that wrote data the pages derive from
bumps it in the same transaction, just before COMMIT. The engine's cursor events see every
statement, whichever path sent it (an ORM flush, ``session.execute(update(...))``,
``session.connection().execute(insert(...))`` as the sync does, ``text()``): a write to a
versioned table marks the connection, and the ``commit`` event bumps once for the whole
transaction. Why not triggers: SQLite has only row-level ones (a 100k-fill insert would update
the version row 100k times, +40% measured) and cannot draw one token per transaction; and the
bump being the transaction's last statement means on PostgreSQL the version row is locked last
and only for the moment of the commit, so it can neither deadlock with nor hold up other writers.
Writes that bypass these engines' Connections (psql, another tool, a raw DBAPI connection as the
benchmarks' bulk loads use) do not bump: send them through ``lib.db`` or call ``bump_version``.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, delete, event, exc, insert, make_url, text, update
from sqlalchemy.orm import Session, sessionmaker

from lib.models import BalanceSnapshot, DatabaseState, DatabaseVersion
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


# --------------------------------------------------------------------------- write version

#: tables no page derives a figure from: writing them alone leaves the version as it is
UNVERSIONED_TABLES = frozenset({"users", "user_clients", "auth_sessions", "login_throttles", "audit_log",
                                "alembic_version", DatabaseState.__tablename__, DatabaseVersion.__tablename__})
#: columns no page derives a figure from: an UPDATE setting only these leaves the version as it
#: is (the sync's leases, taken and renewed many times a run, keep ``updated_at`` as it was)
UNVERSIONED_COLUMNS = {"connectors": frozenset({"lease_owner", "lease_until", "updated_at"})}
#: deleting a row of these deletes fills and balance snapshots with it (ON DELETE CASCADE)
_FILL_OWNERS = frozenset({"connectors", "clients"})
#: write versions whose token is kept (``DatabaseVersion``); older ones are pruned every ``_PRUNE_EVERY``
VERSIONS_KEPT = 100_000
_PRUNE_EVERY = 1_000
#: ``Connection.info`` key: the transaction wrote versioned data (value: ``Rewrites``)
_PENDING = "lib.db.write_pending"

_DML = re.compile(
    r"""^\s*(?P<verb>INSERT(?:\s+OR\s+(?P<conflict>\w+))?\s+INTO|REPLACE\s+INTO|UPDATE(?:\s+OR\s+\w+)?
        |DELETE\s+FROM|TRUNCATE(?:\s+TABLE)?(?:\s+ONLY)?)\s+(?:"?\w+"?\.)?"?(?P<table>\w+)""",
    re.IGNORECASE | re.VERBOSE)
_UPSERT = re.compile(r"\bON\s+CONFLICT\b.*\bDO\s+UPDATE\b", re.IGNORECASE | re.DOTALL)
_SET = re.compile(r"\bSET\s+(.*?)(?:\bWHERE\b|\bRETURNING\b|\bFROM\b|$)", re.IGNORECASE | re.DOTALL)
_ASSIGNED = re.compile(r'(?:^|,)\s*"?(\w+)"?\s*=')
_CTE_WRITE = re.compile(r"\)\s*(?:INSERT|UPDATE|DELETE|MERGE)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Rewrites:
    """What one SQL statement does to what caches build upon: ``writes`` versioned data (bumps the
    write version), may change or remove ``fills`` already stored, may change or remove
    ``snapshots`` (balance snapshots) already stored. Adding rows rewrites nothing."""

    writes: bool
    fills: bool = False
    snapshots: bool = False

    def __or__(self, other: Rewrites) -> Rewrites:
        return Rewrites(self.writes or other.writes, self.fills or other.fills, self.snapshots or other.snapshots)


_READS = Rewrites(False)


@lru_cache(maxsize=2048)
def classify_write(statement: str) -> Rewrites:
    """What one SQL statement does (``Rewrites``).

    Plain inserts into trades or balance snapshots only add rows; an update, a delete, an upsert
    or a REPLACE of them, and a delete of the connectors or clients that own them, may change or
    remove some. A statement whose target is not parsed (a CTE that writes, MERGE) counts as all.
    """
    head = statement.lstrip()[:8].upper()
    if not head.startswith(("INSERT", "UPDATE", "DELETE", "REPLACE", "TRUNCATE", "WITH", "MERGE")):
        return _READS
    match = _DML.match(statement)
    if match is None:
        writes = head.startswith("MERGE") or bool(_CTE_WRITE.search(statement))
        return Rewrites(writes, writes, writes)
    table = match["table"].lower()
    if table in UNVERSIONED_TABLES:
        return _READS
    verb = match["verb"].split()[0].upper()
    if verb == "UPDATE" and table in UNVERSIONED_COLUMNS:
        assigned = _SET.search(statement)
        # every "name =" at the start of an assignment; a value's own text can only add names
        if assigned is not None and set(_ASSIGNED.findall(assigned[1])) <= UNVERSIONED_COLUMNS[table]:
            return _READS
    replaces = verb in ("REPLACE", "UPDATE", "DELETE", "TRUNCATE") or (match["conflict"] or "").upper() == "REPLACE" \
        or (verb == "INSERT" and bool(_UPSERT.search(statement)))
    owner = table in _FILL_OWNERS and replaces and verb != "UPDATE"
    return Rewrites(True, (table == "trades" and replaces) or owner,
                    (table == BalanceSnapshot.__tablename__ and replaces) or owner)


def _has_state_table(connection: Connection) -> bool:
    """Whether the schema has the version row's table yet (a database at a revision before 0009
    does not; its migration to 0009 bumps the version)."""
    if connection.dialect.name == "sqlite":
        query = text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name")
    else:
        query = text("SELECT to_regclass(:name) IS NOT NULL")
    return bool(connection.execute(query, {"name": DatabaseState.__tablename__}).scalar())


def bump_version(connection: Connection, rewrites: Rewrites = _READS) -> int | None:
    """Advance the write version in ``connection``'s transaction: version + 1 and a new random
    token (and a new trades or snapshots epoch when fills or balance snapshots may have changed);
    the token is kept per version (``DatabaseVersion``). A database that lost its row gets a new
    identity. Returns the new version, None for a database migrated before 0009."""
    if not _has_state_table(connection):
        return None
    token = secrets.token_hex(16)
    values: dict[str, Any] = {"version": DatabaseState.version + 1, "token": token}
    if rewrites.fills:
        values["trades_epoch"] = token
    if rewrites.snapshots:
        values["snapshots_epoch"] = token
    version = connection.execute(update(DatabaseState).where(DatabaseState.id == 1).values(values)
                                 .returning(DatabaseState.version)).scalar_one_or_none()
    if version is None:
        version = 0
        connection.execute(delete(DatabaseVersion))
        connection.execute(insert(DatabaseState).values(id=1, identity=str(uuid.uuid4()), version=version,
                                                        token=token, trades_epoch=token, snapshots_epoch=token))
    connection.execute(insert(DatabaseVersion).values(version=version, token=token))
    if version % _PRUNE_EVERY == 0:
        connection.execute(delete(DatabaseVersion).where(DatabaseVersion.version <= version - VERSIONS_KEPT))
    return version


def has_pending_writes(connection: Connection) -> bool:
    """Whether ``connection``'s transaction wrote versioned data not committed yet: the version
    moves at its commit, so until then what it reads is not what the version names."""
    return _PENDING in connection.info


def _track_writes(engine: Engine) -> None:
    """Bump the write version at the commit of every transaction that wrote versioned data."""

    @event.listens_for(engine, "before_cursor_execute")
    def note(connection, _cursor, statement, _parameters, _context, _executemany) -> None:  # noqa: ANN001
        found = classify_write(statement)
        if found.writes:
            connection.info[_PENDING] = found | connection.info.get(_PENDING, found)

    @event.listens_for(engine, "commit")
    def bump(connection: Connection) -> None:
        rewrites = connection.info.pop(_PENDING, None)
        if rewrites is not None:
            bump_version(connection, rewrites)

    @event.listens_for(engine, "rollback")
    def forget(connection: Connection) -> None:
        connection.info.pop(_PENDING, None)

    @event.listens_for(engine.pool, "checkin")
    def returned(_dbapi_connection, record) -> None:  # noqa: ANN001 - pool callback
        if record is not None:
            record.info.pop(_PENDING, None)


# --------------------------------------------------------------------------- engines


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
        _track_writes(engine)
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


def _revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def migrate(url: str | None = None) -> None:
    """Bring the schema to the newest revision; safe to call on every start.

    A migration may rewrite stored data (0007 turned every amount into an exact decimal), so an
    upgrade that changed the revision bumps the write version as a rewrite of fills and snapshots would.
    """
    engine = get_engine(url or get_settings().database_url)  # creates the SQLite folder and a 0600 file
    before = _revision(engine)
    command.upgrade(alembic_config(url), "head")
    if _revision(engine) != before:
        with engine.begin() as connection:
            bump_version(connection, Rewrites(True, fills=True, snapshots=True))


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
