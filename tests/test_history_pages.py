"""Complete history on the pages: balances per account type, the order-history view, coverage
per connector and data kind, the add-key form's look-back, and opening-balance notices.

The portfolio of tests/test_queries.py plus rows written straight into the tables the sync
fills (balance snapshots per account type, closed orders, coverage, opening lots), read as an
admin and as Alpha's client user.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from lib import capabilities, reports, statement_render, statements
from lib.db import session_scope
from lib.models import BalanceSnapshot, Client, HistoryCoverage, OpeningBalance, OrderHistory
from lib.settings import PROJECT_ROOT
from lib.sync.status import Freshness
from lib.ui import format as fmt
from lib.ui import loaders, scope, sync_widgets
from tests import table_cells
from tests.test_markup import (  # noqa: F401 - ``hostile`` is a fixture
    BOLD,
    COLOUR,
    HOSTILE,
    LINK,
    REVERSED,
    Hostile,
    assert_literal,
    hostile,
)
from tests.test_queries import Seeded, _connector, add_funding_btc, ms, seed_portfolio

DAY_MS = 86_400_000
#: when the seeded streams were last walked, and the first sync that booked the opening lots
WALKED = datetime(2026, 12, 4, 12, tzinfo=UTC)
FIRST_SYNC = ms("2026-12-04T12:00:00")
OKX_REFUSAL = "Permission denied: this API key may not read the funding account."
NETWORK = "The exchange could not be reached (network error)."


@dataclass(frozen=True)
class History:
    seeded: Seeded
    alpha_cryptocom: int


def _coverage(connector_id: int, stream: str, **fields: object) -> HistoryCoverage:
    kind = {"canceled": "orders"}.get(stream.partition(":")[0], stream.partition(":")[0])  # as lib.capabilities
    return HistoryCoverage(connector_id=connector_id, stream=stream, kind=kind, updated_at=WALKED,
                           lookback_source=fields.pop("lookback_source", ""), **fields)


@pytest.fixture
def history(database_url: str) -> History:
    """Alpha: BTC in binance's default and funding accounts, binance fills walked per market by
    id (one market failed), and a crypto.com account (180-day look-back) whose ETH was booked as
    an opening balance. Beta: okx (90 days) refuses the funding account; its BTC was booked too."""
    seeded = seed_portfolio()
    add_funding_btc(seeded)
    binance, okx = seeded.alpha_binance, seeded.beta_okx
    with session_scope() as session:
        taken_at = session.scalar(select(func.max(BalanceSnapshot.taken_at)))
        alpha = session.get(Client, seeded.alpha)
        cryptocom = _connector(alpha, "cryptocom")
        session.add(cryptocom)
        session.flush()
        session.add(BalanceSnapshot(connector_id=cryptocom.id, taken_at=taken_at, asset="ETH", free=2.0, used=0.0,
                                    total=2.0))
        id_source = "override: developers.binance.com account-trade-list (fromId from 0: whole history)"
        session.add_all([
            *(_coverage(binance, f"trades:{symbol}", lookback_source=id_source, fetched_from=ms("2024-01-01"),
                        fetched_to=ms("2024-03-20"), complete_at=WALKED)
              for symbol in ("BTC/USDT", "BNB/USDT", "ETH/USDT")),
            _coverage(binance, "trades:ETH/BTC", lookback_source=id_source, fetched_from=ms("2024-02-01"),
                      fetched_to=ms("2024-02-01"), failed_from=ms("2024-02-02"), failed_to=ms("2024-02-03"),
                      failed_error=NETWORK),
            _coverage(binance, "deposits", lookback_source="unknown", fetched_from=ms("2023-12-31"),
                      fetched_to=ms("2024-04-01"), complete_at=WALKED),
            _coverage(binance, "balance:default", fetched_to=ms("2024-04-01T10:00:00"), complete_at=WALKED),
            _coverage(binance, "balance:funding", fetched_to=ms("2024-04-01T10:00:00"), complete_at=WALKED),
            _coverage(okx, "trades", oldest_available=FIRST_SYNC - 90 * DAY_MS,
                      lookback_source="override: okx.com docs-v5 fills-history (last 3 months)",
                      fetched_from=ms("2024-02-01"), fetched_to=FIRST_SYNC, complete_at=WALKED),
            *(_coverage(okx, stream, oldest_available=FIRST_SYNC - 90 * DAY_MS, lookback_source="ccxt features",
                        fetched_from=FIRST_SYNC - 90 * DAY_MS, fetched_to=FIRST_SYNC, complete_at=WALKED)
              for stream in ("orders", "canceled")),
            _coverage(okx, "balance:default", fetched_to=FIRST_SYNC, complete_at=WALKED),
            _coverage(okx, "balance:funding", failed_error=OKX_REFUSAL),
            _coverage(cryptocom.id, "trades", oldest_available=FIRST_SYNC - 180 * DAY_MS,
                      lookback_source="override: exchange-docs.crypto.com private-get-trades",
                      fetched_from=FIRST_SYNC - 180 * DAY_MS, fetched_to=FIRST_SYNC, complete_at=WALKED),
            OpeningBalance(connector_id=okx, asset="BTC", amount=1.5, usd_price=64000.0, timestamp=FIRST_SYNC),
            OpeningBalance(connector_id=cryptocom.id, asset="ETH", amount=2.0, usd_price=None,
                           timestamp=FIRST_SYNC),
            # read by id from the first fill: nothing older was missed, so no notice
            OpeningBalance(connector_id=binance, asset="BNB", amount=1.0, usd_price=500.0, timestamp=FIRST_SYNC),
        ])
        session.add_all([
            _order(binance, "c1", "2024-01-01", "BTC/USDT", "buy", "closed", 40000.0, 1.0),
            _order(binance, "c2", "2024-01-15", "ETH/USDT", "sell", "canceled", 3100.0, 0.0),
            _order(binance, "c3", "2024-02-15", "BTC/USDT", "sell", "closed", 52000.0, 0.6),
            _order(okx, "c4", "2024-02-02", "XYZ/USDT", "buy", "canceled", 2.0, 0.0),
        ])
        return History(seeded, cryptocom.id)


def _order(connector_id: int, order_id: str, day: str, symbol: str, side: str, status: str, price: float,
           filled: float) -> OrderHistory:
    return OrderHistory(connector_id=connector_id, order_id=order_id, timestamp=ms(day), last_update=ms(day) + 1000,
                        symbol=symbol, side=side, type="limit", status=status, price=price,
                        average=price if filled else None, amount=1.0, filled=filled, cost=price * filled,
                        fee_cost=0.001 * filled if filled else None, fee_currency="BNB" if filled else None)


def open_page(path: str, user_id: int, client_id: int | None = None) -> AppTest:
    at = AppTest.from_file(str(PROJECT_ROOT / path), default_timeout=60)
    at.session_state["auth_user_id"] = user_id
    if client_id is not None:
        at.session_state["client"] = client_id
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    return "\n".join(str(e.value) for kind in ("error", "warning", "info", "caption", "markdown", "subheader")
                     for e in getattr(at, kind))


def widget(items, label: str):  # noqa: ANN001, ANN201 - AppTest element sequences
    matches = [w for w in items if w.label == label]
    assert matches, f"no widget labelled {label!r}; have {[w.label for w in items]}"
    return matches[0]


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


BETA_NOTE = ("BTC 1.5 on Beta · okx / main booked as an opening balance at the first sync's price on 2026-12-04: "
             "the exchange keeps fills only since 2026-09-05 (90 days), so older history could not be read.")
ALPHA_NOTE = ("ETH 2 on Alpha · cryptocom / main booked as an opening balance with no price at the first sync on "
              "2026-12-04: the exchange keeps fills only since 2026-06-07 (180 days), so older history could not "
              "be read.")
UNREADABLE = f"Beta · okx / main: Funding account not readable with this key: {OKX_REFUSAL}"


def _plain(text: str) -> str:
    """Markdown source as read (``literal`` escapes punctuation)."""
    return text.replace("\\", "")


# --------------------------------------------------------------------------- balances


def test_balances_split_by_account_type_and_totals_sum_them(history: History) -> None:
    seeded = history.seeded
    at = open_page("pages/portfolio/balances.py", seeded.users["admin"], client_id=seeded.alpha)
    table = table_cells.shown(at.dataframe[0])
    btc = table[table_cells.linked(table["Asset"]) == "BTC"].set_index("Account type")
    assert sorted(btc.index) == ["Default", "Funding"]
    # BTC to the satoshi
    assert (btc.loc["Default", "Total"], btc.loc["Funding", "Total"]) == ("0.56333500", "0.40000000")
    # binance: 0.963335 BTC (both accounts), 3 ETH, 1.93 BNB, 1000 USDT; crypto.com: 2 ETH
    assert metric(at, "Value (filtered)") == "$82,081.77"
    widget(at.multiselect, "Asset").select("BTC")
    at.run()
    assert metric(at, "Value (filtered)") == "$62,616.78" and metric(at, "Rows") == "2"
    widget(at.multiselect, "Account type").select("Funding")
    at.run()
    assert metric(at, "Value (filtered)") == "$26,000.00" and metric(at, "Rows") == "1"


def test_overview_counts_both_account_types_once_per_asset(history: History) -> None:
    seeded = history.seeded
    at = open_page("pages/portfolio/overview.py", seeded.users["admin"], client_id=seeded.alpha)
    assert metric(at, "Total value") == "$82,081.77"  # fits its card in full
    top = table_cells.shown(at.dataframe[0])
    top = top.set_index(table_cells.linked(top["Asset"]))  # each asset links to its Asset page
    assert top.loc["BTC", "Quantity"] == "0.96333500"
    numbers = table_cells.numbers(at.dataframe[0])
    assert numbers.set_index(table_cells.linked(numbers["Asset"])).loc["BTC", "Quantity"] == Decimal("0.963335")


def test_balances_say_which_account_type_the_key_may_not_read(history: History) -> None:
    seeded = history.seeded
    admin = open_page("pages/portfolio/balances.py", seeded.users["admin"])
    warnings = [_plain(w.value) for w in admin.warning]
    assert UNREADABLE in warnings
    notes = [_plain(i.value) for i in admin.info]
    assert BETA_NOTE in notes and ALPHA_NOTE in notes
    assert not any("binance" in note for note in notes)  # read from the first id: nothing missed
    client = open_page("pages/portfolio/balances.py", seeded.users["client"])
    shown = _plain(texts(client))
    assert ALPHA_NOTE in shown
    assert "okx" not in shown and "Beta" not in shown and "Funding account not readable" not in shown


def test_pnl_names_opening_balances_booked_past_the_look_back(history: History) -> None:
    seeded = history.seeded
    admin = open_page("pages/portfolio/pnl.py", seeded.users["admin"])
    shown = _plain(texts(admin))
    assert BETA_NOTE in shown and ALPHA_NOTE in shown
    beta = open_page("pages/portfolio/pnl.py", seeded.users["admin"], client_id=seeded.beta)
    assert BETA_NOTE in _plain(texts(beta)) and ALPHA_NOTE not in _plain(texts(beta))
    client = open_page("pages/portfolio/pnl.py", seeded.users["client"], client_id=seeded.beta)
    assert ALPHA_NOTE in _plain(texts(client)) and "okx" not in texts(client)


def test_history_notes_date_the_look_back_at_the_first_sync(history: History) -> None:
    """Later walks move ``oldest_available`` on; the notice keeps the first sync's limit."""
    seeded = history.seeded
    with session_scope() as session:
        row = session.get(HistoryCoverage, (seeded.beta_okx, "trades"))
        row.updated_at = WALKED + timedelta(days=30)
        row.oldest_available += 30 * DAY_MS
    notes = reports.history_notes(seeded.viewer("admin"), seeded.beta)
    assert notes.opening == [BETA_NOTE] and notes.unreadable == [UNREADABLE]


