"""Orders & positions: open orders with age and distance from the last price; positions; the
history of closed and canceled orders, filtered and paged on the server, with a CSV."""

import math

import pandas as pd
import streamlit as st

from lib import activity
from lib.ui import format as fmt
from lib.ui import loaders
from lib.ui.auth import current_viewer
from lib.ui.shell import selected_client_id

#: Table label -> report column, shown as text so a missing value reads "—" (never "None").
ORDER_NUMBERS = {"Price": "price", "Amount": "amount", "Filled": "filled", "Remaining": "remaining", "Last": "last"}
POSITION_NUMBERS = {"Contracts": "contracts", "Entry": "entry_price", "Mark": "mark_price", "Notional": "notional"}
HISTORY_NUMBERS = {"Price": "price", "Average": "average", "Amount": "amount", "Filled": "filled", "Cost": "cost"}
PAGE_SIZES = (50, 100, 250, 500)
USD_VALUE = st.column_config.NumberColumn("USD value", format="dollar",
                                         help="What is still open at the order's price, in USD now; empty: unpriced")

viewer = current_viewer()
client_id = selected_client_id(viewer)

st.title("Orders & positions")

with loaders.plain_errors("orders and positions"):
    orders, positions = loaders.orders_and_positions(viewer, client_id)

st.subheader("Open orders")
if orders.empty:
    st.info("No open orders in this scope.")
else:
    symbols = st.multiselect("Symbol", sorted(orders["symbol"].unique()), format_func=fmt.visible,
                             placeholder="All symbols")
    shown = orders[orders["symbol"].isin(symbols)] if symbols else orders
    st.caption(f"{len(shown)} open order(s). Distance = order price / last price − 1 (— when no last price).")
    st.dataframe(
        pd.DataFrame({
            "Client": shown["client"], "Exchange": shown["exchange_id"], "Account": shown["label"],
            "Symbol": shown["symbol"].map(fmt.visible), "Side": shown["side"], "Type": fmt.text(shown["type"]),
            **{label: fmt.text(shown[column], fmt.quantity) for label, column in ORDER_NUMBERS.items()},
            "USD value": shown["usd"].to_numpy(float),
            "Distance": shown["distance"].map(fmt.percent), "Age": fmt.text(shown["age_seconds"], fmt.age),
        }),
        hide_index=True, width="stretch",
        column_config={**fmt.numbers_right(*ORDER_NUMBERS, "Distance", "Age"), "USD value": USD_VALUE},
    )

st.subheader("Positions")
if positions.empty:
    st.info("No derivatives positions in this scope.")
else:
    reported, unreported = activity.reported_unrealized(positions)
    st.metric(activity.REPORTED_UNREALIZED, fmt.MISSING if reported is None else fmt.money(reported, signed=True),
              help=f"As the exchanges report it, in the contracts' settlement currency; not part of the P&L page's "
              f"figures. {unreported} position(s) without a figure from their exchange are left out.")
    st.dataframe(
        pd.DataFrame({
            "Client": positions["client"], "Exchange": positions["exchange_id"], "Account": positions["label"],
            "Symbol": positions["symbol"].map(fmt.visible), "Side": fmt.text(positions["side"]),
            **{label: fmt.text(positions[column], fmt.quantity) for label, column in POSITION_NUMBERS.items()},
            "Base quantity": positions["base_quantity"].to_numpy(float),
            "USD notional": positions["usd"].to_numpy(float),
            "Unrealized P&L": positions["unrealized_pnl"].map(lambda v: fmt.money(v, signed=True)
                                                              if pd.notna(v) else "not reported"),
            "Leverage": fmt.text(positions["leverage"], lambda v: f"{fmt.quantity(v, 2)}×"),
            "Liquidation": fmt.text(positions["liquidation_price"], fmt.quantity),
        }),
        hide_index=True, width="stretch",
        column_config={**fmt.numbers_right(*POSITION_NUMBERS, "Unrealized P&L", "Leverage", "Liquidation"),
                       "Base quantity": st.column_config.NumberColumn(
                           "Base quantity", format="%.8g", help="Contracts × contract size; empty: size unknown"),
                       "USD notional": st.column_config.NumberColumn(
                           "USD notional", format="dollar", help="Base quantity × mark × the quote's USD price "
                           "now; empty: unpriced")},
    )

