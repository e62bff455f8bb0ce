"""lib.equity: the equity curve, the changes and past balances rebuilt from stored events
(tests/test_queries.py's seeded portfolio: Alpha trades PNL.md's vector from a 2023 deposit,
its snapshots are only days old), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest

from lib import equity, reports
from lib.cli import main
from lib.db import session_scope
from lib.models import Candle, Trade, Transfer, utcnow
from tests.test_demo import demo_port  # noqa: F401 - the simulator's port fixture
from tests.test_queries import Seeded, ms, seed_portfolio

#: what Alpha's history implies now: PNL.md's holdings and the deposit's cash left
BTC, ETH, BNB, USDT = 0.563335, 3.0, 1.93, 70000 - 40000 - 600.6 - 22000 + 31200 - 31.2 + 12000
NOW_VALUE = BTC * 65000 + ETH * 3500 + BNB * 500 + USDT


@pytest.fixture
def seeded(database_url: str) -> Seeded:
    return seed_portfolio()


def test_curve_starts_at_the_first_event(seeded: Seeded) -> None:
    drawn = equity.equity_curve(seeded.viewer("admin"), client_id=seeded.alpha)
    assert drawn.first_event == datetime(2023, 12, 31, tzinfo=UTC)  # the deposit, not the first snapshot
    curve = drawn.curve.set_index("time")["usd"]
    assert curve.index[0] == datetime(2023, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
    assert curve.iloc[0] == pytest.approx(70000.0)  # cash only: no candle needed
    assert curve.iloc[-1] == pytest.approx(NOW_VALUE)  # now, at the current marks
    # 2024-01-01 end: 0.999 BTC at that day's close, 30,000 USDT
    assert curve.loc[datetime(2024, 1, 1, 23, 59, 59, 999000, tzinfo=UTC)] == pytest.approx(0.999 * 40000 + 30000)
    assert len(curve) > 365  # every day since, not just the snapshot days
    # ETH has no candle: named with its days, never valued at 0 silently
    unpriced = drawn.unpriced.set_index("asset")
    assert "ETH" in unpriced.index and unpriced.loc["ETH", "first"] == datetime(2024, 2, 1, 23, 59, 59, 999000,
                                                                                   tzinfo=UTC)
    # snapshots are drawn over the line; Alpha's 1,000 USDT snapshot is not what the history implies
    assert not drawn.snapshots.empty
    assert not drawn.disagreements.empty and "USDT" in drawn.disagreements["assets"].iloc[-1]
    assert set(drawn.by_asset["asset"]) >= {"BTC", "USDT", "BNB"}  # allocation over time, from the same start
    assert drawn.by_asset["time"].min() == curve.index[0]
    usdt = drawn.by_asset[drawn.by_asset["asset"] == "USDT"].set_index("time")["usd"]
    assert usdt.iloc[0] == pytest.approx(70000.0) and usdt.iloc[-1] == pytest.approx(USDT)


def test_curve_window_and_scope(seeded: Seeded) -> None:
    window = equity.equity_curve(seeded.viewer("admin"), client_id=seeded.alpha,
                                 start=datetime(2024, 2, 1, tzinfo=UTC), end=datetime(2024, 3, 1, tzinfo=UTC))
    assert len(window.curve) == 29 and window.snapshots.empty
    hourly = equity.equity_curve(seeded.viewer("admin"), client_id=seeded.alpha, start=utcnow() - timedelta(days=2))
    assert 47 <= len(hourly.curve) <= 50
    assert equity.equity_curve(seeded.viewer("client"), client_id=seeded.beta).empty  # not the client's


def _recent_btc_candles(days: int) -> dict[int, float]:
    """Daily BTC/USDT candles for the last ``days`` days (open time -> close), stored."""
    today = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    closes = {int((today - timedelta(days=n)).timestamp() * 1000): 61000.0 + 10 * n for n in range(days)}
    with session_scope() as session:
        session.add_all(Candle(exchange_id="binance", symbol="BTC/USDT", timeframe="1d", timestamp=at, open=close,
                               high=close, low=close, close=close, volume=1.0) for at, close in closes.items())
    return closes


def test_changes_are_computed_from_history(seeded: Seeded) -> None:
    closes = _recent_btc_candles(35)
    admin = seeded.viewer("admin")
    changes = equity.value_changes(admin, client_id=seeded.alpha)
    assert changes["now"]["value"] == pytest.approx(NOW_VALUE)
    for window, delta in (("24h", timedelta(hours=24)), ("7d", timedelta(days=7)), ("30d", timedelta(days=30))):
        moment = int((utcnow() - delta).timestamp() * 1000)
        close = closes[max(at for at in closes if at <= moment)]
        # BNB and ETH have no candle that recent: today's mark prices them, and they are named
        then = BTC * close + BNB * 500 + ETH * 3500 + USDT
        assert changes[window]["value"] == pytest.approx(then)
        assert changes[window]["change"] == pytest.approx(NOW_VALUE - then) and changes[window]["change"] != 0
        assert changes[window]["unpriced"] == ["BNB", "ETH"] and changes[window]["left_out"] == 0
    everyone = equity.value_changes(admin)  # Beta's history is as old: compared too, XYZ unpriced at both ends
    assert everyone["30d"]["change"] == pytest.approx(changes["30d"]["change"])
    assert everyone["30d"]["unpriced"] == ["BNB", "ETH", "XYZ"]


def test_net_flows_explain_the_change_over_the_same_window(seeded: Seeded) -> None:
    """The Overview takes the window's deposits less withdrawals off a change kept for an hour: the
    two agree only over the change's own moments. A move at the window's start is in the earlier
    value, one at its end in the later one; a move after the end is in neither."""
    admin = seeded.viewer("admin")
    now = utcnow().replace(microsecond=0) - timedelta(minutes=30)  # the moment a kept change was made
    before = equity.value_changes(admin, client_id=seeded.alpha, now=now)
    assert datetime.fromisoformat(before["now"]["at"]) == now
    since = now - reports.CHANGE_WINDOWS["24h"]
    moves = {"at-start": ("deposit", 700.0, since), "inside": ("deposit", 5000.0, since + timedelta(milliseconds=1)),
             "at-end": ("withdrawal", 300.0, now), "after": ("deposit", 9000.0, now + timedelta(milliseconds=1))}
    with session_scope() as session:
        session.add_all(Transfer(connector_id=seeded.alpha_binance, transfer_id=name, type=kind, currency="USDT",
                                 amount=amount, status="ok", timestamp=int(at.timestamp() * 1000))
                        for name, (kind, amount, at) in moves.items())
    after = equity.value_changes(admin, client_id=seeded.alpha, now=now)
    transfers = equity.equity_curve(admin, client_id=seeded.alpha, start=since - timedelta(days=1)).transfers
    net, unpriced = equity.net_flows(transfers, since, now)
    assert net == pytest.approx(5000.0 - 300.0) and unpriced == []
    assert after["24h"]["change"] - before["24h"]["change"] == pytest.approx(net)
    assert equity.net_flows(transfers, now, now + timedelta(hours=1)) == (pytest.approx(9000.0), [])


def test_net_of_flows_is_unknown_when_a_flow_has_no_price() -> None:
    assert equity.net_of_flows(700.0, None) == 700.0  # no flow: the change is the market's
    assert equity.net_of_flows(700.0, (500.0, [])) == 200.0
    assert equity.net_of_flows(700.0, (500.0, ["XYZ"])) is None  # part of the flows not valued
    assert equity.net_of_flows(None, (500.0, [])) is None


def test_balances_at_a_past_day_are_exact(seeded: Seeded) -> None:
    report = equity.balances_at(seeded.viewer("admin"), at=datetime(2024, 2, 15, 23, 59, 59, 999000, tzinfo=UTC))
    rows = report.rows.set_index(["client", "asset"])
    assert rows.loc[("Alpha", "BTC"), "total"] == Decimal("0.3985")  # 1 - 0.001 + 0.5 - 0.5005 - 0.6
    assert rows.loc[("Alpha", "ETH"), "total"] == Decimal("10")
    assert rows.loc[("Alpha", "BTC"), "usd"] == pytest.approx(0.3985 * 50000)
    assert rows.loc[("Beta", "XYZ"), "total"] == Decimal("30") and not rows.loc[("Beta", "XYZ"), "priced"]
    assert report.unpriced == ["ETH", "XYZ"]
    mine = equity.balances_at(seeded.viewer("client"), at=datetime(2024, 2, 15, tzinfo=UTC))
    assert set(mine.rows["client"]) == {"Alpha"}


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_balances_at_a_day(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(capsys, "balances", "--client", "Alpha", "--at", "2024-02-15", "--json")
    assert code == 0
    data = json.loads(out)
    rows = {row["asset"]: row for row in data["rows"]}
    assert data["at"] == "2024-02-15"
    assert rows["BTC"]["total"] == "0.3985" and rows["USDT"]["total"] == "38568.2"  # every digit, as text
    assert rows["BTC"]["usd"] == pytest.approx(0.3985 * 50000) and rows["BTC"]["free"] is None
    assert rows["ETH"]["usd"] is None and data["unpriced_assets"] == ["ETH"]  # no candle: null, never 0
    code, out, _ = _cli(capsys, "balances", "--at", "2023-12-30", "--json")  # before the first event
    assert code == 0 and json.loads(out)["rows"] == []
    code, out, _ = _cli(capsys, "balances", "--at", "2024-02-15")
    assert code == 0 and "0.3985" in out and "history implies" in out
    for bad in ("2024-02-30", "15/02/2024", "yesterday"):
        code, out, err = _cli(capsys, "balances", "--at", bad)
        assert code == 2 and out == "" and "--at must be a day written YYYY-MM-DD" in err


def test_cli_pnl_window_totals(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(capsys, "pnl", "--client", "Alpha", "--start", "2024-02-10", "--end", "2024-02-20", "--json")
    assert code == 0
    data = json.loads(out)
    totals = data["totals"]
    report = reports.pnl_report(None, seeded.viewer("admin"), seeded.alpha, start=datetime(2024, 2, 10, tzinfo=UTC),
                                end=datetime(2024, 2, 21, tzinfo=UTC))
    assert totals["realized"] == pytest.approx(6739.59204)  # T5 only (PNL.md)
    for name in ("opening_value", "closing_value", "net_flows", "unrealized_change"):
        assert totals[name] == pytest.approx(getattr(report.period, name))
    assert totals["opening_value"] > 0 and totals["net_flows"] == 0  # no transfer in the window
    assert totals["net"] == pytest.approx(totals["realized"] + totals["unrealized_change"])
    assert (totals["closing_value"] - totals["opening_value"] - totals["net_flows"]
            == pytest.approx(totals["realized"] + totals["unrealized_change"] + totals["withdrawn_unrealized"]
                             - totals["unpriced_basis_change"]))
    assert data["window"] == {"start": "2024-02-10", "end": "2024-02-20"}
    # ETH (bought on 1 February) has no candle: named, not valued at 0 in the opening value
    assert any(w.startswith("No price at the window's start for ETH") for w in data["warnings"])
    assert totals["unpriced_basis_change"] == pytest.approx(0.0)  # unpriced at both edges, nothing sold
    code, out, _ = _cli(capsys, "pnl", "--client", "Alpha", "--json")  # all history: from nothing
    totals = json.loads(out)["totals"]
    assert totals["opening_value"] == 0 and totals["net_flows"] == pytest.approx(70000.0)
    assert totals["realized"] == pytest.approx(16102.031)
    code, out, err = _cli(capsys, "pnl", "--start", "2024-03-01", "--end", "2024-02-01")
    assert code == 2 and "--start must be on or before --end" in err


def test_a_change_is_a_share_only_of_a_positive_earlier_value() -> None:
    assert equity.change_share(10.0, 100.0) == 0.1 and equity.change_share(-10.0, 100.0) == -0.1
    assert equity.change_share(-11.0, -1_000.0) is None  # not "+1.1%" beside a loss
    assert equity.change_share(5.0, 0.0) is None


@pytest.mark.usefixtures("demo_port")
def test_demo_overview_shows_ninety_days_and_changes(sqlite_url: str) -> None:
    """The demo's first screen: an equity curve over its 90 days of history, changes as numbers."""
    from streamlit.testing.v1 import AppTest

    from lib import demo
    from lib.access import SYSTEM
    from lib.settings import PROJECT_ROOT

    demo.load_demo(SYSTEM)
    drawn = equity.equity_curve(SYSTEM, start=utcnow() - timedelta(days=89))
    days = (drawn.curve["time"].max() - drawn.curve["time"].min()).days
    assert days >= 85 and drawn.curve["usd"].notna().all() and (drawn.curve["usd"] > 0).all()
    assert drawn.unpriced.empty  # the simulator's candles price every asset on every day
    changes = equity.value_changes(SYSTEM)
    assert all(changes[w]["change"] is not None for w in ("24h", "7d", "30d"))
    at = AppTest.from_file(str(PROJECT_ROOT / "pages" / "portfolio" / "overview.py"), default_timeout=120)
    at.session_state["auth_user_id"] = _admin_id()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "—" not in [m.value for m in at.metric]
    assert at.get("plotly_chart") and "Last 90 days, rebuilt from the synced history" in "".join(
        c.value for c in at.caption)