def test_statements_note_the_history_the_sync_could_not_read(history: History) -> None:
    """A client's statement is read away from the dashboard: its notes carry the same sentences
    as the P&L page, so a month whose figures start from an opening balance says so."""
    seeded = history.seeded
    start = datetime.combine(WALKED.date().replace(day=1), datetime.min.time(), tzinfo=UTC)
    data = statements.gather(seeded.viewer("admin"), seeded.beta, start, start + timedelta(days=32))
    said = statement_render.notes(data)
    assert BETA_NOTE in said and UNREADABLE in said and ALPHA_NOTE not in said
    assert BETA_NOTE in statement_render.to_html(data).replace("&#x27;", "'")


# --------------------------------------------------------------------------- order history


def history_table(at: AppTest) -> pd.DataFrame:
    return next(table_cells.shown(frame) for frame in at.dataframe if "Status" in frame.value.columns)


def test_order_history_filters_and_scope(history: History) -> None:
    seeded = history.seeded
    at = open_page("pages/portfolio/orders.py", seeded.users["admin"])
    assert "4 closed or canceled order(s) match" in texts(at)
    table = history_table(at)
    assert list(table["Order ID"]) == ["c3", "c4", "c2", "c1"]  # newest first
    c3 = table.set_index("Order ID").loc["c3"]
    assert (c3["Status"], c3["Average"], c3["Filled"], c3["Cost"], c3["Fee"]) == (
        "closed", "52,000", "0.6", "31,200 USDT", "0.0006 BNB")  # each amount with its currency
    assert table.set_index("Order ID").loc["c2", "Average"] == "—"
    widget(at.selectbox, "Status").select("canceled")
    at.run()
    assert list(history_table(at)["Order ID"]) == ["c4", "c2"]
    widget(at.selectbox, "Status").select(None)
    widget(at.selectbox, "Symbol").select("BTC/USDT")
    at.run()
    assert list(history_table(at)["Order ID"]) == ["c3", "c1"]
    widget(at.selectbox, "Symbol").select(None)
    widget(at.text_input, "From (UTC)").input("2024-01-10")
    widget(at.text_input, "To (UTC)").input("2024/02/02")
    at.run()
    assert list(history_table(at)["Order ID"]) == ["c4", "c2"]
    at.session_state[scope.ACCOUNT_KEY] = seeded.alpha_binance  # the sidebar's Account
    at.run()
    assert list(history_table(at)["Order ID"]) == ["c2"]
    assert at.title[0].value == "Orders & positions · Alpha › binance / main"
    assert at.get("download_button")

    client = open_page("pages/portfolio/orders.py", seeded.users["client"], client_id=seeded.beta)
    assert "3 closed or canceled order(s) match" in texts(client)
    assert set(history_table(client)["Order ID"]) == {"c1", "c2", "c3"}
    assert "XYZ" not in history_table(client).to_csv()
    widget(client.selectbox, "Status").select("canceled")
    client.run()
    assert list(history_table(client)["Order ID"]) == ["c2"]


