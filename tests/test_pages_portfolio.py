"""AppTest of the portfolio pages: they render with data, filters change the numbers, a new
install gets the welcome, a client user sees only its client, and no exception is shown."""

from __future__ import annotations

import csv
import html
import io
import json
import re
import tomllib
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal

import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Block

from lib import reports
from lib.db import session_scope
from lib.models import BalanceSnapshot, Connector, Order, OrderHistory, Trade, Transfer, User, utcnow
from lib.settings import PROJECT_ROOT
from lib.ui import charts, scope, shell
from lib.ui import format as fmt
from tests import table_cells
from tests.test_queries import Seeded, add_funding_btc, ms, seed_portfolio

PAGES = ["overview", "balances", "trades", "orders", "pnl"]


@pytest.fixture
def seeded(database_url: str) -> Seeded:
    return seed_portfolio()


def open_page(name: str, user_id: int, client_id: int | None = None) -> AppTest:
    at = AppTest.from_file(str(PROJECT_ROOT / "pages" / "portfolio" / f"{name}.py"), default_timeout=60)
    at.session_state["auth_user_id"] = user_id
    if client_id is not None:
        at.session_state["client"] = client_id
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metric(at: AppTest, label: str) -> str:
    matches = [m.value for m in at.metric if m.label == label]
    assert matches, f"no metric {label!r}; have {[m.label for m in at.metric]}"
    return matches[0]


def widget(items, label: str):  # noqa: ANN001, ANN201 - AppTest element sequences
    matches = [w for w in items if w.label == label]
    assert matches, f"no widget labelled {label!r}; have {[w.label for w in items]}"
    return matches[0]


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("error", "warning", "info", "caption", "markdown", "subheader", "title")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def table_text(at: AppTest) -> str:
    return "\n".join(table_cells.shown(frame).to_csv() for frame in at.dataframe)


def type_days(at: AppTest, start: str, end: str) -> None:
    """Type both days of the page's date range (lib.ui.period.date_range) and run, as Enter would."""
    widget(at.text_input, "From (UTC)").input(start)
    widget(at.text_input, "To (UTC)").input(end)
    at.run()


@pytest.mark.parametrize("name", PAGES)
def test_every_page_renders_with_data(seeded: Seeded, name: str) -> None:
    at = open_page(name, seeded.users["analyst"])
    assert not at.error
    assert at.title[0].value


def test_overview_figures_scope_and_unpriced_notice(seeded: Seeded) -> None:
    everyone = open_page("overview", seeded.users["admin"])
    alpha_only = open_page("overview", seeded.users["admin"], client_id=seeded.alpha)
    assert metric(everyone, "Total value") != metric(alpha_only, "Total value")
    assert metric(alpha_only, "Total value") == "$49,081.78"  # 0.563335 BTC, 3 ETH, 1.93 BNB, 1000 USDT
    assert "XYZ" in texts(everyone) and "Unpriced" in texts(everyone)
    assert "XYZ" not in texts(alpha_only)
    # the changes come from the history (2024): numbers, never "—"; nothing moved and there is no
    # recent candle, so each past value is today's marks on the same quantities
    assert [metric(alpha_only, f"Change {w}") for w in ("24h", "7d", "30d")] == ["$0.00"] * 3
    assert len(everyone.get("plotly_chart")) == 2  # the open tab's equity and the allocation (top holdings: a table)
    assert "rebuilt from the synced history (first event: 2023-12-31 00:00 UTC)" in texts(alpha_only)
    assert "Connector health" in texts(everyone)


def chart_titles(at: AppTest | Block) -> list[str]:
    """The title of each plotly chart on the page (or in one of its blocks, a tab), in page order."""
    return [json.loads(chart.proto.spec)["layout"]["title"]["text"] for chart in at.get("plotly_chart")]


def test_overview_lists_the_connectors_that_need_a_look_in_one_table(seeded: Seeded) -> None:
    """Failing first, then overdue; a fresh connector is only counted; an exchange's message is a cell's text."""
    message = "**Rate limit** <b>exceeded</b> [here](https://evil.example)"
    with session_scope() as session:  # the seeded OKX connector synced just now: fresh
        failing = session.get(Connector, seeded.alpha_binance)
        failing.status, failing.last_error = "error", message
        okx = session.get(Connector, seeded.beta_okx)
        session.add(Connector(client_id=seeded.beta, exchange_id="kraken", label="spare",
                              credentials_ciphertext=okx.credentials_ciphertext))  # never synced
    at = open_page("overview", seeded.users["admin"])
    assert [metric(at, label) for label in ("Fresh", "Overdue", "Failing")] == ["1", "1", "1"]
    listed = next(frame.value for frame in at.dataframe if "Last sync" in frame.value.columns)
    assert list(listed["State"]) == ["Failing", "Never synced"]
    assert listed["Last sync"].iloc[0].startswith(f"last sync failed: {message} (synced ")
    assert listed["Account"].iloc[1].endswith("kraken / spare")
    assert message not in texts(at)  # nowhere as Markdown


