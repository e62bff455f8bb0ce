"""Client statements: the period P&L's figures, footing, HTML/PDF, access, worker revisions, CLI."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from lib import activity, reports, statement_store, statements
from lib.access import AccessDenied
from lib.cli import main
from lib.db import session_scope
from lib.models import Client, Statement, Trade
from lib.statement_render import title as statements_title
from lib.statement_render import to_html, to_pdf
from lib.sync import worker
from lib.ui import shell
from tests.test_queries import Seeded, ms, seed_portfolio


@pytest.fixture
def seeded(database_url: str) -> Seeded:
    return seed_portfolio()


def _feb(seeded: Seeded, role: str = "admin") -> statements.StatementData:
    start, end = statements.month_window("2024-02")
    return statements.gather(seeded.viewer(role), seeded.alpha, start, end, "2024-02")


def test_figures_are_the_period_pnl_and_foot(seeded: Seeded) -> None:
    data = _feb(seeded)
    start, end = statements.month_window("2024-02")
    report = reports.pnl_report(None, seeded.viewer("admin"), seeded.alpha, start=start, end=end)
    assert data.totals == report.period  # the same figures as `lib.cli pnl --start 2024-02-01 --end 2024-02-29`
    t = data.totals
    assert t.realized != 0 and data.fills == 2  # T4 and T5
    change = t.closing_value - t.opening_value - t.net_flows
    assert change == pytest.approx(t.realized + t.unrealized_change + t.withdrawn_unrealized
                                   - t.unpriced_basis_change, abs=1e-6)
    assert data.trading + data.revaluation == pytest.approx(change, abs=1e-9)
    # revaluation: the opening BTC (1.5 - 0.001 fee) and BNB (2 - 0.05) at the edges' marks
    lines = {line.asset: line for line in data.inventory}
    assert str(lines["BTC"].opening_units) == "1.499"
    expected = sum(float(line.opening_units) * (line.closing_price - line.opening_price)
                   for line in data.inventory if line.asset not in reports.usd_like() and line.opening_units)
    assert data.revaluation == pytest.approx(expected)
    assert float(data.volume_usd) == pytest.approx(0.5 * 50000 + 31200)  # ETH/BTC at the BTC candle, BTC/USDT at 1
    with session_scope() as session:  # to the cent what the Activity page shows for the client and month
        shown = activity.activity_report(session, seeded.viewer("admin"), start, end, seeded.alpha)
    assert data.volume_usd == shown.volume_usd
    assert sum(v.opening_usd or 0 for v in data.inventory) == pytest.approx(t.opening_value)


def test_html_escapes_and_pdf_parses(seeded: Seeded) -> None:
    hostile = "<script>alert(1)</script> Жора & Co"
    with session_scope() as session:
        session.get(Client, seeded.alpha).name = hostile
    data = _feb(seeded)
    page = to_html(data)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; Жора &amp; Co" in page
    assert "http" not in page  # nothing loaded from elsewhere
    assert "<td class='n'>1.49900000</td>" in page  # BTC units exact, to the satoshi
    assert ("Period: 2024-02-01 to 2024-02-29, UTC days, both included (from 2024-02-01 00:00 UTC up to "
            "2024-03-01 00:00 UTC, that moment not included)") in page  # one reading: no "to 23:59" beside "to 03-01"
    pdf = to_pdf(data)
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    # fpdf2 writes page text as glyph ids of an embedded font subset; the document title (which names
    # the client) is a UTF-16 hex string in the metadata
    title = ("\ufeff" + statements_title(data)).encode("utf-16-be").hex().encode()
    assert b"/Title <" + title + b">" in pdf


def test_access_by_role(seeded: Seeded) -> None:
    assert _feb(seeded, "client").client == "Alpha"  # the client user's own client
    assert _feb(seeded, "analyst").client == "Alpha"
    start, end = statements.month_window("2024-02")
    with pytest.raises(AccessDenied):
        statements.gather(seeded.viewer("client"), seeded.beta, start, end)
    statement_store.keep_month(seeded.beta, "2024-02")
    with session_scope() as session:
        kept = statement_store.list_kept(session, seeded.viewer("admin"), seeded.beta)
        assert [k.period for k in kept] == ["2024-02"]
        with pytest.raises(AccessDenied):
            statement_store.list_kept(session, seeded.viewer("client"), seeded.beta)
        with pytest.raises(AccessDenied):
            statement_store.kept_file(session, seeded.viewer("client"), kept[0].id, "pdf")
        assert statement_store.kept_file(session, seeded.viewer("analyst"), kept[0].id, "pdf").startswith(b"%PDF")


def test_worker_keeps_once_and_revises_on_late_data(seeded: Seeded) -> None:
    now = datetime(2024, 4, 15, tzinfo=UTC)
    made = statement_store.keep_closed_months(now)
    alpha = sorted(k.period for k in made if k.client_id == seeded.alpha)
    assert alpha == ["2023-12", "2024-01", "2024-02", "2024-03"]
    assert all(k.revision == 1 for k in made)
    assert statement_store.keep_closed_months(now) == []  # nothing new: nothing made again
    with session_scope() as session:  # a fill dated in February arrives late
        session.add(Trade(connector_id=seeded.alpha_binance, trade_id="late", timestamp=ms("2024-02-20"),
                          symbol="BTC/USDT", base="BTC", quote="USDT", side="sell", amount=0.1, price=51000,
                          cost=5100, fee_cost=0, fee_currency="USDT"))
    again = statement_store.keep_closed_months(now)
    assert sorted(k.period for k in again) == ["2024-02", "2024-03"]  # March's opening moved too
    assert {k.revision for k in again} == {2}
    with session_scope() as session:
        row = session.scalar(select(Statement).where(Statement.client_id == seeded.alpha,
                                                     Statement.period == "2024-02"))
        assert row.revision == 2 and "Revised: revision 2 of" in row.html
        january = session.scalar(select(Statement).where(Statement.client_id == seeded.alpha,
                                                         Statement.period == "2024-01"))
        assert january.revision == 1 and "Revised" not in january.html


def test_cli_statement(seeded: Seeded, tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    out = tmp_path / "alpha.pdf"
    assert main(["statement", "--client", "Alpha", "--month", "2024-02", "--out", str(out)]) == 0
    assert out.read_bytes().startswith(b"%PDF")
    page = tmp_path / "alpha.html"
    assert main(["statement", "--client", "Alpha", "--month", "2024-02", "--out", str(page)]) == 0
    assert "Statement for Alpha, 2024-02" in page.read_text()
    capsys.readouterr()
    for argv in (["--client", "Nobody", "--month", "2024-02"], ["--client", "Alpha", "--month", "2024-13"],
                 ["--client", "Alpha", "--month", "Feb"], ["--client", "Alpha", "--month", "2999-01"],
                 ["--client", "Alpha", "--month", "2024-02", "--out", str(tmp_path / "x.doc")]):
        assert main(["statement", *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err


def test_worker_loop_keeps_statements(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sync worker's loop makes the closed months' statements after its sync pass."""
    stop = threading.Event()
    keep = worker.keep_statements

    def keep_then_stop() -> None:
        keep()
        stop.set()

    monkeypatch.setattr(worker, "run_cycle", lambda interval, event: None)  # no exchanges to reach
    monkeypatch.setattr(statement_store, "utcnow", lambda: datetime(2024, 4, 15, tzinfo=UTC))  # 4 closed months
    monkeypatch.setattr(worker, "keep_statements", keep_then_stop)
    worker._loop(1.0, stop, None)
    with session_scope() as session:
        periods = {k.period for k in statement_store.list_kept(session, seeded.viewer("admin"), seeded.alpha)}
    assert periods == {"2023-12", "2024-01", "2024-02", "2024-03"}


