"""lib.reports' kept P&L (all history, no window): a fill later than everything continues the kept
engine state, and the report equals a recompute from scratch; a back-dated fill and a removed
connector recompute. On SQLite and PostgreSQL (the fill store's two ways of seeing new fills)."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from sqlalchemy import delete, update

from lib import connectors, reports
from lib.db import session_scope
from lib.models import Connector, OpeningBalance, Trade, Transfer
from lib.pnl import state as pnl_state
from tests.test_queries import Seeded, ms, seed_portfolio


@pytest.fixture
def seeded(database_url: str) -> Seeded:
    reports._LIVE.clear()
    return seed_portfolio()


@pytest.fixture
def starts(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many full engine runs ``pnl_state.start`` made."""
    made: list[int] = []
    real = pnl_state.start

    def counted(*args: object, **kwargs: object) -> object:
        made.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(reports.pnl_state, "start", counted)
    return made


def _add(connector_id: int, trade_id: str, day: str, side: str = "buy", amount: float = 0.1) -> None:
    with session_scope() as session:
        session.add(Trade(connector_id=connector_id, trade_id=trade_id, timestamp=ms(day), symbol="BTC/USDT",
                          base="BTC", quote="USDT", side=side, amount=amount, price=60000.0, cost=amount * 60000.0,
                          fee_cost=amount * 60.0, fee_currency="USDT"))


def _close(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b))


def assert_same_report(got: reports.PnlReport, want: reports.PnlReport) -> None:
    a, b = reports.summarize(got), reports.summarize(want)
    assert a.totals.keys() == b.totals.keys()
    assert all(_close(a.totals[k], b.totals[k]) for k in a.totals), {k: (a.totals[k], b.totals[k]) for k in a.totals}
    pd.testing.assert_frame_equal(a.per_asset, b.per_asset, check_exact=False, rtol=1e-9, atol=1e-6)
    pd.testing.assert_frame_equal(a.daily, b.daily, check_exact=False, rtol=1e-9, atol=1e-6)
    assert (a.warnings, a.unpriced, a.unmatched, a.fills) == (b.warnings, b.unpriced, b.unmatched, b.fills)
    assert got.marks == want.marks
    assert list(got.result.disposals["source_id"]) == list(want.result.disposals["source_id"])


def _recomputed(viewer: object, client_id: int | None = None) -> reports.PnlReport:
    reports._LIVE.clear()
    return reports.pnl_report(None, viewer, client_id)


@pytest.mark.parametrize("method", ["fifo", "average"])
def test_a_later_fill_continues_the_kept_state(seeded: Seeded, starts: list[int], method: str) -> None:
    admin = seeded.viewer("admin")
    first = reports.pnl_report(None, admin, method=method)
    assert len(starts) == 1
    _add(seeded.alpha_binance, "later-1", "2024-04-01")
    _add(seeded.alpha_binance, "later-2", "2024-04-02", side="sell", amount=0.3)
    second = reports.pnl_report(None, admin, method=method)
    assert len(starts) == 1  # continued, not recomputed
    assert second.fills == first.fills + 2
    assert second.result.totals.realized != pytest.approx(first.result.totals.realized)  # the sale counts
    reports._LIVE.clear()
    assert_same_report(second, reports.pnl_report(None, admin, method=method))
    assert len(starts) == 2


def test_a_back_dated_fill_recomputes(seeded: Seeded, starts: list[int]) -> None:
    admin = seeded.viewer("admin")
    reports.pnl_report(None, admin)
    _add(seeded.alpha_binance, "early", "2024-01-05", side="sell", amount=0.2)
    report = reports.pnl_report(None, admin)
    assert len(starts) == 2
    assert "early" in set(report.result.disposals["source_id"])
    assert_same_report(report, _recomputed(admin))


def test_a_removed_connector_recomputes_and_its_fills_are_gone(seeded: Seeded, starts: list[int]) -> None:
    admin = seeded.viewer("admin")
    before = reports.pnl_report(None, admin)
    with session_scope() as session:
        connectors.delete_connector(session, admin, seeded.beta_okx)
    report = reports.pnl_report(None, admin)
    assert len(starts) == 2
    assert report.fills == before.fills - 3 and "XYZ" not in set(report.result.per_asset["asset"])
    assert_same_report(report, _recomputed(admin))


def test_each_scope_keeps_its_own_state(seeded: Seeded, starts: list[int]) -> None:
    admin = seeded.viewer("admin")
    everyone, alpha = reports.pnl_report(None, admin), reports.pnl_report(None, admin, seeded.alpha)
    _add(seeded.alpha_binance, "later", "2024-04-01")
    again = reports.pnl_report(None, admin, seeded.alpha)
    assert len(starts) == 2 and again.fills == alpha.fills + 1
    assert reports.pnl_report(None, admin).fills == everyone.fills + 1
    assert len(starts) == 2
    assert_same_report(again, _recomputed(admin, seeded.alpha))


def test_a_connector_moved_to_another_client_recomputes(seeded: Seeded, starts: list[int]) -> None:
    admin = seeded.viewer("admin")
    with session_scope() as session:  # transfers and opening lots name the client too: only the owner changes
        session.execute(delete(Transfer))
        session.execute(delete(OpeningBalance))
    reports.pnl_report(None, admin, pool="client")
    with session_scope() as session:
        session.execute(update(Connector).where(Connector.id == seeded.beta_okx).values(client_id=seeded.alpha))
    report = reports.pnl_report(None, admin, pool="client")
    assert len(starts) == 2
    assert set(report.result.disposals["client_id"]) | set(report.result.holdings["client_id"].dropna()) == {
        seeded.alpha}
    reports._LIVE.clear()
    assert_same_report(report, reports.pnl_report(None, admin, pool="client"))


def test_two_first_views_at_once_make_one_state_and_read_the_fills_once(seeded: Seeded, starts: list[int],
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two sessions opening P&L at the same moment on a fresh server: one builds the fill store and
    the engine state while the other waits, then continues it (a million fills held twice would
    double the peak memory)."""
    import threading
    import time

    from lib import queries
    from lib.access import SYSTEM

    with queries._STORE_LOCK:
        queries._STORE_READ.clear()
    for stored in (queries.get_settings().data_dir / "cache").glob("*"):
        stored.unlink()
    reads: list[int] = []
    real_read = queries._read_trades

    def slow_read(session: object, after_id: int | None = None) -> pd.DataFrame:
        if after_id is None:  # every fill (the other view then reads only those added since: none)
            reads.append(1)
            time.sleep(0.3)  # long enough for the other view to arrive while this one reads
        return real_read(session, after_id)

    monkeypatch.setattr(queries, "_read_trades", slow_read)
    gate = threading.Barrier(2)
    got: list[reports.PnlReport] = []

    def view() -> None:
        gate.wait()
        got.append(reports.pnl_report(None, SYSTEM))

    threads = [threading.Thread(target=view) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(got) == 2 and len(starts) == 1 and len(reads) == 1
    assert_same_report(got[0], got[1])
