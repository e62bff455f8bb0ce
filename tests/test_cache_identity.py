"""Caches that cannot go stale: the database's identity and write version (lib.db, lib.queries).

Every cache derived from the database is keyed by ``queries.data_version`` (identity, write
version, random token); the fill store is labelled with it. Shown here: each way the code
writes bumps the version in the writing transaction (and only those); an older copy of a
SQLite database restored at the same path and written to until its fill count and last id
match serves no stale figure; two app processes with separate data folders sharing one
PostgreSQL database see each other's writes, an edited fill included.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, func, insert, select, text, update

from lib import audit, clients, connectors, imports, queries, reports
from lib.access import SYSTEM
from lib.db import Rewrites, classify_write, dispose_engines, migrate, session_scope
from lib.models import Client, Connector, DatabaseState, Position, Trade, utcnow
from lib.settings import get_settings
from lib.simulator import Simulator, SimulatorConfig
from lib.sync import markets, store, sync_connectors
from tests.conftest import _drop_pg_database, _new_pg_database, _use_database
from tests.sync_helpers import add_connectors
from tests.test_imports import FILLS_HEADER
from tests.test_queries import Seeded, ms, seed_portfolio


@pytest.fixture
def seeded(database_url: str) -> Seeded:
    return seed_portfolio()


def state() -> queries.WriteState:
    with session_scope() as session:
        found = queries.write_state(session)
    assert found is not None
    return found


def _fill(connector_id: int, trade_id: str, side: str, amount: float, price: float, day: str = "2024-04-01") -> dict:
    return {"connector_id": connector_id, "trade_id": trade_id, "timestamp": ms(day), "symbol": "BTC/USDT",
            "base": "BTC", "quote": "USDT", "side": side, "amount": amount, "price": price, "cost": amount * price,
            "fee_cost": 0.0, "fee_currency": "USDT"}


# --------------------------------------------------------------------------- the bump


def _orm_add(seeded: Seeded) -> None:
    with session_scope() as session:
        session.add(Client(name="Gamma"))


def _orm_bulk_update(seeded: Seeded) -> None:
    with session_scope() as session:
        session.execute(update(Connector).where(Connector.id == seeded.alpha_binance).values(status="error"))


def _connection_insert(seeded: Seeded) -> None:  # as lib.sync.store does
    with session_scope() as session:
        session.connection().execute(insert(Position), [{"connector_id": seeded.alpha_binance, "symbol": "X/USDT"}])


def _text_insert(seeded: Seeded) -> None:
    with session_scope() as session:
        session.execute(text("INSERT INTO orders (connector_id, order_id, symbol, side, amount, filled) "
                             "VALUES (:c, 'raw', 'BTC/USDT', 'buy', '1', '0')"), {"c": seeded.alpha_binance})


def _csv_import(seeded: Seeded) -> None:
    with session_scope() as session:
        imports.import_file(session, SYSTEM, seeded.alpha_binance, "fills", "old.csv", IMPORTED.encode(), via="test")


def _new_client(seeded: Seeded) -> None:
    with session_scope() as session:
        clients.create_client(session, SYSTEM, "Delta")


def _relabel(seeded: Seeded) -> None:
    with session_scope() as session:
        connectors.update_connector(session, SYSTEM, seeded.alpha_binance, label="renamed")


IMPORTED = FILLS_HEADER + "\n2023-01-05T10:00:00Z,BTC/USDT,buy,0.5,16800,,1,USDT,imp-1,,taker\n"

WRITERS: dict[str, Callable[[Seeded], object]] = {
    "csv import": _csv_import,
    "create client": _new_client,
    "update connector": _relabel,
    "orm add": _orm_add,
    "orm bulk update": _orm_bulk_update,
    "connection insert": _connection_insert,
    "text insert": _text_insert,
    "sync fills": lambda s: store.save_history(s.alpha_binance, "trades", "trades:BTC/USDT",
                                               [_fill(s.alpha_binance, "sync-1", "buy", 0.1, 60000.0)], "c1",
                                               {"fetched_to": ms("2024-04-02")}),
    "sync ledger": lambda s: store.save_history(s.alpha_binance, "ledger", "ledger", [{
        "entry_key": "k1", "timestamp": ms("2024-04-01"), "currency": "USDT", "amount": 1.0}], None, {}),
    "sync orders": lambda s: store.save_history(s.alpha_binance, "orders", "orders:BTC/USDT", [{
        "symbol": "BTC/USDT", "order_id": "h1", "status": "closed"}], None, {}),
    "sync transfers": lambda s: store.save_history(s.alpha_binance, "deposits", "deposits", [{
        "type": "deposit", "transfer_id": "t9", "timestamp": ms("2024-04-01"), "currency": "USDT",
        "amount": 5.0}], None, {}),
    "sync balance": lambda s: store.save_balance(s.alpha_binance, utcnow(), {"total": {"BTC": 1}}),
    "sync open orders": lambda s: store.replace_orders(s.alpha_binance, []),
    "sync positions": lambda s: store.replace_positions(s.alpha_binance, []),
    "sync tickers": lambda s: store.save_tickers("binance", "binance", [{"symbol": "BTC/USDT", "last": 1.0}]),
    "sync candles": lambda s: store.save_candles("binance", "binance", "ETH/USDT", "1d", [[ms("2024-01-01"), 1, 1,
                                                                                        1, 1, 1]]),
    "sync coverage": lambda s: store.save_coverage(s.alpha_binance, "trades:BTC/USDT", "trades", {"complete": True}),
    "opening balances": lambda s: store.book_opening_balances(s.alpha_binance, {"DOGE": 5.0}, {}, ms("2024-01-01")),
}


@pytest.mark.parametrize("writer", list(WRITERS))
def test_every_write_path_bumps_the_version_in_its_transaction(seeded: Seeded, writer: str) -> None:
    """Whichever way a write is sent, its commit advances the version with a new token (and keeps
    the trades epoch: nothing here changes or removes a fill)."""
    before = state()
    WRITERS[writer](seeded)
    after = state()
    assert after.identity == before.identity
    assert after.version == before.version + 1 and after.token != before.token
    assert after.trades_epoch == before.trades_epoch
    with session_scope() as session:
        assert queries.went_through(session, after.version, after.token)
        assert queries.went_through(session, before.version, before.token)


def test_rollbacks_leases_and_unversioned_tables_leave_the_version(seeded: Seeded) -> None:
    before = state()
    with pytest.raises(RuntimeError), session_scope() as session:
        session.add(Client(name="Rolled back"))
        session.flush()
        raise RuntimeError("undo")
    with session_scope() as session:
        audit.record(session, "tester", "test.event", "nothing", "")
        session.execute(update(Connector).where(Connector.id == seeded.alpha_binance).values(
            lease_owner="w1", lease_until=utcnow(), updated_at=Connector.updated_at))
    assert state() == before


def test_a_fill_changed_or_removed_draws_a_new_trades_epoch(seeded: Seeded) -> None:
    first = state()
    with session_scope() as session:
        session.execute(update(Trade).where(Trade.trade_id == "T1").values(price=41000))
    second = state()
    assert second.trades_epoch != first.trades_epoch and second.version == first.version + 1
    with session_scope() as session:
        session.delete(session.get(Connector, seeded.beta_okx))  # its fills go by ON DELETE CASCADE
    third = state()
    assert third.trades_epoch != second.trades_epoch


def test_uncommitted_writes_key_nothing_shared(seeded: Seeded) -> None:
    """Inside a transaction that wrote, the key is not the committed version's (nor reusable)."""
    with session_scope() as session:
        committed = queries.data_version(session)
        session.add(Trade(**_fill(seeded.alpha_binance, "pending", "buy", 1.0, 1.0)))
        session.flush()
        pending = queries.data_version(session)
        assert pending != committed and pending != queries.data_version(session)
        assert len(queries.pnl_fills(session, seeded.viewer("admin"))) == 11  # read, not from the store
    with session_scope() as session:
        assert queries.data_version(session) not in (committed, pending)