def test_order_history_csv_is_filtered_and_scoped(history: History) -> None:
    seeded = history.seeded
    admin = pd.read_csv(io.BytesIO(loaders.order_history_csv(seeded.viewer("admin"), status="canceled")()))
    assert list(admin["order_id"]) == ["c4", "c2"]
    assert {"time", "client", "symbol", "status", "average", "filled", "cost", "fee_cost"} <= set(admin.columns)
    own = pd.read_csv(io.BytesIO(loaders.order_history_csv(seeded.viewer("client"))()))
    assert list(own["order_id"]) == ["c3", "c2", "c1"] and set(own["client"]) == {"Alpha"}
    other = pd.read_csv(io.BytesIO(loaders.order_history_csv(seeded.viewer("client"), client_id=seeded.beta)()))
    assert other.empty


# --------------------------------------------------------------------------- coverage


PICKER = "Markets walked: connector"


def coverage_table(at: AppTest) -> pd.DataFrame:
    """The Sync page's one coverage table: a row per connector and data kind."""
    return next(frame.value for frame in at.dataframe if "Data" in frame.value.columns)


def coverage_of(at: AppTest, name: str) -> tuple[pd.DataFrame, str]:
    """A connector's rows of the coverage table, and its markets walked once picked below it."""
    table = coverage_table(at)
    frame = table[table["Account"] == name].drop(columns="Account").set_index("Data")
    picker = widget(at.selectbox, PICKER)
    if name not in picker.options:  # only connectors with coverage are offered
        return frame, ""
    picker.select_index(picker.options.index(name))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    details = [_plain(c.value) for c in at.caption if _plain(c.value).startswith("Markets walked for")]
    return frame, "\n".join(details)


