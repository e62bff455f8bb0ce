"""Reconciliation and the equity curve kept per connector (lib.reconcile._compared, lib.equity._grid
and _daily_values): after each kind of change the kept-and-continued figures equal a fresh
computation with nothing kept, frame for frame and bit for bit, for every client together and
for one client; a sync's later fills or new snapshots redo only their connector (and compare only
its days from the first changed one), anything else (a back-dated fill or snapshot, a changed or
deleted snapshot, a removed connector) compares whole every connector whose rows it may have
changed, and a new candle values again only the connectors of its price source. On SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy import delete

from lib import balance_index, daily_snapshots, equity, reconcile, reports
from lib.access import Viewer
from lib.db import session_scope
from lib.kept import PerDatabase, Recent
from lib.models import BalanceSnapshot, Candle, Trade, utcnow
from tests.test_balance_index import apply_change
from tests.test_queries import Seeded, ms, seed_portfolio

#: (module, name) of everything kept per database that these figures are made from
HOLDERS = [(balance_index, "_KEPT"), (daily_snapshots, "_KEPT"), (reconcile, "_COMPARED"), (equity, "_GRIDS"),
           (equity, "_VALUES"), (reports, "_MARKET_READS")]
FRAMES = ("curve", "by_asset", "snapshots", "disagreements", "transfers", "unpriced")


@pytest.fixture
def seeded(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Seeded:
    for module, name in HOLDERS:
        getattr(module, name).clear()
    now = utcnow()
    monkeypatch.setattr(equity, "utcnow", lambda: now)  # the curve's last point: the same for both runs
    return seed_portfolio()


@pytest.fixture
def redone(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[set[int]]]:
    """The connectors each comparison (reconcile) and each snapshot valuation (equity) was made for."""
    made: dict[str, list[set[int]]] = {"compared": [], "valued": []}
    summary, values_of = reconcile._summary, equity._values_of

    def compared(session: object, index: object, ids: list[int], snapshots: pd.DataFrame) -> pd.DataFrame:
        made["compared"].append(set(ids))
        return summary(session, index, ids, snapshots)  # type: ignore[arg-type]

    def valued(rows: pd.DataFrame, *args: object) -> pd.DataFrame:
        made["valued"].append(set(rows["connector_id"].unique().tolist()))
        return values_of(rows, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(reconcile, "_summary", compared)
    monkeypatch.setattr(equity, "_values_of", valued)
    return made


def _figures(viewer: Viewer, client_id: int | None) -> tuple[reconcile.Reconciliation, equity.EquityCurve]:
    found = reconcile.reconcile(viewer, client_id)
    return found, equity.equity_curve(viewer, client_id, reconciled=found.rows)


@contextmanager
def _nothing_kept(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every holder empty for the time of a fresh computation, the kept values back after it."""
    with monkeypatch.context() as patched:
        for module, name in HOLDERS:
            patched.setattr(module, name, PerDatabase() if isinstance(getattr(module, name), PerDatabase) else Recent())
        yield


def _assert_kept_is_fresh(seeded: Seeded, monkeypatch: pytest.MonkeyPatch,
                          redone: dict[str, list[set[int]]]) -> dict[str, set[int]]:
    """Kept figures (every client, then Alpha alone) against fresh ones; returns the connectors the
    kept run redid."""
    admin = seeded.viewer("admin")
    for made in redone.values():
        made.clear()
    kept = [_figures(admin, client) for client in (None, seeded.alpha)]
    did = {what: set().union(*made) for what, made in redone.items()}
    for (found, drawn), client in zip(kept, (None, seeded.alpha), strict=True):
        _assert_divergences_read_alike(admin, client, found, drawn)
        with _nothing_kept(monkeypatch):
            fresh, fresh_drawn = _figures(admin, client)
        pd.testing.assert_frame_equal(found.rows, fresh.rows, check_exact=True)
        assert found.unsynced == fresh.unsynced
        for name in FRAMES:
            pd.testing.assert_frame_equal(getattr(drawn, name), getattr(fresh_drawn, name), check_exact=True, obj=name)
        assert drawn.first_event == fresh_drawn.first_event
    return did


