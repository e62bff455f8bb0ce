"""Trades: fills filtered by connector, symbol, side and dates, paged on the server.

Only one page of rows (and a COUNT) leaves the database per run, so a million fills stay
fast. The CSV is built only when asked for and holds at most ``loaders.CSV_ROW_CAP`` rows.
"""

import math

import pandas as pd
import streamlit as st

from lib.access import Viewer
from lib.ui import format as fmt
from lib.ui import loaders, period, scope
from lib.ui.auth import current_viewer
from lib.ui.shell import current_scope

PAGE_SIZES = (50, 100, 250, 500)
#: The columns in the order a reconciler reads them: whose fill (pinned while the rest scrolls: the table is wider
#: than the page beside the sidebar at 1,400 px), when, what, the money, then the ids that tell apart fills of one
#: order in the same second, and maker / taker. Names and ids are sized to their text (never a fixed narrow
#: width that cuts them); numbers (which sort by value) are sized to their content so that no digit is hidden.
#: Cost (amount x price) is in the CSV.
TRADE_COLUMNS = {
    "Client": scope.link_column("Client", "This client's Overview.", pinned=True),
    "Account": scope.link_column("Account", "This account's Balances.", pinned=True),
    "Time (UTC)": fmt.datetime_column("Time (UTC)", seconds=True),
    "Symbol": st.column_config.TextColumn("Symbol"),
    "Side": st.column_config.TextColumn("Side"),
    **fmt.number_columns("Amount", "Price", "Fee"),
    "USD notional": st.column_config.NumberColumn("USD notional", format="dollar",
                                                  help="Cost in the quote currency at the quote's USD price that day; "
                                                  "— : unpriced"),
    "Trade ID": st.column_config.TextColumn("Trade ID", help="The exchange's id of this fill"),
    "Order ID": st.column_config.TextColumn("Order ID", help="The exchange's id of the order it filled"),
    "M/T": st.column_config.TextColumn("M/T", help="Maker or taker"),
}


def fills_page(viewer: Viewer, filters: dict[str, object], page_number: int,
               page_size: int) -> tuple[pd.DataFrame, int]:
    """Page ``page_number`` (from 1) of the fills the filters match, newest first, and how many match."""
    return loaders.fills(viewer, **filters, page=max(page_number - 1, 0), page_size=page_size)


@st.cache_data(ttl=loaders.TTL, show_spinner=False, max_entries=32)
def draw_fills(viewer_scope: loaders.Scope, filters: dict[str, object], page_number: int, page_size: int,
               one_client: bool, key: tuple[str, str]) -> None:
    """The page of fills, kept per scope, filters, page and database version (``loaders.data_key``):
    a warm visit replays it rather than pricing its fills and writing every digit again."""
    viewer = loaders.viewer_of(viewer_scope)
    rows = fills_page(viewer, filters, page_number, page_size)[0]
    notional = loaders.notional_usd(viewer, rows, filters["client_id"])
    table = pd.DataFrame({
        "Client": scope.client_links(rows),
        "Account": scope.account_links(rows, rows["exchange_id"] + " / " + rows["label"]),
        "Time (UTC)": fmt.ms_to_datetime(rows["timestamp"]), "Symbol": rows["symbol"].map(fmt.visible),
        "Side": rows["side"], "Amount": fmt.amounts(rows["amount"]), "Price": fmt.amounts(rows["price"]),
        "Fee": fmt.amounts(rows["fee_cost"]),
        "USD notional": fmt.floats(notional),
        "Trade ID": fmt.text(rows["trade_id"]), "Order ID": fmt.text(rows["order_id"]),
        "M/T": fmt.text(rows["taker_or_maker"]),
    }, columns=list(TRADE_COLUMNS))
    if one_client:  # its name on every row says nothing
        table = table.drop(columns="Client")
    shown = fmt.table(table, dict.fromkeys(["Amount", "Price", "Fee"], fmt.significant),
                      units={"Fee": rows["fee_currency"]})  # "0.1 USDT"; the cell sorts by the number
    st.dataframe(shown, hide_index=True, width="stretch", placeholder=fmt.MISSING, column_config=TRADE_COLUMNS)