def test_overview_draws_the_open_tabs_chart_alone(seeded: Seeded) -> None:
    equity, mix = "Equity (rebuilt from history)", "Allocation over time (rebuilt from history)"
    at = open_page("overview", seeded.users["admin"])
    assert [(tab.label, chart_titles(tab)) for tab in at.tabs] == [("Equity", [equity]), ("Allocation over time", [])]
    at.session_state["overview_value_tab"] = "Allocation over time"  # as a click on that tab
    at.run()
    assert [(tab.label, chart_titles(tab)) for tab in at.tabs] == [("Equity", []), ("Allocation over time", [mix])]
    assert equity not in chart_titles(at) and not at.exception


def test_overview_drawings_are_kept_per_viewer_and_drawn_again_after_a_write(seeded: Seeded) -> None:
    def quantity(at: AppTest, asset: str) -> float:
        numbers = table_cells.numbers(at.dataframe[0])
        return float(numbers.set_index(table_cells.linked(numbers["Asset"])).loc[asset, "Quantity"])

    def sunburst_labels(at: AppTest) -> set[str]:
        spec = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if "Allocation by" in c.proto.spec)
        return set(spec["data"][0]["labels"])

    admin = open_page("overview", seeded.users["admin"])
    before = quantity(admin, "BTC")
    assert "XYZ" in set(table_cells.linked(admin.dataframe[0].value["Asset"])) and "Beta" in sunburst_labels(admin)
    client = open_page("overview", seeded.users["client"])  # the same process's cache, the same sidebar picks
    assert "XYZ" not in set(table_cells.linked(client.dataframe[0].value["Asset"]))  # Beta's asset
    assert "Beta" not in sunburst_labels(client)
    add_funding_btc(seeded, 0.4)  # a new write version, more BTC
    admin.run()
    assert quantity(admin, "BTC") == pytest.approx(before + 0.4)  # the kept table is not shown after the write
    assert not admin.exception and not client.exception