def test_sync_page_coverage_tables_pin_whose_row_and_show_the_short_facts_first(history: History) -> None:
    """Wider than the page beside the sidebar at 1,400 px: the account and data kind pinned; what was
    fetched, what the exchange keeps and what failed before the reason in words and its reference, each
    wide enough for its text (the grid would size them to their header among "—" cells) and no wider than
    what scrolls beside the pinned columns."""
    seeded = history.seeded
    at = open_page("pages/operations/sync.py", seeded.users["admin"])
    tables = [frame for frame in at.dataframe if "Data" in frame.value.columns]
    assert len(tables) == 2  # every connector's, and the one picked below it
    for element in tables:
        shown, config = list(element.value.columns), table_cells.config(element)
        pinned = [column for column in shown if config.get(column, {}).get("pinned")]
        assert pinned == [column for column in ("Account", "Data") if column in shown] == shown[:len(pinned)]
        assert shown[len(pinned):len(pinned) + 3] == ["Fetched (UTC)", "Oldest kept by the exchange", "Failed"]
        assert shown[-2:] == [sync_widgets.WHY, sync_widgets.REFERENCE]  # an admin: the reference too
        for column in (sync_widgets.WHY, sync_widgets.REFERENCE):
            assert 400 <= config[column]["width"] <= 560, column
            assert config[column]["help"]


