"""lib.figures_ahead: after the worker made them, the landing view (every client together) opens
from the disk caches without computing anything, as an admin opens it; new data makes them again,
the same data or nobody logged in does not."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from lib import activity, client_summary, equity, figures_ahead, reconcile, reports, sessions
from lib.db import session_scope
from lib.kept import Recent
from lib.models import Trade
from lib.sync import worker
from tests.test_queries import Seeded, ms, seed_portfolio


@pytest.fixture
def seeded(database_url: str) -> Seeded:
    return seed_portfolio()


def _forbid_computing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every computation behind the disk caches fail, so only a cached figure can come back."""
    def refuse(*args: object, **kwargs: object) -> object:
        raise AssertionError("computed instead of read from the disk cache")

    for name in ("value_changes", "equity_curve"):
        monkeypatch.setattr(equity, name, refuse)
    monkeypatch.setattr(reports, "pnl_report", refuse)
    monkeypatch.setattr(reports, "client_pnl", refuse)
    monkeypatch.setattr(activity, "volume_and_fees", refuse)
    monkeypatch.setattr(activity, "fill_totals", refuse)
    monkeypatch.setattr(activity, "activity_report", refuse)
    monkeypatch.setattr(reconcile, "reconcile", refuse)


def _log_in(seeded: Seeded, role: str = "admin") -> None:
    with session_scope() as session:
        sessions.start(session, seeded.users[role], "password", "127.0.0.1")


def test_the_landing_view_opens_from_what_the_worker_made(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    _log_in(seeded)
    assert figures_ahead.keep(None) is not None
    admin = seeded.viewer("admin")
    with monkeypatch.context() as patch:
        _forbid_computing(patch)
        # as the P&L page and the Overview ask (lib.ui.loaders' arguments)
        summary = reports.cached_pnl_summary(admin, None, None, "fifo", None, None, "scope")
        assert summary.fills > 0
        assert equity.cached_value_changes(admin, None, None)["now"]["value"] > 0
        assert not equity.cached_equity_curve(admin, None, None, None, None, lambda: None).empty
        start = figures_ahead.overview_start(equity.utcnow().date())
        assert not equity.cached_equity_curve(admin, None, None, start, None, lambda: None).empty
        clients = client_summary.client_summary(admin)  # the Clients page's defaults
        assert len(clients.rows) == 2 and clients.total["fills"] > 0
        assert equity.cached_value_changes(admin, seeded.alpha)["now"]["value"] > 0  # one client's Overview
        assert not reconcile.cached_reconcile(admin).rows.empty  # the Reconciliation page
        assert activity.cached_fill_totals(admin).fills > 0  # the Trades page's cards
        window = reports.window_days(activity.DEFAULT_WINDOW, equity.utcnow().date())
        assert activity.cached_activity_report(admin, *activity.day_bounds(*window)).fills == 0  # Activity's default
        with pytest.raises(AssertionError, match="computed"):  # another period: made on first view
            activity.cached_activity_report(admin, None, None)
        with pytest.raises(AssertionError, match="computed"):  # one client's scope: made on first view
            reports.cached_pnl_summary(admin, seeded.alpha, None, "fifo", None, None, "scope")


def test_they_are_made_again_only_when_the_data_changed(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[int] = []
    real = figures_ahead.make
    monkeypatch.setattr(figures_ahead, "make", lambda: made.append(1) or real())
    assert figures_ahead.keep(None) is None and made == []  # nobody logged in: nothing to make
    _log_in(seeded, "client")
    assert figures_ahead.keep(None) is None and made == []  # a client user never opens every client
    _log_in(seeded, "analyst")
    first = figures_ahead.keep(None)
    assert figures_ahead.keep(first) == first and len(made) == 1  # same data: nothing to do
    with session_scope() as session:
        session.add(Trade(connector_id=seeded.alpha_binance, trade_id="new", timestamp=ms("2024-04-01"),
                          symbol="BTC/USDT", base="BTC", quote="USDT", side="buy", amount=0.1, price=60000,
                          cost=6000))
    second = figures_ahead.keep(first)
    assert second != first and len(made) == 2


def test_a_process_first_pass_computes_anew_so_its_states_exist(seeded: Seeded,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """After a start the files are there (made by the previous process), but the states the next
    pass would continue are not: the first pass computes, later ones read the files."""
    _log_in(seeded)
    figures_ahead.keep(None)  # the previous process: every file made
    computed: list[str] = []
    for module, name in ((reports, "pnl_report"), (reports, "client_pnl"), (reconcile, "reconcile"),
                         (equity, "equity_curve")):
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, real=real, name=name, **k: computed.append(name) or real(*a, **k))
    with monkeypatch.context() as patch:
        patch.setattr(reports, "_LIVE", Recent())  # a new process: nothing kept in memory
        version = figures_ahead.keep(None)
    assert {"pnl_report", "client_pnl", "reconcile", "equity_curve"} <= set(computed)
    computed.clear()
    figures_ahead.make()  # a later pass at the same data (as after the files' version): read, not computed
    assert computed == []
    assert figures_ahead.keep(version) == version and computed == []


def test_a_failure_is_logged_and_leaves_the_version(seeded: Seeded, monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    _log_in(seeded)
    monkeypatch.setattr(figures_ahead, "make", lambda: 1 / 0)
    assert figures_ahead.keep("before") == "before"  # tried again after the next pass
    assert "figures ahead failed" in caplog.text


def test_the_worker_makes_them_after_each_pass(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    stop = threading.Event()
    versions: list[str | None] = []

    def kept_then_stop(after: str | None) -> str | None:
        versions.append(after)
        stop.set()
        return "made"

    monkeypatch.setattr(worker, "run_cycle", lambda interval, event: None)  # no exchanges to reach
    monkeypatch.setattr(figures_ahead, "keep", kept_then_stop)
    monkeypatch.setattr(worker, "keep_statements", lambda: None)
    worker._loop(1.0, stop, None)
    assert versions == [None]


def test_only_a_live_recent_login_counts_as_someone_active(seeded: Seeded) -> None:
    with session_scope() as session:
        row, _ = sessions.start(session, seeded.users["admin"], "password", "127.0.0.1",
                                now=equity.utcnow() - timedelta(hours=3))  # idle far beyond the limit
        assert not sessions.anyone_active(session, ["admin"])
        row.last_seen_at = equity.utcnow()
        assert sessions.anyone_active(session, ["admin"])
        assert not sessions.anyone_active(session, ["analyst"])  # another role
        row.ended_at = equity.utcnow()  # logged out
        assert not sessions.anyone_active(session, ["admin"])