def _assert_divergences_read_alike(viewer: Viewer, client_id: int | None, found: reconcile.Reconciliation,
                                   drawn: equity.EquityCurve) -> None:
    """``reconcile.divergences`` holds the reconciliation rows' values of its columns, and the curve
    drawn from them (the pages') is the curve drawn from the whole reconciliation (the worker's)."""
    light = reconcile.divergences(viewer, client_id)
    columns = reconcile.DIVERGENCE_COLUMNS
    order = ["connector_id", "asset"]
    pd.testing.assert_frame_equal(light.sort_values(order, ignore_index=True),
                                  found.rows[columns].sort_values(order, ignore_index=True), check_exact=True)
    alone = equity.equity_curve(viewer, client_id)
    for name in FRAMES:
        pd.testing.assert_frame_equal(getattr(alone, name), getattr(drawn, name), check_exact=True, obj=name)


def test_divergences_mark_the_curve_as_the_reconciliation_does(seeded: Seeded) -> None:
    """The seeded history leaves snapshots it does not explain: the curve marks them either way."""
    admin = seeded.viewer("admin")
    found, drawn = _figures(admin, None)
    assert (found.rows["status"] == "unbalanced").any() and not drawn.disagreements.empty
    _assert_divergences_read_alike(admin, None, found, drawn)


def _fill(connector_id: int, trade_id: str, day: str) -> None:
    with session_scope() as session:
        session.add(Trade(connector_id=connector_id, trade_id=trade_id, timestamp=ms(day), symbol="BTC/USDT",
                          base="BTC", quote="USDT", side="buy", amount=0.1, price=60000.0, cost=6000.0, fee_cost=6.0,
                          fee_currency="USDT"))


def _snapshot(connector_id: int, holdings: dict[str, float]) -> None:
    with session_scope() as session:
        session.add_all([BalanceSnapshot(connector_id=connector_id, taken_at=utcnow() - timedelta(minutes=5),
                                         asset=asset, free=total, used=0.0, total=total)
                         for asset, total in holdings.items()])


def test_a_syncs_rows_redo_only_their_connector(seeded: Seeded, monkeypatch: pytest.MonkeyPatch,
                                               redone: dict[str, list[set[int]]]) -> None:
    both = {seeded.alpha_binance, seeded.beta_okx}
    assert _assert_kept_is_fresh(seeded, monkeypatch, redone) == {"compared": both, "valued": both}
    grid = next(iter(equity._GRIDS._values.values()))
    _fill(seeded.alpha_binance, "later-1", "2024-04-02")  # later than all: the index continues
    assert _assert_kept_is_fresh(seeded, monkeypatch, redone) == {"compared": {seeded.alpha_binance}, "valued": set()}
    again = next(iter(equity._GRIDS._values.values()))
    assert again.made_from[seeded.beta_okx] == grid.made_from[seeded.beta_okx]  # Beta's balances as they were
    assert again.made_from[seeded.alpha_binance] != grid.made_from[seeded.alpha_binance]
    _snapshot(seeded.beta_okx, {"XYZ": 31.0, "USDT": 480.0})
    did = _assert_kept_is_fresh(seeded, monkeypatch, redone)
    # Beta's one snapshot replaced the same day (nothing kept before it: compared whole) or a new day's
    assert did["compared"] <= {seeded.beta_okx} and did["valued"] == {seeded.beta_okx}
    _fill(seeded.beta_okx, "later-2", "2024-04-03")  # later than Beta's moves, not than its snapshots
    _snapshot(seeded.alpha_binance, {"BTC": 0.7, "USDT": 900.0})  # Alpha continues from its kept days
    assert _assert_kept_is_fresh(seeded, monkeypatch, redone) == {"compared": {seeded.beta_okx},
                                                                  "valued": {seeded.alpha_binance}}
    assert _assert_kept_is_fresh(seeded, monkeypatch, redone) == {"compared": set(), "valued": set()}  # unchanged