@pytest.mark.parametrize(("sql", "expected"), [
    ("SELECT max(id) FROM trades", Rewrites(False)),
    ("INSERT INTO trades (id) VALUES (1) ON CONFLICT (connector_id, symbol, trade_id) DO NOTHING", Rewrites(True)),
    ("INSERT INTO trades (id) VALUES (1) ON CONFLICT (connector_id, symbol, trade_id) DO UPDATE SET id = 2",
     Rewrites(True, fills=True)),
    ("INSERT OR REPLACE INTO trades (id) VALUES (1)", Rewrites(True, fills=True)),
    ('DELETE FROM "clients" WHERE id = 1', Rewrites(True, fills=True, snapshots=True)),
    ("UPDATE connectors SET label = 'x'", Rewrites(True)),
    ("UPDATE connectors SET lease_until = ?, updated_at = connectors.updated_at WHERE id = ?", Rewrites(False)),
    ("INSERT INTO audit_log (actor) VALUES ('x')", Rewrites(False)),
    ("INSERT INTO balance_snapshots (id) VALUES (1)", Rewrites(True)),
    ("DELETE FROM balance_snapshots WHERE id IN (1, 2)", Rewrites(True, snapshots=True)),
    ("UPDATE balance_snapshots SET total = '2' WHERE id = 1", Rewrites(True, snapshots=True)),
    ("WITH gone AS (SELECT 1) DELETE FROM orders", Rewrites(True, fills=True, snapshots=True)),
    ("WITH t AS (SELECT last_update FROM order_history) SELECT * FROM t", Rewrites(False)),
])
def test_statements_are_classified(sql: str, expected: Rewrites) -> None:
    assert classify_write(sql) == expected