def test_the_balances_csv_is_built_when_clicked_from_the_rows_shown(seeded: Seeded,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[Callable[[], bytes]] = []
    real = fmt.csv_download
    monkeypatch.setattr(fmt, "csv_download", lambda frame: served.append(real(frame)) or served[-1])
    at = open_page("balances", seeded.users["admin"])
    widget(at.multiselect, "Asset").select("BTC")
    at.run()
    assert at.get("download_button")[0].proto.deferred_file_id  # no bytes sent with the page
    lines = served[-1]().decode().splitlines()  # what a click gets
    assert lines[0].startswith("client,") and len(lines) == 2 and ",BTC," in lines[1]


def test_balances_filters_change_the_value(seeded: Seeded) -> None:
    at = open_page("balances", seeded.users["admin"])
    before = metric(at, "Value (filtered)")
    assert "unpriced" in table_text(at)  # XYZ: the word, never $0
    widget(at.multiselect, "Asset").select("BTC")
    at.run()
    assert not at.exception
    assert metric(at, "Value (filtered)") == "$36,616.78" != before
    assert metric(at, "Rows") == "1"
    assert at.get("download_button")
    widget(at.multiselect, "Asset").unselect("BTC")
    at.session_state[scope.ACCOUNT_KEY] = seeded.beta_okx  # the sidebar's account: beta's holds 500 USDT
    at.run()
    assert metric(at, "Value (filtered)") == "$500.00"
    assert set(at.dataframe[0].value["Client"].str.extract(scope._SHOWN.pattern)[0]) == {"Beta"}
    assert at.title[0].value == "Balances · Beta › okx / main"  # the account brings its client along


def test_balances_table_is_kept_per_viewer_and_drawn_again_after_a_write(seeded: Seeded) -> None:
    def total(at: AppTest, client: str, asset: str) -> float:
        table = at.dataframe[0].value
        rows = table[(table["Client"].str.extract(scope._SHOWN.pattern)[0] == client)
                     & (table["Asset"].str.extract(scope._SHOWN.pattern)[0] == asset)]
        return float(rows["Total"].iloc[0])

    admin = open_page("balances", seeded.users["admin"])
    assert total(admin, "Beta", "XYZ") == 30.0
    client = open_page("balances", seeded.users["client"])  # the same process's cache
    assert set(client.dataframe[0].value["Client"].str.extract(scope._SHOWN.pattern)[0]) == {"Alpha"}
    taken_at = utcnow()
    with session_scope() as session:  # a newer snapshot: a new write version, a new balance
        session.add_all(BalanceSnapshot(connector_id=seeded.beta_okx, taken_at=taken_at, asset=asset, free=amount,
                                        used=0.0, total=amount) for asset, amount in (("XYZ", 45.0), ("USDT", 500.0)))
    admin.run()
    assert total(admin, "Beta", "XYZ") == 45.0  # the kept table is not shown after the write
    assert not admin.exception and not client.exception


def test_trades_filters_and_paging(seeded: Seeded) -> None:
    at = open_page("trades", seeded.users["admin"])
    assert "10 fill(s) match" in texts(at)
    widget(at.selectbox, "Side").select("sell")
    at.run()
    assert "3 fill(s) match" in texts(at)
    widget(at.selectbox, "Symbol").select("BTC/USDT")
    at.run()
    assert "1 fill(s) match" in texts(at)
    fill = at.dataframe[0].value
    assert list(fill["Trade ID"]) == ["T5"] and list(fill["Order ID"]) == ["o-T5"]  # tells apart same-second fills
    widget(at.selectbox, "Side").select(None)
    widget(at.selectbox, "Symbol").select(None)
    type_days(at, "2024-02-01", "2024-02-29")
    assert "5 fill(s) match" in texts(at)
    assert widget(at.selectbox, "Dates (UTC)").value == "Custom dates"  # typing a day leaves the preset
    widget(at.selectbox, "Rows per page").select(50)
    at.run()
    assert not at.exception


def test_trades_table_is_kept_per_viewer_and_drawn_again_after_a_write(seeded: Seeded) -> None:
    admin = open_page("trades", seeded.users["admin"])
    assert {"T7", "B2"} <= set(admin.dataframe[0].value["Trade ID"])
    client = open_page("trades", seeded.users["client"])  # the same process's cache
    assert set(client.dataframe[0].value["Trade ID"]) == {f"T{n}" for n in range(1, 8)}  # Alpha's alone
    with session_scope() as session:  # a newer fill: a new write version, a new first row
        session.add(Trade(connector_id=seeded.beta_okx, trade_id="B-later", timestamp=ms("2024-04-01"),
                          symbol="XYZ/USDT", base="XYZ", quote="USDT", side="buy", amount=5.0, price=2.0, cost=10.0))
    admin.run()
    assert admin.dataframe[0].value["Trade ID"].iloc[0] == "B-later"  # the kept table is not shown after the write
    assert not admin.exception and not client.exception


def _pnl_per_asset(at: object) -> pd.DataFrame:
    table = at.dataframe[-1].value  # type: ignore[attr-defined]
    return table.set_index(table["Asset"].str.extract(scope._SHOWN.pattern)[0])  # noqa: SLF001 - link text


def test_pnl_drawings_are_kept_per_viewer_and_picks_and_drawn_again_after_a_write(seeded: Seeded) -> None:
    admin = open_page("pnl", seeded.users["admin"])
    assert "XYZ" in _pnl_per_asset(admin).index  # Beta's asset, with every client in scope
    charts_before = len(admin.get("plotly_chart"))
    client = open_page("pnl", seeded.users["client"])  # the same process's cache
    assert "XYZ" not in _pnl_per_asset(client).index  # Alpha's user: a kept table of another scope is never replayed
    xyz = _pnl_per_asset(admin).loc["XYZ", "Quantity"]
    with session_scope() as session:  # a later fill: a new write version
        session.add(Trade(connector_id=seeded.beta_okx, trade_id="B-later", timestamp=ms("2024-04-01"),
                          symbol="XYZ/USDT", base="XYZ", quote="USDT", side="buy", amount=5.0, price=2.0, cost=10.0))
    admin.run()
    assert _pnl_per_asset(admin).loc["XYZ", "Quantity"] == xyz + 5.0  # not the kept table from before the write
    assert len(admin.get("plotly_chart")) == charts_before
    widget(admin.radio, "Method").set_value("average").run()  # another pick: its own drawing
    assert _pnl_per_asset(admin).loc["XYZ", "Quantity"] == xyz + 5.0
    assert not admin.exception and not client.exception


def test_orders_and_positions_keep_whose_pinned_and_the_key_figures_in_view(seeded: Seeded) -> None:
    """Each table pins its account and market while the rest scrolls; open orders' prices say their
    quote currency (an ETH/BTC price among USDT ones), each column as wide as its "number unit" text;
    positions show the P&L, leverage and liquidation before the notionals; the history's cost (with its
    currency) comes before the limit price, type and id."""
    with session_scope() as session:
        okx = session.query(Connector).filter_by(exchange_id="okx").one().id
        session.add_all([
            Order(connector_id=okx, order_id="open-3", timestamp=ms("2024-03-01"), symbol="ETH/BTC", side="buy",
                  type="limit", price=0.05015, amount=4.545, filled=0.0, remaining=4.545, status="open"),
            OrderHistory(connector_id=okx, order_id="closed-1", timestamp=ms("2024-03-01"), symbol="BTC/USDT",
                         side="buy", type="limit", status="closed", price=60000.0, average=59999.5, amount=0.19491,
                         filled=0.19491, cost=11694.702542),
            OrderHistory(connector_id=okx, order_id="closed-2", timestamp=ms("2024-03-02"), symbol="ETH/BTC",
                         side="buy", type="limit", status="closed", price=0.05, average=0.05, amount=1.0,
                         filled=1.0, cost=0.05),
        ])
    at = open_page("orders", seeded.users["admin"])
    orders, positions = at.dataframe[0], at.dataframe[1]
    cells = table_cells.shown(orders).set_index("Symbol")
    assert cells.loc["ETH/BTC", "Price"] == "0.05015 BTC" and cells.loc["BTC/USDT", "Price"] == "60,000 USDT"
    config = table_cells.config(orders)
    for column in ("Price", "Last"):
        assert config[column]["width"] >= 7 * max(map(len, cells[column])), column
        assert "quote currency" in config[column]["help"]
    shown = list(orders.value.columns)
    assert [column for column in shown if config.get(column, {}).get("pinned")] == [
        "Client", "Exchange", "Account", "Symbol"]
    assert shown.index("Price") < shown.index("Amount") < shown.index("Remaining") < shown.index("USD value")

    shown, config = list(positions.value.columns), table_cells.config(positions)
    assert [column for column in shown if config.get(column, {}).get("pinned")] == shown[:4]
    assert shown[4:11] == ["Side", "Contracts", "Entry", "Mark", "Unrealized P&L", "Leverage", "Liquidation"]
    assert set(shown[11:]) == {"USD notional", "Notional", "Base quantity"}

    history = next(frame for frame in at.dataframe if "Order ID" in frame.value.columns)
    shown, config = list(history.value.columns), table_cells.config(history)
    assert shown[:3] == ["Client", "Account", "Time (UTC)"]
    assert [column for column in shown if config.get(column, {}).get("pinned")] == ["Client", "Account"]
    assert shown.index("Cost") < shown.index("Price") < shown.index("Order ID")
    costs = table_cells.shown(history)["Cost"]
    assert costs.str.endswith(" USDT").any()  # its currency in the cell
    assert config["Cost"]["width"] >= 7 * max(map(len, costs)) and "quote currency" in config["Cost"]["help"]


def test_orders_and_positions(seeded: Seeded) -> None:
    at = open_page("orders", seeded.users["admin"])
    assert "2 open order(s)" in texts(at)
    orders = table_cells.shown(at.dataframe[0]).set_index("Symbol")
    assert orders.loc["BTC/USDT", "Distance"] == "-7.69%"
    assert orders.loc["XYZ/USDT", "Distance"] == "—"  # no last price: a dash, not 0
    assert orders.loc["XYZ/USDT", "Last"] == "—" and orders.loc["BTC/USDT", "Last"] == "65,000 USDT"
    positions = table_cells.shown(at.dataframe[1]).set_index("Symbol")
    assert positions.loc["ETH/USDT:USDT", "Mark"] == "—"  # not reported by the exchange
    assert metric(at, "Unrealized P&L reported by the exchange (positions)") == "+$4.00"
    widget(at.multiselect, "Symbol").select("BTC/USDT")
    at.run()
    assert "1 open order(s)" in texts(at)


def test_pnl_method_and_scope_change_the_figures(seeded: Seeded) -> None:
    at = open_page("pnl", seeded.users["admin"], client_id=seeded.alpha)
    assert metric(at, "Realized") == "+$16,102.03"  # PNL.md, FIFO
    assert metric(at, "Unrealized change") == "+$12,547.94"  # all history: from nothing
    assert len(at.get("plotly_chart")) >= 2
    type_days(at, "2024-02-10", "2024-02-20")
    assert metric(at, "Realized") == "+$6,739.59"  # T5 only
    widget(at.radio, "Method").set_value("average")
    at.run()
    window = reports.pnl_report(None, seeded.viewer("admin"), seeded.alpha, method="average",
                                start=datetime(2024, 2, 10, tzinfo=UTC), end=datetime(2024, 2, 21, tzinfo=UTC))
    assert metric(at, "Realized") == f"+${window.result.totals.realized:,.2f}" != "+$6,739.59"
    at.radio(key="pnl_pool").set_value("connector")
    at.run()
    assert not at.exception
    assert at.get("download_button")


def test_pnl_flags_unpriced_assets(seeded: Seeded) -> None:
    at = open_page("pnl", seeded.users["admin"], client_id=seeded.beta)
    assert "XYZ" in texts(at) and "Unpriced" in texts(at)
    per_asset = next(t.value for t in at.dataframe if "Market value" in t.value.columns)
    per_asset = per_asset.set_index(per_asset["Asset"].str.extract(scope._SHOWN.pattern)[0])  # names link to Asset
    assert pd.isna(per_asset.loc["XYZ", "Market value"]) and per_asset.loc["XYZ", "Quantity"] == 30.0


@pytest.mark.parametrize("name", PAGES)
def test_client_user_sees_only_its_client(seeded: Seeded, name: str) -> None:
    at = open_page(name, seeded.users["client"])
    shown = texts(at) + table_text(at)
    assert "Beta" not in shown and "XYZ" not in shown and "okx" not in shown
    # asking for Beta through the sidebar key falls back to the viewer's own scope
    sneaky = open_page(name, seeded.users["client"], client_id=seeded.beta)
    assert "Beta" not in texts(sneaky) + table_text(sneaky)


def test_new_install_shows_the_welcome(database_url: str) -> None:
    with session_scope() as session:
        admin = User(username="first-admin", role="admin", password_hash=None)
        analyst = User(username="first-analyst", role="analyst", password_hash=None)
        session.add_all([admin, analyst])
        session.flush()
        ids = admin.id, analyst.id
    bare = open_page("overview", ids[0])  # the page alone: the welcome, with the link as text
    assert "Welcome" in texts(bare) and "Add your first key" in texts(bare)
    assert [button.label for button in bare.button] == ["Load demo data"]
    staff = open_page("overview", ids[1])
    assert "No exchange accounts are visible to you yet" in texts(staff)
    for name in PAGES[1:]:
        empty = open_page(name, ids[0])
        assert empty.info and not empty.error


def test_welcome_links_to_the_clients_page_inside_the_app(database_url: str) -> None:
    missing = [path for _section, path, *_ in shell.PAGES if not (PROJECT_ROOT / path).is_file()]
    if missing:
        pytest.skip(f"app.py's navigation needs pages not written yet: {missing}")
    with session_scope() as session:
        admin = User(username="first-admin", role="admin", password_hash=None)
        session.add(admin)
        session.flush()
        admin_id = admin.id
    app = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60)  # the link needs st.navigation
    app.session_state["auth_user_id"] = admin_id
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert "Welcome" in texts(app)
    assert [link.label for link in app.get("page_link")] == ["Add your first key"]