def _snapshot_at(connector_id: int, taken_at: datetime, holdings: dict[str, float]) -> None:
    with session_scope() as session:
        session.add_all([BalanceSnapshot(connector_id=connector_id, taken_at=taken_at, asset=asset, free=total,
                                         used=0.0, total=total) for asset, total in holdings.items()])


#: each connector's assets as its seeded snapshots report them
HOLDINGS = {"alpha_binance": {"BTC": 0.563335, "ETH": 3.0, "BNB": 1.93, "USDT": 1000.0},
            "beta_okx": {"XYZ": 30.0, "USDT": 500.0}}


def _later_fill(connector_id: int, trade_id: str, at: datetime, base: str = "BTC") -> None:
    """A buy of ``base`` for USDT (assets the connector holds: a new one compares it whole)."""
    with session_scope() as session:
        session.add(Trade(connector_id=connector_id, trade_id=trade_id, timestamp=int(at.timestamp() * 1000),
                          symbol=f"{base}/USDT", base=base, quote="USDT", side="buy", amount=0.01, price=60.0,
                          cost=0.6, fee_cost=0.001, fee_currency="USDT"))


@pytest.fixture
def two_days(seeded: Seeded) -> Seeded:
    """Beta with a snapshot three days before its newest too, so each connector keeps older days."""
    _snapshot_at(seeded.beta_okx, utcnow() - timedelta(days=3), {"XYZ": 30.0, "USDT": 500.0})
    return seeded


def test_a_sync_pass_continues_every_connector_from_its_kept_days(two_days: Seeded, monkeypatch: pytest.MonkeyPatch,
                                                                  redone: dict[str, list[set[int]]]) -> None:
    """A sync pass snapshots every connector (the same day's last snapshot replaced, then a new day)
    and adds a later fill: no connector is compared whole, and the figures are a fresh computation's."""
    seeded = two_days
    both = {seeded.alpha_binance, seeded.beta_okx}
    assert _assert_kept_is_fresh(seeded, monkeypatch, redone)["compared"] == both
    now = utcnow()
    changed = {"alpha_binance": {"BTC": 0.573335, "USDT": 400.0}, "beta_okx": {"XYZ": 29.0}}
    for name, connector in (("alpha_binance", seeded.alpha_binance), ("beta_okx", seeded.beta_okx)):
        _snapshot_at(connector, now - timedelta(minutes=59), HOLDINGS[name] | changed[name])  # same day, later
    _later_fill(seeded.alpha_binance, "pass-1", now - timedelta(minutes=58))
    valued: list[int] = []
    values_of = equity._values_of
    with monkeypatch.context() as patched:
        patched.setattr(equity, "_values_of", lambda rows, *args: valued.extend(rows["moment"].tolist()) or
                        values_of(rows, *args))
        for made in redone.values():
            made.clear()
        _figures(seeded.viewer("admin"), None)
    assert redone["compared"] == [] and valued  # the snapshots valued again: the pass's day's alone
    assert min(valued) >= int((now - timedelta(minutes=59)).timestamp() * 1000) // 86_400_000 * 86_400_000
    assert _assert_kept_is_fresh(seeded, monkeypatch, redone)["compared"] == set()
    for name, connector in (("alpha_binance", seeded.alpha_binance), ("beta_okx", seeded.beta_okx)):
        _snapshot_at(connector, now + timedelta(days=1), HOLDINGS[name])  # a new day
    _later_fill(seeded.beta_okx, "pass-2", now - timedelta(minutes=30), "XYZ")
    _later_fill(seeded.alpha_binance, "pass-3", now + timedelta(days=1, minutes=1))
    assert _assert_kept_is_fresh(seeded, monkeypatch, redone)["compared"] == set()
    assert _assert_kept_is_fresh(seeded, monkeypatch, redone)["compared"] == set()  # unchanged