# --------------------------------------------------------------------------- the fill store


def test_new_fills_are_read_incrementally_and_a_restore_is_not(seeded: Seeded, monkeypatch) -> None:  # noqa: ANN001
    admin = seeded.viewer("admin")
    reads: list[int | None] = []
    original = queries._read_trades

    def spy(session, after_id=None):  # noqa: ANN001, ANN202
        reads.append(after_id)
        return original(session, after_id)

    monkeypatch.setattr(queries, "_read_trades", spy)
    with session_scope() as session:
        queries.pnl_fills(session, admin)
        top = session.scalar(select(Trade.id).order_by(Trade.id.desc()).limit(1))
    with session_scope() as session:
        queries.pnl_fills(session, admin)  # the same version: the file as it is
    assert reads == [None]
    store.save_history(seeded.alpha_binance, "trades", "trades:BTC/USDT",
                       [_fill(seeded.alpha_binance, "inc-1", "sell", 0.1, 61000.0)], None, {})
    with session_scope() as session:
        assert "inc-1" in set(queries.pnl_fills(session, admin)["trade_id"])
    assert reads == [None, top]
    files = list((get_settings().data_dir / "cache").glob("fills-*.arrow"))
    assert len(files) == 1 and files[0].name.endswith(f"-{state().identity}.arrow")
    assert files[0].stat().st_mode & 0o077 == 0


def test_the_fill_store_is_kept_in_memory_while_its_file_is_unchanged(seeded: Seeded, monkeypatch) -> None:  # noqa: ANN001
    """Pages after a sync share the frame this process last read; a file another process (the
    sync's worker) rewrote since is read again, never shadowed by the frame in memory."""
    loads: list[Path] = []
    original = queries._load_store

    def spy(path: Path):  # noqa: ANN202
        loads.append(path)
        return original(path)

    monkeypatch.setattr(queries, "_load_store", spy)
    with session_scope() as session:
        first = queries._stored_fills(session)
        assert queries._stored_fills(session) is first  # from memory: no file read
    assert loads == []
    store.save_history(seeded.alpha_binance, "trades", "trades:BTC/USDT",
                       [_fill(seeded.alpha_binance, "mem-1", "sell", 0.1, 61000.0)], None, {})
    with session_scope() as session:  # this process moves it on: appended in memory, file rewritten
        assert "mem-1" in set(queries._stored_fills(session)["trade_id"])
    assert loads == []
    path, (frame, label, _) = next(iter(queries._STORE_READ.items()))
    queries._STORE_READ[path] = (frame.iloc[:1], label, queries._file_version(path))  # as if read long ago
    queries._save_store(path, frame, label)  # another process writes the file
    with session_scope() as session:
        assert len(queries._stored_fills(session)) == len(frame)  # the file, not the stale frame
    assert loads == [path]


