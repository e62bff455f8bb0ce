"""The provisioning CLI: clients, connectors, vault; one clear line on errors, never a secret."""

from __future__ import annotations

import io
import json
import logging
import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import update

from lib.cli import main
from lib.db import dispose_engines, session_scope
from lib.models import Connector
from lib.settings import PROJECT_ROOT, get_settings
from lib.vault import load_vault
from tests.helpers import database_contents

#: store a connector without reaching its exchange (these tests have none)
OFFLINE = ("--skip-test", "--no-sync")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def marker(monkeypatch) -> str:
    """A random secret that must never show up anywhere but in the vault's ciphertext."""
    value = "MARK" + secrets.token_hex(12)
    monkeypatch.setenv("EXCHANGE_API_KEY", "key" + secrets.token_hex(6) + "WXYZ")
    monkeypatch.setenv("EXCHANGE_SECRET", value)
    return value


def test_client_commands(sqlite_url, capsys):
    assert run(capsys, "client", "add", "Sharp Foundation")[0] == 0
    code, _, err = run(capsys, "client", "add", "sharp foundation")
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    code, out, _ = run(capsys, "client", "list", "--json")
    assert [c["name"] for c in json.loads(out)] == ["Sharp Foundation"]
    assert run(capsys, "client", "remove", "Sharp Foundation")[0] == 0
    assert json.loads(run(capsys, "client", "list", "--json")[1]) == []


def test_connector_add_list_remove_never_prints_the_secret(sqlite_url, capsys, caplog, marker):
    caplog.set_level(logging.DEBUG)
    run(capsys, "client", "add", "Sharp")
    code, out, err = run(capsys, "connector", "add", "--client", "Sharp", "--exchange", "binance",
                         "--label", "desk", "--api-url", "http://127.0.0.1:9/binance", *OFFLINE)
    assert code == 0 and "…WXYZ" in out
    code, out_list, _ = run(capsys, "connector", "list", "--json")
    rows = json.loads(out_list)
    assert rows[0]["key"] == "…WXYZ" and rows[0]["exchange"] == "binance"
    code, out_test, err_test = run(capsys, "connector", "test", str(rows[0]["id"]))
    assert code == 1 and "could not be reached" in err_test
    database = Path(sqlite_url.removeprefix("sqlite:///"))
    files = [p for p in database.parent.iterdir() if p.name.startswith(database.name)]  # with -wal, -journal
    assert database in files
    db_bytes = b"".join(p.read_bytes() for p in files)
    for text in (out, err, out_list, out_test, err_test, caplog.text, db_bytes.decode("latin-1")):
        assert marker not in text
    assert run(capsys, "connector", "remove", str(rows[0]["id"]))[0] == 0
    assert json.loads(run(capsys, "connector", "list", "--json")[1]) == []


@pytest.mark.parametrize("argv, message", [
    (["connector", "add", "--client", "Nobody", "--exchange", "binance", *OFFLINE], "No client named"),
    (["connector", "add", "--client", "Sharp", "--exchange", "mtgox", *OFFLINE], "not supported"),
    (["connector", "add", "--client", "Sharp", "--exchange", "binance", "--api-url", "file:///etc", *OFFLINE], "http"),
    (["connector", "remove", "999"], "No connector"),
    (["pnl", "--connector", "999"], "No connector"),
    (["worker", "--interval", "0"], "positive number"),
])
def test_errors_are_one_line_and_change_nothing(sqlite_url, capsys, marker, argv, message):
    run(capsys, "client", "add", "Sharp")
    before = database_contents(sqlite_url)
    code, out, err = run(capsys, *argv)
    assert code != 0 and message in err and err.count("\n") == 1 and marker not in err + out
    assert database_contents(sqlite_url) == before