st.subheader("Order history")
with loaders.plain_errors("accounts"):
    connectors = loaders.connectors(viewer, client_id)
names = {int(r.id): fmt.visible(f"{r.client} · {r.exchange_id} / {r.label}") for r in connectors.itertuples()}
first, second, third, fourth = st.columns([3, 2, 1, 2])
connector_id = first.selectbox("Account", [None, *names], key="order_history_account",
                               format_func=lambda c: "All accounts" if c is None else names[c])
with loaders.plain_errors("order history"):
    history_symbols, history_statuses = loaders.order_history_choices(viewer, client_id, connector_id)
symbol = second.selectbox("Symbol", [None, *history_symbols], key="order_history_symbol",
                          format_func=lambda s: "All symbols" if s is None else fmt.visible(s))
status = third.selectbox("Status", [None, *history_statuses], key="order_history_status",
                         format_func=lambda s: "All" if s is None else fmt.visible(s))
dates = fourth.date_input("Created (UTC)", value=(), key="order_history_dates",
                          help="Leave empty for all dates; one day picks that day on.")
filters = {"client_id": client_id, "connector_id": connector_id, "symbol": symbol, "status": status,
           "start": dates[0] if len(dates) > 0 else None, "end": dates[1] if len(dates) > 1 else None}
if st.session_state.get("order_history_filters") != filters:  # new filters start again at page 1
    st.session_state["order_history_filters"] = filters
    st.session_state["order_history_page"] = 1
page_size = st.session_state.get("order_history_page_size", PAGE_SIZES[1])
page_number = st.session_state.get("order_history_page", 1)
with loaders.plain_errors("order history"):
    history, total = loaders.order_history(viewer, **filters, page=max(page_number - 1, 0), page_size=page_size)
    pages = max(math.ceil(total / page_size), 1)
    if page_number > pages:  # filters shrank the result: go back to the last page
        st.session_state["order_history_page"] = page_number = pages
        history, total = loaders.order_history(viewer, **filters, page=pages - 1, page_size=page_size)

st.caption(f"{total:,} closed or canceled order(s) match; page {page_number} of {pages:,}, newest first.")
if history.empty:
    st.info("No closed or canceled orders match these filters.")
else:
    st.dataframe(
        pd.DataFrame({
            "Time (UTC)": fmt.ms_to_datetime(history["timestamp"]), "Client": history["client"],
            "Account": history["exchange_id"] + " / " + history["label"],
            "Symbol": history["symbol"].map(fmt.visible), "Side": fmt.text(history["side"]),
            "Type": fmt.text(history["type"], fmt.visible), "Status": fmt.text(history["status"], fmt.visible),
            **{label: fmt.text(history[column], fmt.significant) for label, column in HISTORY_NUMBERS.items()},
            "Fee": [fmt.MISSING if fmt.blank(fee)
                    else f"{fmt.significant(fee, 4)} {'' if fmt.blank(unit) else fmt.visible(unit)}".strip()
                    for fee, unit in zip(history["fee_cost"], history["fee_currency"], strict=True)],
            "Order ID": fmt.text(history["order_id"], fmt.visible),
        }),
        hide_index=True, width="stretch",
        column_config={"Time (UTC)": fmt.datetime_column("Time (UTC)", seconds=True),
                       **fmt.numbers_right(*HISTORY_NUMBERS, "Fee")},
    )
left, middle, right = st.columns([1, 1, 2])
left.number_input("Page", min_value=1, max_value=pages, step=1, key="order_history_page")
middle.selectbox("Rows per page", PAGE_SIZES, index=PAGE_SIZES.index(page_size), key="order_history_page_size")
right.download_button(
    "Download order history (CSV)", loaders.order_history_csv(viewer, **filters), file_name="order_history.csv",
    mime="text/csv", icon=":material/download:", disabled=total == 0,
    help=f"The filtered orders, newest first, at most {loaders.CSV_ROW_CAP:,} rows; narrow the dates for more.",
)