def test_sync_page_shows_coverage_per_connector_and_kind(history: History) -> None:
    seeded = history.seeded
    at = open_page("pages/operations/sync.py", seeded.users["admin"])
    accounts = list(dict.fromkeys(coverage_table(at)["Account"]))  # in the table's order
    failed = list(dict.fromkeys(coverage_table(at).query("Failed != '—'")["Account"]))
    assert failed == ["Alpha · binance / main", "Beta · okx / main"]
    assert accounts[:2] == failed and "Alpha · cryptocom / main" in accounts[2:]  # failed windows first
    assert "2 connectors have failed windows: they are listed first" in "\n".join(w.value for w in at.warning)
    assert widget(at.selectbox, PICKER).value == seeded.alpha_binance  # the first with failed windows
    binance, markets = coverage_of(at, "Alpha · binance / main")
    fills = binance.loc["Fills"]
    assert fills["Oldest kept by the exchange"] == "whole history (paged by id)"
    assert fills["Fetched (UTC)"] == "2024-01-01 – 2024-03-20"
    assert fills["Last complete walk"] == "not yet for 1 of 4 markets"
    assert fills["Failed"] == f"ETH/BTC: 2024-02-02 – 2024-02-03: {NETWORK}"
    assert fills["Markets"] == "4 walked"
    assert "Markets walked for fills (4): BNB/USDT, BTC/USDT, ETH/BTC, ETH/USDT" in markets
    assert fills[sync_widgets.WHY] == "whole history: read by id from the first record (exchange's API docs)"
    assert fills[sync_widgets.REFERENCE].startswith("override: developers.binance.com")  # an admin's view
    deposits = binance.loc["Deposits"]  # the exchange does not say how long it keeps them: not "—"
    assert deposits["Oldest kept by the exchange"] == sync_widgets.NOT_PUBLISHED
    assert deposits[sync_widgets.WHY] == "the exchange does not publish it: the first sync read 730 days back"
    assert deposits[sync_widgets.REFERENCE] == fmt.MISSING
    balances = binance.loc["Balances: default account"]  # no look-back: the cells do not apply
    assert balances[["Oldest kept by the exchange", sync_widgets.WHY, sync_widgets.REFERENCE]].eq(fmt.MISSING).all()
    assert binance.loc["Deposits", "Last complete walk"] == "2026-12-04 12:00 UTC"
    assert list(binance.index) == ["Fills", "Deposits", "Balances: default account", "Balances: funding account"]
    okx, okx_markets = coverage_of(at, "Beta · okx / main")
    assert okx_markets == ""  # okx reads fills without a symbol: no markets walked
    assert list(okx.index) == ["Fills", "Order history", "Canceled orders", "Balances: default account",
                               "Balances: funding account"]
    assert okx.loc["Canceled orders", "Fetched (UTC)"] == "2026-09-05 – 2026-12-04"
    assert okx.loc["Fills", "Oldest kept by the exchange"] == "2026-09-05"
    assert okx.loc["Fills", sync_widgets.WHY] == "exchange's API docs: last 3 months"
    assert okx.loc["Order history", sync_widgets.WHY] == "the exchange's published limit (via ccxt)"
    assert okx.loc["Fills", "Fetched (UTC)"] == "2024-02-01 – 2026-12-04"
    assert okx.loc["Fills", "Failed"] == "—"
    assert okx.loc["Balances: funding account", "Failed"] == OKX_REFUSAL
    assert okx.loc["Balances: default account", "Failed"] == "—"
    assert okx.loc["Balances: funding account", "Last complete walk"] == "not yet"
    cryptocom, _ = coverage_of(at, "Alpha · cryptocom / main")
    assert cryptocom.loc["Fills", "Oldest kept by the exchange"] == "2026-06-07"
    assert cryptocom.loc["Fills", sync_widgets.WHY] == "exchange's API docs"
    assert not coverage_table(at).isin(["unknown", ""]).any().any()  # one marker for an empty cell: "—"
    assert "not published*: the exchange does not say how long it keeps that data" in texts(at)

    client = open_page("pages/operations/sync.py", seeded.users["client"])
    accounts = set(coverage_table(client)["Account"]) | set(widget(client.selectbox, PICKER).options)
    assert "Alpha · binance / main" in accounts
    assert not any("Beta" in account or "okx" in account for account in accounts)
    assert OKX_REFUSAL not in repr(client._tree) and OKX_REFUSAL not in coverage_table(client).to_csv()
    # the look-back's reason in words, never the developers' documentation reference
    own = coverage_table(client)
    assert sync_widgets.REFERENCE not in own.columns and list(own.columns) == list(sync_widgets.COVERAGE_COLUMNS)
    assert own.set_index(["Account", "Data"]).loc[("Alpha · binance / main", "Fills"), sync_widgets.WHY] == (
        "whole history: read by id from the first record (exchange's API docs)")
    assert "developers.binance.com" not in repr(client._tree) and "override:" not in repr(client._tree)
    assert not own.isin(["unknown", ""]).any().any()