@pytest.mark.parametrize("name", PAGES)
def test_tables_never_show_none_nan_or_raw_timestamps(seeded: Seeded, name: str) -> None:
    at = open_page(name, seeded.users["admin"])
    if name == "pnl":
        assert at.expander, "the window's deposits are listed (all history by default)"
    assert at.dataframe
    for frame in at.dataframe:
        cells = table_cells.shown(frame)
        assert not cells.isin(["None", "nan", "NaN", "NaT", "<NA>", ""]).any().any(), cells
        for column, values in frame.value.items():  # moments are datetimes the column config formats
            if str(values.dtype).startswith("datetime"):
                config = json.loads(frame.proto.columns)[column]
                assert config["type_config"]["format"] in (fmt.DATETIME_FORMAT, fmt.DATETIME_SECONDS_FORMAT)
    assert "+00:00" not in texts(at)


def test_pnl_per_asset_table_keeps_its_asset_in_view(seeded: Seeded) -> None:
    """Eight columns of exact dollars are wider than the page: the asset stays while the rest scrolls."""
    at = open_page("pnl", seeded.users["admin"])
    per_asset = next(frame for frame in at.dataframe if "Unmatched" in frame.value.columns)
    assert json.loads(per_asset.proto.columns)["Asset"]["pinned"] is True