def _open(seeded: Seeded, role: str, client_id: int | None = None) -> AppTest:
    at = AppTest.from_file(str(Path(__file__).parent.parent / "pages" / "portfolio" / "statements.py"),
                           default_timeout=120)
    at.session_state["auth_user_id"] = seeded.users[role]
    if client_id is not None:
        at.session_state[shell.SCOPE_KEY] = client_id  # the sidebar's client
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_page_lists_kept_statements_by_role(seeded: Seeded) -> None:
    statement_store.keep_closed_months(datetime(2024, 3, 15, tzinfo=UTC))
    mine = _open(seeded, "client")  # one client: it needs no picking
    assert mine.title[0].value == "Statements · Alpha"
    assert list(mine.dataframe[0].value["Period"]) == ["2024-02", "2024-01", "2023-12"]
    assert list(mine.dataframe[0].value["Revised"]) == ["No"] * 3
    assert len(mine.get("download_button")) == 2
    sneaky = _open(seeded, "client", seeded.beta)  # another client's id in the session: never shown
    assert sneaky.title[0].value == "Statements · Alpha"
    everyone = _open(seeded, "analyst")  # several clients, none picked in the sidebar: asked to pick one
    assert "pick the client in the sidebar" in everyone.info[0].value and not everyone.dataframe
    analyst = _open(seeded, "analyst", seeded.beta)
    assert analyst.title[0].value == "Statements · Beta"
    assert list(analyst.dataframe[0].value["Period"]) == ["2024-02", "2024-01"]
    analyst.selectbox[1].select("2024-02")
    analyst.button[0].click().run()  # on demand: Generate
    assert not analyst.exception and len(analyst.get("download_button")) == 4
