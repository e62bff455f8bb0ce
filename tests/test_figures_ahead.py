"""lib.figures_ahead: after the worker made them, the landing views open from the disk caches
without computing anything, as an admin would open them; new data makes them again, and the
same data does not."""

from __future__ import annotations

import threading

import pytest

from lib import client_summary, equity, figures_ahead, reports
from lib.db import session_scope
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

    for module, name in ((reports, "pnl_report"), (equity, "value_changes"), (equity, "equity_curve"),
                         (reports, "client_pnl"), (client_summary.activity, "volume_and_fees")):
        monkeypatch.setattr(module, name, refuse)


def test_the_landing_views_open_from_what_the_worker_made(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    made_for = figures_ahead.keep(None)
    assert made_for is not None
    admin = seeded.viewer("admin")
    with monkeypatch.context() as patch:
        _forbid_computing(patch)
        for client_id in (None, seeded.alpha, seeded.beta):  # as the pages ask (lib.ui.loaders' arguments)
            summary = reports.cached_pnl_summary(admin, client_id, None, "fifo", None, None, "scope")
            assert summary.fills > 0
            equity.cached_value_changes(admin, client_id, None)
            equity.cached_equity_curve(admin, client_id, None, None, None, lambda: None)
            start = figures_ahead.overview_start(equity.utcnow().date())
            assert not equity.cached_equity_curve(admin, client_id, None, start, None, lambda: None).empty
        table = client_summary.client_summary(admin)
    assert set(table.rows["client"]) == {"Alpha", "Beta"}


def test_they_are_made_again_only_when_the_data_changed(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[int] = []
    real = figures_ahead.make
    monkeypatch.setattr(figures_ahead, "make", lambda: made.append(1) or real())
    first = figures_ahead.keep(None)
    assert figures_ahead.keep(first) == first and len(made) == 1  # same data: nothing to do
    with session_scope() as session:
        session.add(Trade(connector_id=seeded.alpha_binance, trade_id="new", timestamp=ms("2024-04-01"),
                          symbol="BTC/USDT", base="BTC", quote="USDT", side="buy", amount=0.1, price=60000,
                          cost=6000))
    second = figures_ahead.keep(first)
    assert second != first and len(made) == 2


def test_a_failure_is_logged_and_leaves_the_version(seeded: Seeded, monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture) -> None:
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