#: what a 1,400 px page shows of a table beside the sidebar (px)
PAGE_TABLE_PX = 940


def test_balances_show_each_total_beside_its_value_as_of_and_price(seeded: Seeded) -> None:
    """Whose holding (pinned while the rest scrolls), the value (the table's order) next to the total, when
    it was taken, the price and where it comes from: all before the account type and the free / used split,
    so in view beside the sidebar at 1,400 px, where the last columns scroll."""
    at = open_page("balances", seeded.users["admin"])
    element = next(frame for frame in at.dataframe if "USD value" in frame.value.columns)
    shown, config = list(element.value.columns), table_cells.config(element)
    assert shown[:10] == ["Client", "Exchange", "Account", "Asset", "Total", "USD value", "As of", "Price (USD)",
                          "Priced from", "Account type"]
    assert set(shown[10:]) == {"Free", "Used"}
    assert [column for column in shown if config.get(column, {}).get("pinned")] == shown[:4]
    # sized to its longest source: the grid would leave out one twice the first rows' average (cash's "—")
    sources = table_cells.shown(element)["Priced from"]
    assert config["Priced from"]["width"] >= 7 * max(map(len, sources))


def test_pnl_names_whose_deposit_each_is_and_what_its_columns_are_at(seeded: Seeded) -> None:
    at = open_page("pnl", seeded.users["admin"])
    moves = next(frame.value for frame in at.dataframe if "USD value" in frame.value.columns)
    assert sorted(zip(moves["Account"], moves["Type"], strict=True)) == [
        ("Alpha · binance / main", "Deposit"), ("Beta · okx / main", "Deposit")]
    per_asset = next(frame for frame in at.dataframe if "Unmatched" in frame.value.columns)
    assert "At the window's end" in json.loads(per_asset.proto.columns)["Unrealized"]["help"]  # not the card's change
    at.session_state[scope.ACCOUNT_KEY] = seeded.beta_okx
    at.run()
    moves = next(frame.value for frame in at.dataframe if "USD value" in frame.value.columns)
    assert "Account" not in moves.columns and list(moves["Type"]) == ["Deposit"]  # the title names the account


def test_trades_show_every_digit_and_the_ids(seeded: Seeded) -> None:
    """Whose fill pinned while the rest scrolls; names and ids sized to their text, never cut to a fixed
    narrow width ("Sharp Foundat"); the ids before maker / taker."""
    everyone = open_page("trades", seeded.users["admin"])
    shown = list(everyone.dataframe[0].value.columns)
    config = json.loads(everyone.dataframe[0].proto.columns)
    assert shown == ["Client", "Account", "Time (UTC)", "Symbol", "Side", "Amount", "Price", "Fee", "USD notional",
                     "Trade ID", "Order ID", "M/T"]
    assert [column for column in shown if config[column].get("pinned")] == ["Client", "Account"]
    assert not any(config[column].get("width") for column in shown)  # each sized to its text or digits
    alpha = open_page("trades", seeded.users["admin"], client_id=seeded.alpha)
    assert "Client" not in alpha.dataframe[0].value.columns  # one client in scope: no column repeating it
    assert table_cells.config(alpha.dataframe[0])["Account"]["pinned"] is True


