"""Bad input: every CLI command answers it with one plain sentence on stderr, a non-zero exit
and the database unchanged; database errors never carry statement parameters (password hashes)."""

from __future__ import annotations

import io
import logging
import secrets
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import ccxt.async_support as ccxt_async
import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError

from lib import users
from lib.access import SYSTEM
from lib.cli import main
from lib.db import get_engine, session_scope
from lib.settings import get_settings
from lib.simulator import Simulator, SimulatorConfig
from lib.sync import markets, sync_connectors
from tests.helpers import database_contents
from tests.sync_helpers import add_connectors, differences

#: store a connector without reaching its exchange
OFFLINE = ("--skip-test", "--no-sync")
ADD = ("connector", "add", "--client", "Sharp", "--exchange", "binance", *OFFLINE)
HUGE = "99999999999999999999"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXCHANGE_API_KEY", "key" + secrets.token_hex(6))
    monkeypatch.setenv("EXCHANGE_SECRET", secrets.token_hex(16))


CASES = [
    # empty strings where a value is needed (``sync --client ""`` used to sync every client)
    (["sync", "--client", ""], "--client needs a client name; it was empty."),
    (["sync", "--client", "   "], "--client needs a client name; it was empty."),
    (["pnl", "--client", ""], "--client needs a client name; it was empty."),
    (["balances", "--client", ""], "--client needs a client name; it was empty."),
    (["client", "add", ""], "name needs a client name; it was empty."),
    (["client", "remove", ""], "name needs a client name; it was empty."),
    (["user", "add", "", "--role", "admin"], "username needs a user name; it was empty."),
    (["user", "disable", ""], "username needs a user name; it was empty."),
    (["user", "assign", "bob", "--client", ""], "--client needs a client name; it was empty."),
    (["connector", "add", "--client", "", "--exchange", "binance", *OFFLINE], "--client needs a client name"),
    (["connector", "add", "--client", "Sharp", "--exchange", "", *OFFLINE], "--exchange needs an exchange id"),
    ([*ADD, "--label", ""], "--label needs a label; it was empty."),
    ([*ADD, "--api-url", ""], "--api-url needs a URL"),
    # ids no row can have, and ids that are not numbers
    (["sync", "--connector", HUGE], f"No connector with id {HUGE}."),
    (["sync", "--connector", "0"], "No connector with id 0."),
    (["sync", "--connector", "abc"], "A connector id is a whole number, not 'abc'."),
    (["connector", "test", HUGE], f"No connector with id {HUGE}."),
    (["connector", "remove", HUGE], f"No connector with id {HUGE}."),
    (["connector", "remove", "1.5"], "A connector id is a whole number, not '1.5'."),
    (["pnl", "--connector", HUGE], f"No connector with id {HUGE}."),
    # malformed URLs, ports
    ([*ADD, "--api-url", "http://[::1"], "The API URL is malformed"),
    ([*ADD, "--api-url", "http://127.0.0.1:99999"], "The API URL is malformed"),
    ([*ADD, "--api-url", "http://127.0.0.1:0/x"], "The API URL is malformed"),
    (["demo", "--port", "99999"], "--port must be a whole number from 1 to 65535, not '99999'."),
    (["demo", "--port", "0"], "--port must be a whole number from 1 to 65535, not '0'."),
    # over-long fields
    ([*ADD, "--label", "x" * 101], "Label is too long (101 characters; at most 100)."),
    (["connector", "add", "--client", "Sharp", "--exchange", "x" * 1000, *OFFLINE], "is not supported"),
    ([*ADD, "--api-url", "http://h/" + "p" * 600], "The API URL is too long"),
    (["client", "add", "n" * 101], "Name is too long"),
    # worker intervals that would spin, overflow or never fire
    *[(["worker", f"--interval={value}"], "--interval must be a positive number of seconds from 1 to 86400")
      for value in ("nan", "inf", "-inf", "-5", "0", "1e300", HUGE, "abc", "")],
    # bytes that are not UTF-8 (a shell passes them on; Python holds them as lone surrogates)
    (["client", "add", "Sharp\udcff"], "Argument 3 is not valid UTF-8 text."),
    # argparse's own refusals, as one line too
    (["user", "add", "bob", "--role", "boss"], "invalid choice: 'boss'"),
    (["connector", "add", "--exchange", "binance"], "the following arguments are required: --client"),
]


