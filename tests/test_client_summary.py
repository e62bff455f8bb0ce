"""Clients side by side (lib.client_summary, the Clients page, ``lib.cli clients``): each client's
figures are its own period P&L, volume, fees and value; the total is their sum; client users are
refused; the table's columns are numbers; names show literally; the CLI's JSON and exit codes."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import pandas as pd
import pytest
from sqlalchemy import update
from streamlit.testing.v1 import AppTest

from lib import activity, reports
from lib.access import AccessDenied
from lib.cli import main
from lib.client_summary import SUMMED, client_summary
from lib.db import session_scope
from lib.models import Client, SyncResult, SyncRun
from lib.settings import PROJECT_ROOT
from lib.ui import scope, shell
from tests.test_queries import Seeded, seed_portfolio

HOSTILE = "**Bold** <b>x</b> [l](https://e.x) :red[r] $x$ \u202eevil"
WINDOWS = [(None, None), (datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC)),
           (datetime(2024, 2, 10, tzinfo=UTC), None)]


@pytest.fixture
def seeded(database_url: str) -> Seeded:
    seeded = seed_portfolio()
    with session_scope() as session:  # Beta's last sync found a balance its history does not explain
        run = SyncRun(trigger="worker")
        session.add(run)
        session.flush()
        session.add(SyncResult(run_id=run.id, connector_id=seeded.beta_okx, success=True,
                               reconciliation="unbalanced", unbalanced=2))
    return seeded


@pytest.mark.parametrize(("start", "end"), WINDOWS)
def test_each_row_is_the_clients_own_figures_and_the_total_their_sum(seeded: Seeded, start: datetime | None,
                                                                      end: datetime | None) -> None:
    admin = seeded.viewer("admin")
    summary = client_summary(admin, start, end)
    rows = summary.rows.set_index("client_id")
    assert sorted(rows.index) == sorted([seeded.alpha, seeded.beta])
    with session_scope() as session:
        volume = activity.volume_and_fees(session, admin, start, end).set_index("client_id")
    for client_id in (seeded.alpha, seeded.beta):
        own = reports.window_totals(reports.pnl_report(None, admin, client_id, start=start, end=end))
        row = rows.loc[client_id]
        assert row["realized"] == pytest.approx(own["realized"], abs=1e-9)
        assert row["unrealized_change"] == pytest.approx(own["unrealized_change"], abs=1e-9)
        assert row["net"] == pytest.approx(own["net"], abs=1e-9)
        assert row["value_usd"] == pytest.approx(reports.balances_report(admin, client_id).total_usd, abs=1e-9)
        traded = volume["volume_usd"].get(client_id, 0.0)
        assert row["volume_usd"] == pytest.approx(traded, abs=1e-9)
        assert row["fees_usd"] == pytest.approx(volume["fees_usd"].get(client_id, 0.0), abs=1e-9)
        assert row["accounts"] == 1
    assert rows.loc[seeded.alpha, "realized"] != 0  # the window holds Alpha's disposals in every case
    assert rows.loc[seeded.beta, "unbalanced_accounts"] == 1 and rows.loc[seeded.alpha, "unbalanced_accounts"] == 0
    for column in SUMMED:
        expected = summary.rows[column].sum()
        assert summary.total[column] == pytest.approx(expected, abs=1e-9), column
    assert summary.total["last_success_at"] == summary.rows["last_success_at"].min()
    assert "XYZ" in summary.unpriced  # Beta's token has no price: named, not valued at 0


def test_client_users_are_refused_and_analysts_see_every_client(seeded: Seeded) -> None:
    with pytest.raises(AccessDenied):
        client_summary(seeded.viewer("client"))
    assert len(client_summary(seeded.viewer("analyst")).rows) == 2


def test_bad_window_is_refused(seeded: Seeded) -> None:
    moment = datetime(2024, 2, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="before its end"):
        client_summary(seeded.viewer("admin"), moment, moment)


def _open(user_id: int) -> AppTest:
    at = AppTest.from_file(str(PROJECT_ROOT / "pages" / "portfolio" / "all_clients.py"), default_timeout=60)
    at.session_state["auth_user_id"] = user_id
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_page_table_is_numeric_and_names_are_literal(seeded: Seeded) -> None:
    with session_scope() as session:
        session.execute(update(Client).where(Client.id == seeded.beta).values(name=HOSTILE))
    at = _open(seeded.users["analyst"])
    assert not at.error
    table = at.dataframe[0].value
    for column in ("value_usd", "change_24h", "realized", "unrealized_change", "net", "volume_usd", "fees_usd",
                   "fills", "accounts", "unbalanced_accounts"):
        assert pd.api.types.is_numeric_dtype(table[column]), column
    names = set(table["client"].str.extract(scope._SHOWN.pattern)[0])  # each name links to its client's Overview
    assert "Alpha" in names
    assert "**Bold** <b>x</b> [l](https://e.x) :red[r] $x$ \\u202eevil" in names  # literal, override written out
    assert "overview?client=Alpha" in {link.partition("#")[0] for link in table["client"]}  # the picker's label
    expected = client_summary(seeded.viewer("analyst")).total
    shown = {m.label: m.value for m in at.metric}
    assert shown["Realized"] == f"+${expected['realized']:,.2f}"
    assert "Unpriced" in "\n".join(w.value for w in at.warning)
    headers = json.loads(at.dataframe[0].proto.columns)
    for column in ("change_24h", "change_7d", "change_30d"):  # a value change is not performance: it says so
        assert headers[column]["label"].startswith("Value change")
        assert "deposits and withdrawals included" in headers[column]["help"]


def test_page_period_changes_the_figures(seeded: Seeded) -> None:
    at = _open(seeded.users["admin"])
    everything = at.dataframe[0].value.set_index("client_id")
    at.selectbox(key="clients_window").set_value("This month").run()
    assert not at.exception
    now = at.dataframe[0].value.set_index("client_id")
    assert everything.loc[seeded.alpha, "realized"] != 0 and now.loc[seeded.alpha, "realized"] == 0  # 2024 fills


def test_page_refuses_client_users(seeded: Seeded) -> None:
    at = _open(seeded.users["client"])
    assert [e.value for e in at.error] == ["You do not have access to this page."]
    assert not at.dataframe


def _sidebar_app() -> None:
    from lib.access import Role, Viewer
    from lib.ui import shell

    shell.sidebar(Viewer("admin-user", Role.ADMIN))


def test_client_in_the_url_sets_the_picker(seeded: Seeded) -> None:
    at = AppTest.from_function(_sidebar_app, default_timeout=60)
    at.query_params[shell.CLIENT_PARAM] = "Beta"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state[shell.SCOPE_KEY] == seeded.beta
    stranger = AppTest.from_function(_sidebar_app, default_timeout=60)
    stranger.query_params[shell.CLIENT_PARAM] = "Nobody"  # no such client: ignored
    stranger.run()
    assert not stranger.exception and stranger.session_state[shell.SCOPE_KEY] == 0


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_json_and_exit_codes(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(capsys, "clients", "--start", "2024-02-01", "--end", "2024-02-29", "--json")
    assert code == 0
    data = json.loads(out)
    summary = client_summary(seeded.viewer("admin"), datetime(2024, 2, 1, tzinfo=UTC),
                             datetime(2024, 3, 1, tzinfo=UTC))
    rows = summary.rows.set_index("client")
    assert [c["client"] for c in data["clients"]] == list(rows.index)
    for item in data["clients"]:
        for key in ("client", "value_usd", "realized", "unrealized_change", "volume_usd", "fees_usd", "accounts"):
            assert key in item
        for key in ("value_usd", "realized", "unrealized_change", "volume_usd", "fees_usd"):
            assert item[key] == rows.loc[item["client"], key]  # every digit: equal, not approximately
    assert data["total"]["accounts"] == 2 and data["window"] == {"start": "2024-02-01", "end": "2024-02-29"}
    code, out, _ = _cli(capsys, "clients")
    assert code == 0 and "Alpha" in out and "TOTAL" in out
    for argv, message in [(("--start", "2024-02-30"), "--start must be a day written YYYY-MM-DD"),
                          (("--start", "2024-03-01", "--end", "2024-02-01"), "--start must be on or before --end"),
                          (("--method", "lifo"), "invalid choice")]:
        code, out, err = _cli(capsys, "clients", *argv)
        assert code == 2 and out == "" and message in err and len(err.strip().splitlines()) == 1


def test_cli_on_an_empty_install(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(capsys, "clients", "--json")
    data = json.loads(out)
    assert code == 0 and data["clients"] == [] and data["total"]["accounts"] == 0
    assert data["total"]["value_usd"] is None or not math.isnan(data["total"]["value_usd"])


def test_page_help_says_realized_and_net_are_after_fees_as_the_pnl_page_words_it(seeded: Seeded) -> None:
    """Fees are inside proceeds and cost basis (PNL.md): Realized and Net are after fees, and the Fees
    column is there for information, in the P&L page's own words for its Fees figure."""
    at = _open(seeded.users["admin"])
    headers = json.loads(at.dataframe[0].proto.columns)
    pnl_page = (PROJECT_ROOT / "pages" / "portfolio" / "pnl.py").read_text()
    inside = "Already inside proceeds and cost basis (PNL.md); shown for information, not subtracted again."
    assert inside in " ".join(pnl_page.split()).replace('" "', "")  # the P&L page's wording, still
    assert inside in headers["fees_usd"]["help"]
    for column in ("realized", "net"):
        assert "after fees" in headers[column]["help"] and "inside proceeds and cost basis" in headers[column]["help"]
    assert "as on the Activity page" in headers["volume_usd"]["help"]
    caption = "\n".join(c.value for c in at.caption)
    assert "its own trades only, across all of its accounts" in caption and "lots pooled over" not in caption