def test_equity_chart_draws_the_rebuilt_line_snapshots_and_disagreements() -> None:
    day = pd.Timestamp("2026-11-20", tz="UTC")
    curve = pd.DataFrame({"time": [day, day + pd.Timedelta(days=1)], "usd": [5_412_776.0, 5_412_780.0]})
    transfers = pd.DataFrame({
        "time": [day - pd.Timedelta(days=80), day + pd.Timedelta(hours=12)], "type": ["deposit", "withdrawal"],
        "currency": ["BTC", "USDT"], "amount": [1.0, 50.0], "usd": [60_000.0, 50.0],
        "account": ["Alpha · binance / main", "Alpha · okx / main"],
    })
    snapshots = pd.DataFrame({"time": [day + pd.Timedelta(days=1)], "usd": [5_412_000.0]})
    disagreements = snapshots.assign(assets="<b>BTC</b>")
    figure = charts.equity(curve, transfers, snapshots, disagreements)
    markers = [trace for trace in figure.data if trace.mode == "markers"]
    assert [trace.name for trace in markers] == ["Balance snapshots", "Snapshot ≠ history", "Withdrawals"]
    assert "<b>" not in markers[1].text[0]  # an asset code is text, never markup
    assert list(markers[2].y) == [5_412_776.0]  # on the line; the deposit before it is not drawn
    low, high = figure.layout.yaxis.range
    assert high - low >= 0.05 * 5_412_780  # a nearly flat line is not zoomed to a few dollars
    assert figure.layout.yaxis.tickformat == "$~s"  # "$5.4M", never "$5.4127765M"


def test_equity_chart_transfers_name_the_exact_amount_its_usd_value_and_the_account() -> None:
    """An analyst reconciling money reads a transfer's amount with every digit, its dollars and
    whose account it moved; an account's label is text, never markup."""
    day = pd.Timestamp("2026-11-20", tz="UTC")
    curve = pd.DataFrame({"time": [day, day + pd.Timedelta(days=1)], "usd": [100_000.0, 200_000.0]})
    transfers = pd.DataFrame({
        "time": [day + pd.Timedelta(hours=h) for h in (1, 2, 3)], "type": ["deposit", "deposit", "withdrawal"],
        "currency": ["BTC", "<i>X</i>", "USDT"], "amount": [1.5, 123_456_789.12345679, 0.00000001],
        "usd": [97_500.0, float("nan"), 1e-8], "connector_id": [1, 2, 3],
        "account": ["Client 00 · binance / acct-0", "Beta · okx / <b>x</b>", None],
    })
    figure = charts.equity(curve, transfers)
    deposits, withdrawals = (trace for trace in figure.data if trace.mode == "markers")
    assert html.unescape(deposits.text[0]) == "Deposit 1.5 BTC ($97,500.00) · Client 00 · binance / acct-0"
    hostile = deposits.text[1]
    assert "<b>" not in hostile and "<i>" not in hostile  # escaped: plotly shows the characters
    assert html.unescape(hostile) == f"Deposit 123,456,789.12345679 <i>X</i> ({fmt.UNPRICED}) · Beta · okx / <b>x</b>"
    assert html.unescape(withdrawals.text[0]) == f"Withdrawal 0.00000001 USDT ($0.00) · {fmt.MISSING}"


def test_pnl_window_presets_identity_and_csv(seeded: Seeded) -> None:
    at = open_page("pnl", seeded.users["admin"], client_id=seeded.alpha)
    assert len(at.get("plotly_chart")) == 3  # cumulative, daily, and the equity curve from the 2023 deposit
    assert metric(at, "Opening value") == "$0.00" and metric(at, "Deposits") == "$70,000.00"
    assert re.search(r"\(difference [+−]?\\\$0\.00\)", texts(at))
    for preset in reports.WINDOW_PRESETS:
        widget(at.selectbox, "Window (UTC)").set_value(preset)
        at.run()
        assert not at.exception and re.search(r"\(difference [+−]?\\\$0\.00\)", texts(at)), preset
    # last 30 days: nothing traded since 2024, so no realized P&L, but the value is there at both ends
    assert metric(at, "Realized") == "$0.00" and metric(at, "Opening value") != "$0.00"
    type_days(at, "2024-02-10", "2024-02-20")
    window = reports.pnl_report(None, seeded.viewer("admin"), seeded.alpha, start=datetime(2024, 2, 10, tzinfo=UTC),
                                end=datetime(2024, 2, 21, tzinfo=UTC))
    net = window.period.realized + window.period.unrealized_change
    assert metric(at, "Net") == f"{'+' if net >= 0 else '−'}${abs(net):,.2f}"  # not the unrealized from before
    assert window.period.unrealized_start != 0
    assert "1)" not in "".join(e.label for e in at.expander)  # the 2023 deposit is outside this window
    assert at.get("download_button")
    stated = reports.stated_pnl(window.result.per_asset, "Alpha", "FIFO", "scope", date(2024, 2, 10),
                                date(2024, 2, 20))
    rows = fmt.csv_bytes(stated).decode().splitlines()
    assert rows[0].endswith("scope,method,pool,window_start,window_end")
    assert all(row.endswith("Alpha,FIFO,scope,2024-02-10,2024-02-20") for row in rows[1:]) and len(rows) > 1