@pytest.mark.parametrize(("name", "value"), [
    ("SYNC_INTERVAL_SECONDS", "abc"), ("CACHE_TTL_SECONDS", "-5"), ("LOG_LEVEL", "chatty"),
    ("SYNC_INTERVAL_SECONDS", "nan"), ("SYNC_INTERVAL_SECONDS", "inf"), ("SYNC_INTERVAL_SECONDS", "1e3"),
    ("SYNC_INTERVAL_SECONDS", "99999999999999999999"), ("SESSION_IDLE_MINUTES", "0"),
    ("DEMO_SIMULATOR_PORT", "99999"), ("CACHE_TTL_SECONDS", "86401"),
])
def test_an_unusable_setting_is_one_line_naming_it(sqlite_url, capsys, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        code, out, err = run(capsys, "client", "list")
    finally:
        monkeypatch.delenv(name)
        get_settings.cache_clear()
    assert code == 2 and out == "" and err.startswith(f"error: {name} must be") and err.count("\n") == 1


def test_debug_logging_keeps_http_libraries_quiet(sqlite_url, capsys, monkeypatch):
    """At DEBUG, urllib3 and ccxt would log request URLs and headers, which carry keys."""
    for name in ("urllib3", "ccxt", "aiohttp"):  # as in a fresh process, whatever ran before
        monkeypatch.setattr(logging.getLogger(name), "level", logging.NOTSET)
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    get_settings.cache_clear()
    try:
        assert run(capsys, "client", "list")[0] == 0
    finally:
        monkeypatch.delenv("LOG_LEVEL")
        get_settings.cache_clear()
    for name in ("urllib3", "ccxt", "aiohttp"):
        assert logging.getLogger(name).level == logging.WARNING, name  # pinned, whatever the root says


def test_missing_credential_without_terminal_is_an_error(sqlite_url, capsys, monkeypatch):
    monkeypatch.delenv("EXCHANGE_API_KEY", raising=False)
    monkeypatch.delenv("EXCHANGE_SECRET", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO())
    run(capsys, "client", "add", "Sharp")
    code, _, err = run(capsys, "connector", "add", "--client", "Sharp", "--exchange", "binance", *OFFLINE)
    assert code == 2 and "EXCHANGE_API_KEY" in err


def test_vault_rotate_then_old_key_dropped(sqlite_url, capsys, monkeypatch, marker):
    run(capsys, "client", "add", "Sharp")
    run(capsys, "connector", "add", "--client", "Sharp", "--exchange", "binance", *OFFLINE)
    old = get_settings().encryption_keys[0]
    new = Fernet.generate_key().decode()
    monkeypatch.setenv("ENCRYPTION_KEYS", f"{new},{old}")
    get_settings.cache_clear()
    code, out, _ = run(capsys, "vault", "rotate")
    assert code == 0 and "re-encrypted 1" in out
    monkeypatch.setenv("ENCRYPTION_KEYS", new)
    get_settings.cache_clear()
    code, out, err = run(capsys, "connector", "test", "1")
    assert "decrypt" not in err  # the newest key alone opens it now
    assert json.loads(run(capsys, "connector", "list", "--json")[1])[0]["decryptable"] is True
    monkeypatch.setenv("ENCRYPTION_KEYS", Fernet.generate_key().decode())
    get_settings.cache_clear()
    assert json.loads(run(capsys, "connector", "list", "--json")[1])[0]["decryptable"] is False
    assert "cannot decrypt with the configured keys" in run(capsys, "connector", "list")[1]
    before = database_contents(sqlite_url)
    code, _, err = run(capsys, "vault", "rotate")
    assert code == 2 and "#1" in err and "nothing was changed" in err
    assert database_contents(sqlite_url) == before


def test_stored_connector_of_a_delisted_exchange_is_reported(sqlite_url, capsys, marker):
    run(capsys, "client", "add", "Sharp")
    run(capsys, "connector", "add", "--client", "Sharp", "--exchange", "binance", *OFFLINE)
    with session_scope() as session:
        session.execute(update(Connector).values(exchange_id="mtgox"))
    code, out, _ = run(capsys, "connector", "list")
    assert code == 0 and "not supported by the installed ccxt" in out
    code, _, err = run(capsys, "connector", "test", "1")
    assert code == 2 and "not supported" in err


def test_module_entry_point_runs(sqlite_url):
    result = subprocess.run([sys.executable, "-m", "lib.cli", "client", "list", "--json"],
                            capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=60)
    assert result.returncode == 0 and json.loads(result.stdout) == []


def test_connector_add_tests_the_key_first_and_stores_nothing_on_failure(sqlite_url, capsys, marker):
    run(capsys, "client", "add", "Sharp")
    before = database_contents(sqlite_url)
    code, out, err = run(capsys, "connector", "add", "--client", "Sharp", "--exchange", "binance",
                         "--api-url", "http://127.0.0.1:9/binance")
    assert code == 2 and "connection test failed" in err and "Nothing was saved" in err
    assert marker not in out + err
    assert database_contents(sqlite_url) == before


def test_connector_add_against_the_simulator_saves_and_syncs_at_once(sqlite_url, capsys, monkeypatch):
    from lib.simulator import Simulator, SimulatorConfig

    with Simulator(SimulatorConfig(seed=3, accounts=1, days=5, fills_per_account=30, dialects=["okx"])) as sim:
        account = sim.accounts[0]
        monkeypatch.setenv("EXCHANGE_API_KEY", account.api_key)
        monkeypatch.setenv("EXCHANGE_SECRET", account.secret)
        monkeypatch.setenv("EXCHANGE_PASSWORD", account.password)
        run(capsys, "client", "add", "Sharp")
        code, out, err = run(capsys, "connector", "add", "--client", "Sharp", "--exchange", "okx",
                             "--api-url", account.api_url)
        assert code == 0, err
        assert "connector 1 saved" in out and "30 new fill(s)" in out
        for secret in (account.secret, account.password):
            assert secret not in out + err


def test_sqlite_files_and_the_generated_key_are_readable_by_their_owner_only(tmp_path, monkeypatch, capsys):
    """Even under a umask that lets everyone read new files; a database an older version left
    readable is tightened."""
    data = tmp_path / "data"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{data / 'dashboard.db'}")
    monkeypatch.setenv("DATA_DIR", str(data))
    monkeypatch.setenv("ENCRYPTION_KEYS", "")
    monkeypatch.setenv("DOTENV_PATH", str(tmp_path / "no.env"))
    get_settings.cache_clear()
    previous = os.umask(0o022)
    try:
        assert run(capsys, "migrate")[0] == 0
        assert run(capsys, "client", "add", "Sharp")[0] == 0  # writes: the WAL and shared memory exist now
        load_vault()
        files = {p.name: stat.S_IMODE(p.stat().st_mode) for p in data.iterdir()}
        assert {"dashboard.db", "dashboard.db-wal", "dashboard.db-shm", "encryption.key"} <= set(files)
        assert files == dict.fromkeys(files, 0o600) and stat.S_IMODE(data.stat().st_mode) == 0o700
        dispose_engines()
        (data / "dashboard.db").chmod(0o644)
        assert run(capsys, "client", "list")[0] == 0
        assert stat.S_IMODE((data / "dashboard.db").stat().st_mode) == 0o600
    finally:
        os.umask(previous)
        dispose_engines()
        get_settings.cache_clear()
