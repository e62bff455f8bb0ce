"""Shared fixtures: every database test runs on SQLite and on PostgreSQL.

PostgreSQL tests get a fresh database each (created and dropped here). Without a server
they skip with the reason, unless ``CI`` is set: then they fail, because CI installs one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from cryptography.fernet import Fernet

from lib import db as db_module
from lib.settings import get_settings

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_connect():  # noqa: ANN202 - psycopg connection
    import psycopg

    return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)


def _postgres_available() -> str | None:
    """None when a server answers, else the reason it does not."""
    try:
        with _pg_connect():
            return None
    except Exception as error:  # noqa: BLE001 - any failure means "no server here"
        return f"PostgreSQL not reachable at {PG_ADMIN_URL} ({type(error).__name__})"


def skip_or_fail(reason: str) -> None:
    """Skip with a visible reason on a developer machine; fail in CI, which must have it."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this must not skip)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_admin() -> str:
    reason = _postgres_available()
    if reason:
        skip_or_fail(reason)
    return PG_ADMIN_URL


def _new_pg_database() -> str:
    name = f"test_{uuid.uuid4().hex[:12]}"
    with _pg_connect() as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return name


def _drop_pg_database(name: str) -> None:
    with _pg_connect() as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def encryption_key() -> str:
    return Fernet.generate_key().decode()


def _reset_caches() -> None:
    """Settings, engines and Streamlit's data caches: a test with a fresh database starts and ends
    with nothing kept from another one (pages' loaders and kept drawings live in this process)."""
    get_settings.cache_clear()
    db_module.dispose_engines()
    st.cache_data.clear()


def _use_database(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encryption_key: str) -> str:
    """Point the settings at ``url`` with a fresh key and data folder, and migrate it."""
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ENCRYPTION_KEYS", encryption_key)
    monkeypatch.setenv("DOTENV_PATH", str(tmp_path / "no.env"))
    monkeypatch.setenv("RUN_WORKER_IN_APP", "false")  # tests sync explicitly
    _reset_caches()
    db_module.migrate(url)
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                 encryption_key: str) -> Iterator[str]:
    """A migrated, empty database (SQLite file or fresh PostgreSQL database) set as DATABASE_URL."""
    pg_name = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'test.db'}"
    else:
        request.getfixturevalue("postgres_admin")
        pg_name = _new_pg_database()
        url = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{pg_name}"
    yield _use_database(url, tmp_path, monkeypatch, encryption_key)
    _reset_caches()
    if pg_name:
        _drop_pg_database(pg_name)


@pytest.fixture
def sqlite_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encryption_key: str) -> Iterator[str]:
    """SQLite only, for tests where the backend does not matter (CLI, pure flows)."""
    yield _use_database(f"sqlite:///{tmp_path / 'test.db'}", tmp_path, monkeypatch, encryption_key)
    _reset_caches()