def _freshness(connector_id: int, client: str, exchange: str) -> Freshness:
    return Freshness(connector_id, 1, client, exchange, "main", "ok", "ok", WALKED, WALKED, None, 0)


def test_coverage_frame_words_the_look_back_and_keeps_the_reference_for_admins() -> None:
    """Every kind of line lib.reports writes: a reason in words for everyone, the documentation
    reference only with ``reference``; "not published" only where the exchange does not say,
    "—" wherever a cell does not apply, never "unknown" or an empty cell."""
    okx = "override: okx.com docs-v5 fills-history (last 3 months)"
    lines = [
        reports.CoverageLine("Fills", "2026-09-05", f"ccxt features, {okx}", "2024-02-01 – 2026-12-04",
                             "2026-12-04 12:00 UTC", ""),
        reports.CoverageLine("Deposits", "unknown", "unknown", "2024-12-04 – 2026-12-04", "not yet", ""),
        reports.CoverageLine("Withdrawals", "unknown", "", "nothing yet", "not yet", ""),  # no source recorded
        reports.CoverageLine("Account ledger", "2026-09-05", HOSTILE, "nothing yet", "not yet", ""),
        reports.CoverageLine("Balances: default account", "—", "—", "never read", "not yet", ""),
        reports.CoverageLine("Fills imported from CSV", "—", "CSV import: 2 file(s), 40 new row(s)",
                             "2024-01-01 – 2024-02-01", "imported 2026-12-04 12:00 UTC", ""),
    ]
    coverage = [reports.ConnectorCoverage(1, "Alpha", "okx", "main", lines)]
    connectors = [_freshness(1, "Alpha", "okx"), _freshness(2, "Beta", "kraken")]  # Beta: nothing fetched yet
    plain = sync_widgets.coverage_overview(connectors, coverage).frame
    admin = sync_widgets.coverage_overview(connectors, coverage, reference=True).frame
    assert list(plain.columns) == list(sync_widgets.COVERAGE_COLUMNS)
    assert list(admin.columns) == list(sync_widgets.coverage_columns(reference=True))
    assert sync_widgets.REFERENCE not in plain.columns and "okx.com" not in plain.to_csv()
    why = plain.set_index("Data")[sync_widgets.WHY]
    assert why["Fills"] == "the exchange's published limit (via ccxt); exchange's API docs: last 3 months"
    assert why["Deposits"] == "the exchange does not publish it: the first sync read 730 days back"
    assert why["Withdrawals"] == why["Balances: default account"] == why["Nothing fetched yet"] == fmt.MISSING
    assert why["Account ledger"] == fmt.visible(HOSTILE)  # a source it does not know: as it is, plain text
    assert why["Fills imported from CSV"] == "CSV import: 2 file(s), 40 new row(s)"
    oldest = plain.set_index("Data")["Oldest kept by the exchange"]
    assert oldest["Deposits"] == oldest["Withdrawals"] == sync_widgets.NOT_PUBLISHED
    assert oldest["Balances: default account"] == oldest["Fills imported from CSV"] == fmt.MISSING
    reference = admin.set_index("Data")[sync_widgets.REFERENCE]
    assert reference["Fills"] == f"ccxt features, {okx}"
    assert (reference[["Deposits", "Withdrawals", "Balances: default account", "Fills imported from CSV",
                       "Nothing fetched yet"]] == fmt.MISSING).all()
    for frame in (plain, admin):
        assert not frame.isin(["unknown", ""]).any().any()
    assert list(sync_widgets.coverage_frame(coverage[0]).columns) == list(sync_widgets.COVERAGE_COLUMNS[1:])