def _admin_id() -> int:
    from lib.models import User

    with session_scope() as session:
        admin = User(username="demo-admin", role="admin", password_hash=None)
        session.add(admin)
        session.flush()
        return admin.id


def test_a_very_old_event_keeps_the_curve_small(seeded: Seeded) -> None:
    from lib.models import Trade

    with session_scope() as session:  # as a bad exchange row could: a fill in January 1970
        session.add(Trade(connector_id=seeded.alpha_binance, trade_id="old", timestamp=1, symbol="BTC/USDT",
                          base="BTC", quote="USDT", side="buy", amount=0.001, price=10.0, cost=0.01))
    drawn = equity.equity_curve(seeded.viewer("admin"), client_id=seeded.alpha)
    assert drawn.first_event == datetime(1970, 1, 1, 0, 0, 0, 1000, tzinfo=UTC)
    assert len(drawn.curve) <= equity.MAX_POINTS + 1 and drawn.curve["time"].is_monotonic_increasing


def test_curve_and_changes_are_kept_on_disk_and_renewed(seeded: Seeded) -> None:
    admin = seeded.viewer("admin")
    asked = []

    def reconciled() -> pd.DataFrame:
        asked.append(1)
        return equity.reconcile.reconcile(admin, seeded.alpha).rows

    first = equity.cached_equity_curve(admin, seeded.alpha, None, None, None, reconciled)
    again = equity.cached_equity_curve(admin, seeded.alpha, None, None, None, reconciled)  # from the file
    assert asked == [1]
    for name in ("curve", "by_asset", "snapshots", "disagreements", "transfers", "unpriced"):
        pd.testing.assert_frame_equal(getattr(again, name), getattr(first, name), check_dtype=False,
                                      check_index_type=False, obj=name)
    assert again.first_event == first.first_event
    assert list(again.transfers["account"]) == ["Alpha · binance / main"]  # the chart's hover names it
    assert equity.cached_value_changes(admin, seeded.alpha) == equity.cached_value_changes(admin, seeded.alpha)
    with session_scope() as session:  # new data (a fill): a new key, computed again
        session.add(Trade(connector_id=seeded.alpha_binance, trade_id="new", timestamp=ms("2024-03-25"),
                          symbol="BTC/USDT", base="BTC", quote="USDT", side="buy", amount=0.1, price=60000.0,
                          cost=6000.0))
    renewed = equity.cached_equity_curve(admin, seeded.alpha, None, None, None, reconciled)
    assert asked == [1, 1]
    assert renewed.curve["usd"].iloc[-1] == pytest.approx(first.curve["usd"].iloc[-1] + 0.1 * 65000 - 6000)
