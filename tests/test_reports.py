"""lib.reports: query -> prices -> pnl glue reproduces PNL.md, values balances, keeps scope; the CLI."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from lib import reports
from lib.cli import main
from lib.db import session_scope
from tests.test_queries import (
    AVERAGE_REALIZED,
    AVERAGE_UNREALIZED,
    FIFO_REALIZED,
    FIFO_UNREALIZED,
    Seeded,
    seed_portfolio,
)


@pytest.fixture
def seeded(database_url: str) -> Seeded:
    return seed_portfolio()


@pytest.mark.parametrize(("method", "realized", "unrealized"), [
    ("fifo", FIFO_REALIZED, FIFO_UNREALIZED), ("average", AVERAGE_REALIZED, AVERAGE_UNREALIZED),
])
def test_pnl_report_reproduces_the_test_vector(seeded: Seeded, method: str, realized: float,
                                               unrealized: float) -> None:
    report = reports.pnl_report(None, seeded.viewer("admin"), client_id=seeded.alpha, method=method)
    totals = report.result.totals
    assert totals.realized == pytest.approx(realized, abs=1e-6)
    assert totals.unrealized == pytest.approx(unrealized, abs=1e-6)
    assets = report.result.per_asset.set_index("asset")
    assert assets.loc["BTC", "quantity"] == pytest.approx(0.563335)
    assert report.result.unpriced_assets == []
    assert report.fills == 7


def test_pnl_report_scope_and_unpriced(seeded: Seeded) -> None:
    client = seeded.viewer("client")
    own = reports.pnl_report(None, client, method="fifo")
    other = reports.pnl_report(None, client, client_id=seeded.beta)
    everything = reports.pnl_report(None, seeded.viewer("analyst"))
    assert own.result.totals.realized == pytest.approx(FIFO_REALIZED, abs=1e-6)
    assert other.fills == 0 and other.result.per_asset.empty  # not an error, not Beta's data
    assert everything.fills == 10
    assert everything.result.unpriced_assets == ["XYZ"]
    xyz = everything.result.per_asset.set_index("asset").loc["XYZ"]
    assert math.isnan(xyz["market_value"]) and not xyz["priced"]


def test_pnl_window_counts_only_its_disposals(seeded: Seeded) -> None:
    from datetime import UTC, datetime

    start, end = datetime(2024, 2, 10, tzinfo=UTC), datetime(2024, 2, 20, tzinfo=UTC)
    report = reports.pnl_report(None, seeded.viewer("admin"), client_id=seeded.alpha, start=start, end=end)
    assert report.result.totals.realized == pytest.approx(6739.59204, abs=1e-5)  # T5 only
    summary = reports.summarize(report)
    assert list(summary.daily["realized"]) == [pytest.approx(6739.59204, abs=1e-5)]


def test_balances_report_values_and_flags_unpriced(seeded: Seeded) -> None:
    report = reports.balances_report(seeded.viewer("admin"))
    rows = report.rows.set_index(["client", "asset"])
    assert rows.loc[("Alpha", "BTC"), "usd"] == pytest.approx(0.563335 * 65000)
    assert rows.loc[("Alpha", "USDT"), "price"] == 1.0
    # each row at its own price source: Alpha's binance (okx quotes BTC at 64,000 and is not used)
    assert rows.loc[("Alpha", "BTC"), ["source", "priced_from"]].tolist() == ["binance", "binance"]
    assert rows.loc[("Alpha", "USDT"), "priced_from"] == ""  # cash needs no source
    assert math.isnan(rows.loc[("Beta", "XYZ"), "usd"]) and not rows.loc[("Beta", "XYZ"), "priced"]
    assert report.unpriced == ["XYZ"]
    expected = 0.563335 * 65000 + 3 * 3500 + 1.93 * 500 + 1000 + 500
    assert report.total_usd == pytest.approx(expected)
    mine = reports.balances_report(seeded.viewer("client"), client_id=seeded.beta)
    assert mine.empty and mine.unpriced == []


def test_orders_report(seeded: Seeded) -> None:
    """(lib.equity's changes and curve: tests/test_equity.py)"""
    admin = seeded.viewer("admin")
    with session_scope() as session:
        orders, positions = reports.orders_report(admin, session_or_url=session)
    btc = orders.set_index("order_id").loc["open-1"]
    assert btc["last"] == 65000 and btc["distance"] == pytest.approx(60000 / 65000 - 1)
    assert btc["source"] == "binance"  # its own source's ticker, not okx's 64,000
    assert 3500 < btc["age_seconds"] < 3700
    assert math.isnan(orders.set_index("order_id").loc["open-2", "distance"])  # no XYZ ticker
    assert len(positions) == 2


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_cli_pnl_and_balances(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _cli(capsys, "pnl", "--client", "alpha", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["totals"]["realized"] == pytest.approx(FIFO_REALIZED, abs=1e-6)
    assert {row["asset"] for row in data["per_asset"]} >= {"BTC", "ETH", "BNB"}
    code, out = _cli(capsys, "pnl", "--method", "average", "--json")
    data = json.loads(out)
    xyz = next(row for row in data["per_asset"] if row["asset"] == "XYZ")
    assert xyz["market_value"] is None and xyz["unrealized"] is None  # unpriced: null, never 0
    assert data["unpriced_assets"] == ["XYZ"]
    code, out = _cli(capsys, "pnl", "--connector", str(seeded.beta_okx))
    assert code == 0 and "unpriced" in out and "XYZ" in out
    code, out = _cli(capsys, "balances", "--json")
    data = json.loads(out)
    assert next(r for r in data["rows"] if r["asset"] == "XYZ")["usd"] is None
    code, out = _cli(capsys, "balances", "--client", "Beta")
    assert code == 0 and "unpriced" in out
    assert main(["pnl", "--client", "Nobody"]) == 2
    code, out = _cli(capsys, "pnl", "--pool", "client", "--json")  # every client, each with its own lots
    per_client = json.loads(out)
    assert code == 0 and per_client["pool"] == "client"
    alone = [json.loads(_cli(capsys, "pnl", "--client", name, "--json")[1])["totals"]["realized"]
             for name in ("Alpha", "Beta")]
    assert per_client["totals"]["realized"] == pytest.approx(sum(alone), abs=1e-6)


def test_cached_pnl_summary_is_reused_and_renewed(seeded: Seeded) -> None:
    from lib.models import Trade
    from tests.test_queries import ms

    admin = seeded.viewer("admin")
    first = reports.cached_pnl_summary(admin, client_id=seeded.alpha)
    again = reports.cached_pnl_summary(seeded.viewer("client"))  # same accounts: same entry
    assert again.totals == first.totals and again.totals["realized"] == pytest.approx(FIFO_REALIZED, abs=1e-6)
    assert reports.cached_pnl_summary(seeded.viewer("client"), client_id=seeded.beta).fills == 0
    with session_scope() as session:
        session.add(Trade(connector_id=seeded.alpha_binance, trade_id="T8", timestamp=ms("2024-03-25"),
                          symbol="BNB/USDT", base="BNB", quote="USDT", side="sell", amount=1.0, price=450.0,
                          cost=450.0))
    renewed = reports.cached_pnl_summary(admin, client_id=seeded.alpha)
    assert renewed.fills == 8 and renewed.totals["realized"] != first.totals["realized"]


def test_unpriced_deposit_warning_names_the_assets(seeded: Seeded) -> None:
    from lib.models import Transfer
    from tests.test_queries import ms

    with session_scope() as session:  # no candle or ticker prices XYZ or ABC at deposit time
        session.add_all([
            Transfer(connector_id=seeded.beta_okx, transfer_id=f"x{n}", type="deposit", timestamp=ms("2024-01-15"),
                     currency=currency, amount=5.0, status="ok")
            for n, currency in enumerate(["XYZ", "XYZ", "ABC"])
        ])
    warnings = reports.pnl_report(None, seeded.viewer("admin"), client_id=seeded.beta).result.warnings
    named = [w for w in warnings if "had no USD price" in w]
    assert named == ["3 deposit(s) had no USD price at the time (ABC, XYZ ×2); booked at 0 cost basis, "
                     "so their whole value counts as gain."]


def test_saved_summary_is_json_and_reads_back_exactly(seeded: Seeded) -> None:
    import json

    from lib.settings import get_settings

    computed = reports.cached_pnl_summary(seeded.viewer("admin"))
    files = list((get_settings().data_dir / "cache").glob("pnl-*.json"))
    assert len(files) == 1
    json.loads(files[0].read_text())  # plain data, nothing that could run code when read
    loaded = reports.cached_pnl_summary(seeded.viewer("admin"))  # now from the file
    assert loaded.totals == computed.totals and loaded.warnings == computed.warnings
    pd.testing.assert_frame_equal(loaded.per_asset, computed.per_asset, check_dtype=False)
    pd.testing.assert_frame_equal(loaded.daily, computed.daily, check_dtype=False)


def test_pnl_holdings_follow_the_balance_through_transfers(seeded: Seeded) -> None:
    """A pending deposit is not held yet; a withdrawal takes its fee; a failed one takes nothing."""
    from lib.models import Transfer
    from tests.test_queries import ms

    admin = seeded.viewer("admin")
    before = reports.pnl_report(None, admin, client_id=seeded.alpha).result.per_asset.set_index("asset")
    with session_scope() as session:
        session.add_all([
            Transfer(connector_id=seeded.alpha_binance, transfer_id="t-w1", type="withdrawal",
                     timestamp=ms("2024-04-01"), currency="ETH", amount=1.0, fee_cost=0.01, fee_currency="ETH",
                     status="ok"),
            Transfer(connector_id=seeded.alpha_binance, transfer_id="t-w2", type="withdrawal",
                     timestamp=ms("2024-04-02"), currency="ETH", amount=1.0, fee_cost=0.01, fee_currency="ETH",
                     status="failed"),
            Transfer(connector_id=seeded.alpha_binance, transfer_id="t-d1", type="deposit", timestamp=ms("2024-04-03"),
                     currency="BTC", amount=2.0, status="pending"),
        ])
    after = reports.pnl_report(None, admin, client_id=seeded.alpha).result.per_asset.set_index("asset")
    assert after.loc["ETH", "quantity"] == pytest.approx(before.loc["ETH", "quantity"] - 1.01, abs=1e-12)
    assert after.loc["BTC", "quantity"] == pytest.approx(before.loc["BTC", "quantity"], abs=1e-12)