@pytest.mark.parametrize(("argv", "message"), CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_bad_input_is_one_sentence_and_changes_nothing(sqlite_url: str, capsys: pytest.CaptureFixture[str],
                                                       credentials: None, argv: list[str], message: str) -> None:
    assert run(capsys, "client", "add", "Sharp")[0] == 0
    before = database_contents(sqlite_url)
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert "unexpected" not in err and "Traceback" not in err
    assert database_contents(sqlite_url) == before


@pytest.mark.parametrize("argv", [["sync", "--connector", HUGE], ["pnl", "--connector", HUGE],
                                  ["connector", "remove", HUGE], [*ADD, "--api-url", "http://[::1"],
                                  [*ADD, "--label", "y" * 101]])
def test_bad_ids_and_long_fields_on_either_database(database_url: str, capsys: pytest.CaptureFixture[str],
                                                   credentials: None, argv: list[str]) -> None:
    """PostgreSQL refuses to compare an INTEGER with 10^20 (a DataError before): caught first."""
    run(capsys, "client", "add", "Sharp")
    before = database_contents(database_url)
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and err.count("\n") == 1 and "unexpected" not in err, err
    assert database_contents(database_url) == before


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def unmigrated_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                   encryption_key: str) -> str:
    """An empty database, as after it was recreated: the settings point at it, no migration ran."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'empty.db'}"
    else:
        request.getfixturevalue("postgres_admin")
        from tests.conftest import PG_ADMIN_URL, _drop_pg_database, _new_pg_database

        name = _new_pg_database()
        request.addfinalizer(lambda: _drop_pg_database(name))
        url = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ENCRYPTION_KEYS", encryption_key)
    monkeypatch.setenv("DOTENV_PATH", str(tmp_path / "no.env"))
    get_settings.cache_clear()
    from lib import db

    request.addfinalizer(db.dispose_engines)
    request.addfinalizer(get_settings.cache_clear)
    return url


@pytest.mark.parametrize("argv", [["client", "list"], ["client", "add", "Sharp"], ["connector", "list"],
                                  ["sync"], ["worker", "--interval", "5"], ["user", "list"], ["balances"]])
def test_an_unmigrated_database_says_run_migrate(unmigrated_url: str, capsys: pytest.CaptureFixture[str],
                                                 argv: list[str]) -> None:
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert err == "error: The database has no tables yet: run python -m lib.cli migrate.\n"
    assert inspect(get_engine(unmigrated_url)).get_table_names() == []  # nothing was created


def test_an_unreachable_database_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")  # nothing listens on port 1
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DOTENV_PATH", str(tmp_path / "no.env"))
    get_settings.cache_clear()
    try:
        code, out, err = run(capsys, "client", "list")
    finally:
        get_settings.cache_clear()
        from lib import db

        db.dispose_engines()
    assert (code, out) == (2, "")
    assert err.startswith("error: The database could not be reached (OperationalError): check DATABASE_URL")
    assert err.count("\n") == 1


def test_a_failed_user_change_logs_no_password_hash(database_url: str, monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """A user change the database refuses (here: an email another user has, past the check, as
    when two admins save at once): its error, logged as the admin page logs it, holds no hash."""
    marker = "$argon2id$v=19$MARK" + secrets.token_hex(16)
    with session_scope() as session:
        users.create_user(session, SYSTEM, "first", "analyst", "a long password 1", "same@example.com")
    monkeypatch.setattr(users, "hash_password", lambda _password: marker)
    monkeypatch.setattr(users, "_check_email_free", lambda *_args, **_kw: None)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(IntegrityError) as caught, session_scope() as session:
        users.create_user(session, SYSTEM, "second", "analyst", "a long password 2", "same@example.com")
    logging.getLogger("lib.ui.user_admin").exception("user change failed", exc_info=caught.value)
    assert "parameters hidden" in str(caught.value)
    assert marker not in str(caught.value) and marker not in caplog.text


# --- exchange strings longer than their column ----------------------------------------------

LONG_ASSET = "A" * 40  # balance_snapshots.asset holds 30
LONG_SYMBOL = "S" * 55 + "/USDT"  # orders.symbol holds 50


def _with_one_long_row(method: Callable[..., Awaitable[Any]],
                       change: Callable[[Any], Any]) -> Callable[..., Awaitable[Any]]:
    """ccxt's ``method`` whose first non-empty answer also holds one row made too long by ``change``."""
    done: list[bool] = []

    async def patched(self: Any, *args: Any, **kwargs: Any) -> Any:
        answer = await method(self, *args, **kwargs)
        if answer and not done:
            done.append(True)
            return change(answer)
        return answer
    return patched