def test_pnl_warning_names_unpriced_deposits(seeded: Seeded) -> None:
    from lib.models import Transfer
    from tests.test_queries import ms

    with session_scope() as session:
        session.add(Transfer(connector_id=seeded.beta_okx, transfer_id="x1", type="deposit",
                             timestamp=ms("2024-01-15"), currency="XYZ", amount=5.0, status="ok"))
    at = open_page("pnl", seeded.users["admin"], client_id=seeded.beta)
    assert "1 deposit(s) had no USD price at the time (XYZ)" in texts(at)


def test_pnl_pooled_per_client_adds_up_each_clients_own(seeded: Seeded) -> None:
    every = open_page("pnl", seeded.users["admin"])
    every.radio(key="pnl_pool").set_value("client").run()
    assert not every.exception, [e.value for e in every.exception]
    assert "pooled per client" in texts(every)
    alone = [open_page("pnl", seeded.users["admin"], client_id=c) for c in (seeded.alpha, seeded.beta)]

    def realized(at: AppTest) -> float:
        return float(re.sub(r"[^0-9.\-]", "", metric(at, "Realized")))

    assert realized(every) == pytest.approx(sum(map(realized, alone)), abs=0.01)


NUMBER_COLUMNS = {
    "balances": ["Free", "Used", "Total", "Price (USD)", "USD value"],
    "overview": ["Quantity", "USD value", "Share"],
    "trades": ["Amount", "Price", "Fee", "USD notional"],
    "orders": ["Price", "Amount", "Filled", "Remaining", "Last", "USD value", "Distance", "Age"],
}


@pytest.mark.parametrize("name", NUMBER_COLUMNS)
def test_number_columns_hold_numbers_so_they_sort_by_value(seeded: Seeded, name: str) -> None:
    at = open_page(name, seeded.users["admin"])
    element = at.dataframe[0]
    schema = pa.ipc.open_stream(element.proto.arrow_data.data).schema
    config = table_cells.config(element)
    for column in NUMBER_COLUMNS[name]:
        kind = schema.field(column).type
        assert pa.types.is_decimal(kind) or pa.types.is_floating(kind) or pa.types.is_integer(kind), (column, kind)
        assert config[column]["type_config"]["type"] == "number", column  # the grid sorts it by value
    assert not table_cells.shown(element).isin(["None", "nan"]).any().any()


def test_the_server_skips_the_full_collection_after_every_run() -> None:
    """A forced gc.collect(2) after each run cost 250-1,000 ms over a 1M-fill book's caches before
    the browser saw the run end: the deployment's config turns it off."""
    config = tomllib.loads((PROJECT_ROOT / ".streamlit" / "config.toml").read_text())
    assert config["runner"]["postScriptGC"] is False


def test_the_browser_keeps_large_elements_across_a_tour_of_every_page() -> None:
    """A large table or chart is sent again once the browser has dropped it: that happens after
    ``global.maxCachedMessageAge`` runs elsewhere, so it must outlast a visit to every other page."""
    config = tomllib.loads((PROJECT_ROOT / ".streamlit" / "config.toml").read_text())
    assert config["global"]["maxCachedMessageAge"] > len(shell.PAGES)


def _dollars(text: str) -> Decimal:
    """A figure as the page writes it in Markdown ("\\$48,081.78") as a number."""
    return Decimal(text.replace("\\", "").replace("$", "").replace(",", ""))


def test_pnl_per_asset_table_foots_visibly_to_the_closing_value(seeded: Seeded) -> None:
    """USD-like cash has no lot, so no row: the caption under the table adds it to the rows' market
    value and reaches the Closing value card, to the cent; an unpriced holding is named, in neither."""
    at = open_page("pnl", seeded.users["admin"])
    line = next(c.value for c in at.caption if "foots to the closing value" in c.value)
    found = re.search(r"priced row\(s\) (\S+) \+ cash in USD-like currencies \([^)]*USDT[^)]*\) (\S+) = "
                      r"closing value (\S+)\.", line)
    assert found, line
    rows, cash, closing = map(_dollars, found.groups())
    assert rows + cash == closing and cash > 0
    assert _dollars(metric(at, "Closing value")) == closing
    shown = _pnl_per_asset(at)["Market value"].dropna()  # the table's rows, each to the cent as "dollar" shows it
    assert rows == sum(Decimal(f"{value:.2f}") for value in shown) == Decimal("48081.78")
    assert "Unpriced, so in neither figure: XYZ" in line
    report = reports.pnl_report(None, seeded.viewer("admin"), seeded.alpha)
    footing = reports.pnl_footing(reports.window_totals(report), report.result.per_asset)
    # Alpha: 70,000 USDT deposited, 19,431.80 net spent on fills; BNB, BTC, ETH priced
    assert (footing.rows, footing.cash, footing.rounding, footing.unpriced) == (
        Decimal("48081.78"), Decimal("50568.20"), 0, [])