def test_a_data_folder_that_cannot_be_written_leaves_the_fills_right(seeded: Seeded, monkeypatch,  # noqa: ANN001
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    def full(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(queries, "_save_store", full)
    with session_scope() as session:
        count = session.scalar(select(func.count(Trade.id)))
        assert len(queries._stored_fills(session)) == count
    assert "No space left on device" in caplog.text


# --------------------------------------------------------------------------- restored copy


def _sqlite_path(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))


def _replace_file(source: Path, target: Path) -> None:
    """Put ``source`` at ``target`` as a restore would (no process holds the old one open)."""
    dispose_engines()
    for suffix in ("-wal", "-shm"):
        target.with_name(target.name + suffix).unlink(missing_ok=True)
    shutil.copyfile(source, target)


def _count_and_last_id() -> tuple[int, int]:
    with session_scope() as session:
        count, last = session.execute(select(func.count(Trade.id), func.max(Trade.id))).one()
    return int(count), int(last)


Figures = tuple[list[tuple[str, float]], dict[str, float], str]


def _figures(seeded: Seeded) -> Figures:
    """What the pages show: the P&L's fills, the P&L summary (disk cache) and the version."""
    admin = seeded.viewer("admin")
    with session_scope() as session:
        fills = queries.pnl_fills(session, admin)
        version = queries.data_version(session)
    summary = reports.cached_pnl_summary(admin, client_id=seeded.alpha)
    return sorted(zip(fills["trade_id"], fills["price"], strict=True)), dict(summary.totals), version


def assert_same(shown: Figures, expected: Figures, version: bool = False) -> None:
    """The same fills and the same totals (to float rounding: a P&L continued from a kept state
    may sum in another order than a full run); with ``version`` under the same key too."""
    assert shown[0] == expected[0]
    assert shown[1] == pytest.approx(expected[1], rel=1e-9, abs=1e-6)
    assert not version or shown[2] == expected[2]


def _fresh_figures(seeded: Seeded) -> Figures:
    """The same figures computed with no cache at all."""
    shutil.rmtree(get_settings().data_dir / "cache", ignore_errors=True)
    return _figures(seeded)


def test_a_restored_older_copy_written_to_shows_no_stale_figure(sqlite_url: str, tmp_path: Path) -> None:
    """Copy the file, write two fills, put the copy back and write two other fills: the same
    count, the same last id, the same version number, and yet every figure is the new data's."""
    seeded = seed_portfolio()
    database = _sqlite_path(sqlite_url)
    _figures(seeded)  # caches filled at the copy's state
    dispose_engines()
    shutil.copyfile(database, tmp_path / "backup.db")

    store.save_history(seeded.alpha_binance, "trades", "trades:BTC/USDT",
                       [_fill(seeded.alpha_binance, "late-1", "sell", 0.2, 70000.0),
                        _fill(seeded.alpha_binance, "late-2", "sell", 0.1, 71000.0)], None, {})
    before_restore = _figures(seeded)
    ahead, ahead_fills = state(), _count_and_last_id()

    _replace_file(tmp_path / "backup.db", database)
    store.save_history(seeded.alpha_binance, "trades", "trades:BTC/USDT",
                       [_fill(seeded.alpha_binance, "other-1", "sell", 0.2, 30000.0),
                        _fill(seeded.alpha_binance, "other-2", "sell", 0.1, 31000.0)], None, {})
    restored = state()
    assert (restored.identity, restored.version) == (ahead.identity, ahead.version)
    assert restored.token != ahead.token
    assert _count_and_last_id() == ahead_fills  # what the old (count, max id) check saw

    after_restore = _figures(seeded)
    assert after_restore[2] != before_restore[2]
    assert {"other-1", "other-2"} <= {t for t, _ in after_restore[0]}
    assert not {"late-1", "late-2"} & {t for t, _ in after_restore[0]}
    assert after_restore[1] != before_restore[1]  # the realized P&L moved with the other fills
    assert_same(after_restore, _fresh_figures(seeded))


def test_a_database_recreated_at_the_same_path_is_another_database(sqlite_url: str) -> None:
    seeded = seed_portfolio()
    first = _figures(seeded)
    database = _sqlite_path(sqlite_url)
    dispose_engines()
    database.unlink()
    migrate(sqlite_url)
    seeded = seed_portfolio()  # the same rows again, same ids, same count
    with session_scope() as session:
        session.execute(update(Trade).where(Trade.trade_id == "T5").values(price=99000))
    second = _figures(seeded)
    assert second[2].split(":")[0] != first[2].split(":")[0]
    assert ("T5", 99000.0) in second[0]
    assert_same(second, _fresh_figures(seeded))


# --------------------------------------------------------------------------- two app processes


@pytest.fixture
def shared_postgres(postgres_admin: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                    encryption_key: str) -> Iterator[str]:
    name = _new_pg_database()
    url = postgres_admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    yield _use_database(url, tmp_path / "a", monkeypatch, encryption_key)
    dispose_engines()
    get_settings.cache_clear()
    _drop_pg_database(name)


@pytest.mark.postgres
def test_two_app_processes_sharing_one_postgresql_see_each_others_writes(
        shared_postgres: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Process A and process B: one database, each its own DATA_DIR (fill store and P&L files)."""
    seeded = seed_portfolio()

    def process(name: str) -> None:
        dispose_engines()
        monkeypatch.setenv("DATA_DIR", str(tmp_path / name / "data"))
        get_settings.cache_clear()

    process("a")
    a_first = _figures(seeded)
    process("b")
    assert_same(_figures(seeded), a_first, version=True)
    store.save_history(seeded.alpha_binance, "trades", "trades:BTC/USDT",
                       [_fill(seeded.alpha_binance, "b-1", "sell", 0.2, 70000.0)], None, {})
    b_after_insert = _figures(seeded)
    process("a")
    assert_same(_figures(seeded), b_after_insert, version=True)
    assert b_after_insert[0] != a_first[0] and b_after_insert[1]["realized"] != a_first[1]["realized"]

    # an edited fill: same count, same last id (what the old (count, max id) check could not see)
    process("b")
    with session_scope() as session:
        session.execute(update(Trade).where(Trade.trade_id == "b-1").values(price=20000))
    b_after_edit = _figures(seeded)
    assert ("b-1", 20000.0) in b_after_edit[0]
    process("a")
    assert_same(_figures(seeded), b_after_edit, version=True)

    # A deletes a fill and inserts another; B follows
    with session_scope() as session:
        session.execute(delete(Trade).where(Trade.trade_id == "b-1"))
        session.add(Trade(**_fill(seeded.alpha_binance, "a-1", "sell", 0.2, 50000.0)))
    a_last = _figures(seeded)
    process("b")
    assert_same(_figures(seeded), a_last, version=True)
    assert_same(a_last, _fresh_figures(seeded))
    with session_scope() as session:
        assert session.scalar(select(DatabaseState.version)) >= 4


# --------------------------------------------------------------------------- the sync keeps the store current


def test_a_sync_that_stored_fills_leaves_the_fill_store_current(sqlite_url: str, monkeypatch) -> None:  # noqa: ANN001
    """After the run the page reads the file as it is: no fill is read from the trades table."""
    markets.forget()
    sim = Simulator(SimulatorConfig(seed=3, accounts=1, days=20, fills_per_account=40)).start()
    try:
        add_connectors(sim)
        report = sync_connectors(SYSTEM)
    finally:
        sim.stop()
    assert report.failed == 0 and sum(r.new_trades for r in report.results) > 0
    reads: list[int | None] = []
    monkeypatch.setattr(queries, "_read_trades", lambda session, after_id=None: reads.append(after_id))
    with session_scope() as session:
        fills = queries.pnl_fills(session, SYSTEM)
        stored = session.scalar(select(func.count(Trade.id)))
    assert reads == [] and len(fills) == stored


@pytest.mark.postgres
def test_a_fill_committed_after_one_with_a_higher_id_is_not_missed(shared_postgres: str) -> None:
    """PostgreSQL hands out ids before commit: a fill may commit after the store read a higher id."""
    seeded = seed_portfolio()
    admin = seeded.viewer("admin")
    with session_scope() as session:
        top = session.scalar(select(func.max(Trade.id)))
        session.add(Trade(id=top + 10, **_fill(seeded.alpha_binance, "early-commit", "buy", 0.1, 60000.0)))
    with session_scope() as session:
        assert "early-commit" in set(queries.pnl_fills(session, admin)["trade_id"])
    with session_scope() as session:  # the id drawn first, committed last
        session.add(Trade(id=top + 5, **_fill(seeded.alpha_binance, "late-commit", "buy", 0.1, 60000.0)))
    with session_scope() as session:
        assert {"early-commit", "late-commit"} <= set(queries.pnl_fills(session, admin)["trade_id"])