def test_exchange_strings_longer_than_a_column_are_refused_per_row(
        database_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """On PostgreSQL such a row used to fail the connector's sync, every sync; now it is left out,
    logged and counted, and everything else the exchange sent is stored."""
    cls = ccxt_async.okx
    # copies of real rows with another id (OKX pages fills by the bill id in "info", kept as it is)
    long_trade = lambda trades: [*trades, {**trades[0], "id": "9" * 120}]  # noqa: E731 - trades.trade_id holds 100
    long_deposit = lambda rows: [*rows, {**rows[0], "id": "long-currency", "currency": "C" * 40}]  # noqa: E731
    long_order = lambda orders: [*orders, {**orders[0], "id": orders[0]["id"] + "1", "symbol": LONG_SYMBOL}]  # noqa: E731

    def long_balance(balance: dict[str, Any]) -> dict[str, Any]:
        balance = {**balance, LONG_ASSET: {"free": 1.0, "used": 0.0, "total": 1.0}}
        for part, amount in (("free", 1.0), ("used", 0.0), ("total", 1.0)):
            balance[part] = {**balance[part], LONG_ASSET: amount}
        return balance

    for name, change in (("fetch_my_trades", long_trade), ("fetch_deposits", long_deposit),
                         ("fetch_open_orders", long_order), ("fetch_balance", long_balance)):
        monkeypatch.setattr(cls, name, _with_one_long_row(getattr(cls, name), change))
    markets.forget()
    config = SimulatorConfig(seed=7, accounts=1, days=10, fills_per_account=60, dialects=["okx"])
    caplog.set_level(logging.WARNING, logger="lib.sync.rows")
    with Simulator(config) as sim:
        ids = add_connectors(sim)
        report = sync_connectors(SYSTEM)
        (result,) = report.results
        assert result.success, result.error
        assert result.refused == 4 and caplog.text.count("row was refused") == 4
        for table, column in (("trades", "trade_id has 120 characters"), ("transfers", "currency has 40"),
                              ("orders", "symbol has 60"), ("balance_snapshots", "asset has 40")):
            assert f"a {table} row was refused: {column}" in caplog.text
        assert differences(sim, sim.accounts[0].id, ids[sim.accounts[0].id]) == []  # the rest is all there
    contents = repr(database_contents(database_url))
    assert LONG_ASSET not in contents and LONG_SYMBOL not in contents and "9" * 101 not in contents


def test_connector_add_checks_what_was_typed_before_asking_for_credentials(
        sqlite_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EXCHANGE_API_KEY", raising=False)
    monkeypatch.delenv("EXCHANGE_SECRET", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO())  # no terminal: a prompt would be an error
    run(capsys, "client", "add", "Sharp")
    for argv, message in (([*ADD, "--api-url", "http://[::1"], "The API URL is malformed"),
                          ([*ADD, "--label", "z" * 101], "Label is too long"),
                          (["connector", "add", "--client", "Nobody", "--exchange", "binance"], "No client named")):
        code, _, err = run(capsys, *argv)
        assert code == 2 and message in err and "EXCHANGE_API_KEY" not in err, err