@pytest.mark.parametrize("change", ["backdated snapshot", "deleted snapshot", "fill before the newest snapshot"])
def test_what_a_sync_pass_does_not_add_compares_again(two_days: Seeded, monkeypatch: pytest.MonkeyPatch,
                                                      redone: dict[str, list[set[int]]], change: str) -> None:
    """After a sync pass was continued, a snapshot older than the kept days, a removed snapshot or a
    fill before the kept snapshots but the newest: the connectors it touches (every one for a
    removal) are compared whole."""
    seeded = two_days
    _assert_kept_is_fresh(seeded, monkeypatch, redone)
    now = utcnow()
    for connector in (seeded.alpha_binance, seeded.beta_okx):  # a sync pass too: the kept days grow first
        _snapshot_at(connector, now + timedelta(days=1), {"USDT": 1.0} | ({"XYZ": 30.0} if connector ==
                                                                          seeded.beta_okx else {"BTC": 0.5}))
    assert _assert_kept_is_fresh(seeded, monkeypatch, redone)["compared"] == set()
    if change == "backdated snapshot":
        _snapshot_at(seeded.alpha_binance, now - timedelta(days=5), {"BTC": 0.4, "USDT": 1000.0})
        expected = {seeded.alpha_binance}
    elif change == "deleted snapshot":
        with session_scope() as session:
            session.execute(delete(BalanceSnapshot).where(BalanceSnapshot.connector_id == seeded.beta_okx,
                                                          BalanceSnapshot.taken_at < now - timedelta(days=2)))
        expected = {seeded.alpha_binance, seeded.beta_okx}
    else:
        _later_fill(seeded.alpha_binance, "between", now - timedelta(minutes=90))  # before a kept snapshot
        expected = {seeded.alpha_binance}
    assert _assert_kept_is_fresh(seeded, monkeypatch, redone)["compared"] == expected


def test_a_new_candle_values_again_the_connectors_of_its_source(seeded: Seeded, monkeypatch: pytest.MonkeyPatch,
                                                                redone: dict[str, list[set[int]]]) -> None:
    _assert_kept_is_fresh(seeded, monkeypatch, redone)
    with session_scope() as session:
        session.add(Candle(exchange_id="binance", symbol="BTC/USDT", timeframe="1d",
                           timestamp=int(utcnow().timestamp() * 1000) // 86_400_000 * 86_400_000 - 86_400_000,
                           open=70000.0, high=70000.0, low=70000.0, close=70000.0, volume=1.0))
    assert _assert_kept_is_fresh(seeded, monkeypatch, redone) == {"compared": set(), "valued": {seeded.alpha_binance}}


@pytest.mark.parametrize("change", ["backdated fill", "changed snapshot", "connector removed"])
def test_anything_but_added_rows_redoes_every_connector(seeded: Seeded, monkeypatch: pytest.MonkeyPatch,
                                                        redone: dict[str, list[set[int]]], change: str) -> None:
    _assert_kept_is_fresh(seeded, monkeypatch, redone)
    apply_change(seeded, change)
    did = _assert_kept_is_fresh(seeded, monkeypatch, redone)
    if change == "connector removed":
        assert did["compared"] == {seeded.alpha_binance}  # the index was built again: Alpha's moves too
        assert seeded.beta_okx not in set(reconcile.reconcile(seeded.viewer("admin")).rows["connector_id"])
    elif change == "backdated fill":  # the index was built again: Beta's moves, the same bit for bit, keep its rows
        assert did["compared"] == {seeded.alpha_binance}
    else:
        assert did["compared"] == {seeded.alpha_binance, seeded.beta_okx}