viewer = current_viewer()
chosen = current_scope(viewer)  # the sidebar's client and account (?client=&connector=)
client_id, connector_id = chosen.client_id, chosen.connector_id

scope.title("Trades", chosen)

with loaders.plain_errors("trades"):
    connectors = loaders.connectors(viewer, client_id)
if connectors.empty:
    st.info("No exchange accounts in this scope yet.")
    st.stop()

with loaders.plain_errors("symbols"):
    symbols = loaders.fill_symbols(viewer, client_id, connector_id)
# ?symbol=&start=&end= from links (Asset, Activity, Reconciliation); the account is the sidebar's
linked = loaders.linked_filters(st.query_params.to_dict(), symbols)
first, second = st.columns([2, 1])
symbol = first.selectbox("Symbol", [None, *symbols], index=[None, *symbols].index(linked.symbol),
                         format_func=lambda s: "All symbols" if s is None else fmt.visible(s))
side = second.selectbox("Side", [None, "buy", "sell"], format_func=lambda s: "Both" if s is None else s)
start, end = period.date_range(st.columns(2)[0], "trades", label="Dates (UTC)", dates=linked.dates)
filters = {"client_id": client_id, "connector_id": connector_id, "symbol": symbol, "side": side,
           "start": start, "end": end}

if st.session_state.get("trades_filters") != filters:  # new filters start again at page 1
    st.session_state["trades_filters"] = filters
    st.session_state["trades_page"] = 1
page_size = st.session_state.get("trades_page_size", PAGE_SIZES[1])
page_number = st.session_state.get("trades_page", 1)
with loaders.plain_errors("trades"):
    total = fills_page(viewer, filters, page_number, page_size)[1]
    pages = max(math.ceil(total / page_size), 1)
    if page_number > pages:  # filters shrank the result: go back to the last page
        st.session_state["trades_page"] = page_number = pages

with loaders.plain_errors("trade totals"):
    totals = loaders.fill_totals(viewer, **filters)
cards = st.columns(3)
cards[0].metric("Fills", f"{totals.fills:,}", help="Every fill these filters match, on all pages.")
third = fmt.CARD_CHARS * 4 // 3  # what a third-width card shows uncut
fmt.money_card(cards[1], "Volume (USD)", float(totals.volume_usd), chars=third,
               help="Each fill's cost at its quote currency's USD price that day (USD-like quotes 1:1).")
fmt.money_card(cards[2], "Fees (USD)", float(totals.fees_usd), chars=third,
               help="Each fee at its currency's USD price that day.")
if totals.unpriced:
    st.warning("No USD price for " + ", ".join(map(fmt.literal, totals.unpriced)) + ": left out of the USD totals.",
               icon=":material/help:")
st.caption(f"{total:,} fill(s) match; page {page_number} of {pages:,}, newest first.")
if total == 0:
    st.info("No fills match these filters.")
else:
    with loaders.plain_errors("trades"):
        draw_fills(loaders.scope_of(viewer), filters, page_number, page_size, connectors["client"].nunique() < 2,
                   loaders.data_key())

left, middle, right = st.columns([1, 1, 2])
left.number_input("Page", min_value=1, max_value=pages, step=1, key="trades_page")
middle.selectbox("Rows per page", PAGE_SIZES, index=PAGE_SIZES.index(page_size), key="trades_page_size")
right.download_button(
    "Download CSV", loaders.fills_csv(viewer, **filters), file_name="trades.csv", mime="text/csv",
    icon=":material/download:", disabled=total == 0,
    help=f"The filtered fills, newest first, at most {loaders.CSV_ROW_CAP:,} rows; narrow the dates for more.",
)
if total > loaders.CSV_ROW_CAP:
    st.caption(f"The CSV holds the newest {loaders.CSV_ROW_CAP:,} of the {total:,} matching fills.")