def test_pnl_footing_names_what_the_rows_rounding_to_the_cent_leaves() -> None:
    per_asset = pd.DataFrame({"asset": ["A", "B", "C"], "quantity": [1.0, 1.0, 5.0],
                              "market_value": [0.004, 0.004, float("nan")], "priced": [True, True, False]})
    footing = reports.pnl_footing({"closing_value": 1.008, "market_value": 0.008}, per_asset)
    assert (footing.rows, footing.cash, footing.closing, footing.rounding) == (
        Decimal("0.00"), Decimal("1.00"), Decimal("1.01"), Decimal("0.01"))
    assert footing.rows + footing.cash + footing.rounding == footing.closing and footing.unpriced == ["C"]


def test_pnl_csv_carries_the_figures_as_the_table_shows_them(seeded: Seeded,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """No float noise ("416.264859200001"): USD to the cent, quantities to the satoshi, as the table."""
    assert reports.cents(416.264859200001) == Decimal("416.26")
    assert reports.units(0.5633350000000004) == Decimal("0.56333500")
    served: list[Callable[[], bytes]] = []
    real = fmt.csv_download
    monkeypatch.setattr(fmt, "csv_download", lambda frame: served.append(real(frame)) or served[-1])
    at = open_page("pnl", seeded.users["admin"])
    rows = list(csv.DictReader(io.StringIO(served[-1]().decode())))
    engine = reports.pnl_report(None, seeded.viewer("admin")).result.per_asset.set_index("asset")
    assert {row["asset"] for row in rows} == set(engine.index) and not at.exception
    for row in rows:
        for column in reports.PNL_USD_COLUMNS:
            if row[column] == "":  # unpriced: no market value, no unrealized
                assert column in ("market_value", "unrealized") and row["priced"] == "False"
                continue
            assert re.fullmatch(r"-?\d+\.\d\d", row[column]), (row["asset"], column, row[column])
            assert Decimal(row[column]) == Decimal(f"{engine.loc[row['asset'], column]:.2f}")
        for column in reports.PNL_UNIT_COLUMNS:
            assert re.fullmatch(r"-?\d+\.\d{8}", row[column]), (row["asset"], column, row[column])
            assert Decimal(row[column]) == Decimal(f"{engine.loc[row['asset'], column]:.8f}")
    by_asset = {row["asset"]: row for row in rows}
    assert by_asset["BTC"]["quantity"] == "0.56333500"  # the engine's float: 0.5633350000000004
    assert by_asset["BNB"]["realized"] == "2.98" and by_asset["XYZ"]["cost_basis"] == "60.06"


def test_pnl_deposits_list_groups_every_digit_of_each_amount(seeded: Seeded) -> None:
    at = open_page("pnl", seeded.users["admin"])
    moves = next(frame for frame in at.dataframe if "USD value" in frame.value.columns)
    shown = table_cells.shown(moves)
    assert sorted(shown["Amount"]) == ["600.00", "70,000.00"]  # USDT: its cents, thousands grouped
    assert table_cells.config(moves)["Amount"]["type_config"]["type"] == "number"  # still sorts by value


@pytest.mark.parametrize(("whose", "asset", "amount", "words"), [
    ("alpha", "BTC", 0.1, "+ unrealized gain"),  # priced above its cost basis when it left
    ("beta", "XYZ", 10.0, "− unrealized loss"),  # no price: it leaves at 0, its cost basis is lost
])
def test_pnl_identity_names_what_withdrawals_carried_out_with_a_sign_that_reads(
        seeded: Seeded, whose: str, asset: str, amount: float, words: str) -> None:
    client, connector = (seeded.alpha, seeded.alpha_binance) if whose == "alpha" else (seeded.beta, seeded.beta_okx)
    with session_scope() as session:  # units leave after the buys: their unrealized P&L goes with them
        session.add(Transfer(connector_id=connector, transfer_id="w1", type="withdrawal", timestamp=ms("2024-03-01"),
                             currency=asset, amount=amount, status="ok"))
    at = open_page("pnl", seeded.users["admin"], client_id=client)
    carried = reports.window_totals(reports.pnl_report(None, seeded.viewer("admin"), client))["withdrawn_unrealized"]
    assert abs(carried) >= 0.005 and (carried > 0) == words.startswith("+")
    line = next(m.value for m in at.markdown if m.value.startswith("Closing − opening"))
    assert f"{words} carried out by withdrawals \\${abs(carried):,.2f} " in line, line
    assert not re.search(r"carried out by withdrawals [+\-−]", line)  # never a "gain" of -$40,940.64