def test_every_documented_look_back_reads_in_words() -> None:
    """Each rule of lib.capabilities' table of overrides says in words what its page says: the
    coverage table never falls back to the developer's reference for one of them."""
    sources = {rule["source"] for streams in capabilities.OVERRIDES.values() for rule in streams.values()
               if isinstance(rule, dict) and "source" in rule}
    assert sources
    for source in sources:
        line = reports.CoverageLine("Fills", "2026-09-05", source, "", "", "")
        assert line.has_reference and line.why.startswith("exchange's API docs") and source not in line.why


def test_connector_details_show_coverage_and_markets(history: History) -> None:
    seeded = history.seeded
    at = open_page("pages/admin/clients.py", seeded.users["admin"])
    widget(at.selectbox, "Manage connector").set_value(seeded.alpha_binance)
    at.run()
    details = widget(at.expander, "History coverage")
    assert details.dataframe[0].value.set_index("Data").loc["Fills", "Markets"] == "4 walked"
    assert "ETH/BTC" in _plain(details.caption[0].value)
    widget(at.selectbox, "Manage connector").set_value(history.alpha_cryptocom)
    at.run()
    fills = widget(at.expander, "History coverage").dataframe[0].value.set_index("Data").loc["Fills"]
    assert fills["Oldest kept by the exchange"] == "2026-06-07" and fills["Markets"] == "—"


@pytest.mark.parametrize("exchange, expected", [
    ("okx", ["Look-back for fills: 90 days", "Fills need a symbol per market: no"]),
    ("kucoin", ["Look-back for fills: unknown: the exchange does not publish it.",
                "Fills need a symbol per market: yes"]),
    ("binance", ["Look-back for fills: whole history, read by trade id", "Fills need a symbol per market: yes"]),
])
def test_add_key_form_shows_the_look_back_before_saving(history: History, exchange: str,
                                                        expected: list[str]) -> None:
    at = open_page("pages/admin/clients.py", history.seeded.users["admin"])
    assert "Look-back" not in texts(at)  # nothing before an exchange is picked
    widget(at.selectbox, "Exchange").set_value(exchange)
    at.run()
    assert not at.exception
    shown = _plain(texts(at))
    for sentence in expected:
        assert sentence in shown


# --------------------------------------------------------------------------- text from data


@pytest.fixture
def hostile_history(hostile: Hostile) -> Hostile:  # noqa: F811 - the imported fixture
    """The hostile connector of tests/test_markup.py with markup in its coverage (markets, errors,
    an account type), its order history (symbol, status, type) and an opening lot."""
    cid = hostile.connector_id
    with session_scope() as session:
        session.add_all([
            _coverage(cid, f"trades:{LINK}/USDT", oldest_available=FIRST_SYNC - 90 * DAY_MS, lookback_source=HOSTILE,
                      fetched_from=FIRST_SYNC - 90 * DAY_MS, fetched_to=FIRST_SYNC, failed_from=FIRST_SYNC,
                      failed_to=FIRST_SYNC, failed_error=HOSTILE),
            _coverage(cid, f"balance:{COLOUR}", failed_error=HOSTILE),
            OpeningBalance(connector_id=cid, asset=LINK, amount=1.0, usd_price=None, timestamp=FIRST_SYNC),
            OrderHistory(connector_id=cid, order_id=HOSTILE, timestamp=ms("2024-03-04"), symbol=f"{REVERSED}/USDT",
                         side="buy", type="<b>h</b>", status=COLOUR, price=1.0, amount=1.0, filled=0.0),
            OrderHistory(connector_id=cid, order_id="h2", timestamp=ms("2024-03-05"), symbol=f"{BOLD}/USDT",
                         side="sell", type="limit", status=REVERSED, price=1.0, amount=1.0, filled=1.0),
        ])
    return hostile


@pytest.mark.parametrize("role", ["admin", "client"])
@pytest.mark.parametrize("path", ["pages/operations/sync.py", "pages/portfolio/balances.py",
                                  "pages/portfolio/pnl.py", "pages/portfolio/orders.py"])
def test_history_text_from_data_is_shown_literally(hostile_history: Hostile, path: str, role: str) -> None:
    at = open_page(path, hostile_history.users[role])
    shown = "\n".join(assert_literal(at))
    name = f"{HOSTILE} · binance / {HOSTILE}"
    if path.endswith("sync.py"):
        assert fmt.literal(f"Markets walked for fills (1): {LINK}/USDT") in shown
        assert fmt.visible(name) in set(coverage_table(at)["Account"])  # a table cell is text, never markup
        assert widget(at.selectbox, PICKER).options[0] == fmt.visible(name)  # its failed window first
        assert "1 connector has failed windows" in shown
    if path.endswith("balances.py"):
        account = COLOUR.capitalize()
        assert fmt.literal(f"{name}: {account} account not readable with this key: {HOSTILE}") in shown
    if path.endswith(("balances.py", "pnl.py")):
        assert fmt.literal(f"{LINK} 1 on {name} booked as an opening balance") in shown
    if path.endswith("orders.py"):
        assert any("\\u202e" in option for option in widget(at.selectbox, "Symbol").options)
        assert any("\\u202e" in option for option in widget(at.selectbox, "Status").options)


def test_connector_details_show_coverage_literally(hostile_history: Hostile) -> None:
    at = open_page("pages/admin/clients.py", hostile_history.users["admin"])
    widget(at.selectbox, "Manage connector").set_value(hostile_history.connector_id)
    at.run()
    shown = assert_literal(at)
    assert fmt.literal(f"Markets walked for fills (1): {LINK}/USDT") in shown
