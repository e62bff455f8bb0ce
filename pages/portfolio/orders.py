"""Orders & positions: open orders with age and distance from the last price; positions; the
history of closed and canceled orders, filtered and paged on the server, with a CSV."""

import math
from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

from lib import activity, prices
from lib.ui import format as fmt
from lib.ui import loaders, period, scope
from lib.ui import positions as positions_ui
from lib.ui.auth import current_viewer
from lib.ui.shell import current_scope

#: Table label -> report column: exact amounts, every digit shown (fmt.quantity), sorted by value. The tables
#: are wider than the page beside the sidebar at 1,400 px: whose order or position (the account and market)
#: stays pinned while the rest scrolls, and the columns come in the order a reconciler reads them.
ORDER_NUMBERS = {"Price": "price", "Amount": "amount", "Filled": "filled", "Remaining": "remaining", "Last": "last"}
#: open orders' prices (the order's and the market's last) are in the market's quote currency, said in each cell
#: ("0.05015 BTC" among USDT prices), as the history's Cost says its currency
QUOTED_HELP = {"Price": "The order's price, in the market's quote currency (after the number)",
               "Last": "The market's last price, in its quote currency; — : none"}
QUOTED = tuple(QUOTED_HELP)
OPEN_ORDER_COLUMNS = ("Client", "Exchange", "Account", "Symbol", "Side", "Type", "Price", "Amount", "Filled",
                      "Remaining", "USD value", "Last", "Distance", "Age")
POSITION_NUMBERS = {"Contracts": "contracts", "Entry": "entry_price", "Mark": "mark_price", "Notional": "notional"}
POSITION_COLUMNS = ("Client", "Exchange", "Account", "Symbol", "Side", "Contracts", "Entry", "Mark", "Unrealized P&L",
                    "Leverage", "Liquidation", "USD notional", "Notional", "Base quantity")
HISTORY_NUMBERS = {"Price": "price", "Average": "average", "Amount": "amount", "Filled": "filled", "Cost": "cost"}
HISTORY_COLUMNS = ("Client", "Account", "Time (UTC)", "Symbol", "Side", "Status", "Amount", "Filled", "Average", "Cost",
                   "Fee", "Price", "Type", "Order ID")
PAGE_SIZES = (50, 100, 250, 500)
USD_VALUE = st.column_config.NumberColumn("USD value", format="dollar",
                                         help="What is still open at the order's price, in USD now; — : unpriced")

viewer = current_viewer()
chosen = current_scope(viewer)  # the sidebar's client and account (?client=&connector=)
client_id, connector_id = chosen.client_id, chosen.connector_id

scope.title("Orders & positions", chosen)

with loaders.plain_errors("orders and positions"):
    orders, positions = loaders.orders_and_positions(viewer, client_id)
if connector_id is not None:
    orders = orders[orders["connector_id"] == connector_id]
    positions = positions[positions["connector_id"] == connector_id]
LINKS = {"Client": scope.link_column("Client", "This client's Overview.", pinned=True),
         "Account": scope.link_column("Account", "This account's Balances.", pinned=True)}
#: the open orders' and positions' identity, pinned beside LINKS
MARKET = {"Exchange": st.column_config.TextColumn("Exchange", pinned=True),
          "Symbol": st.column_config.TextColumn("Symbol", pinned=True)}
FEE_HELP = ("The order's fee as its exchange reports it; when it reports none (Binance), the fees of the order's "
            "fills synced here (Trades), summed per currency and marked \"from N fill(s)\"; fills that paid in "
            "more than one currency are listed, not added. — : neither the exchange's order nor a synced fill "
            "tells the fee.")
COST_HELP = "Filled amount × average price, in the quote currency (a coin-settled contract's: its settlement currency)"


def fitted_with_units(frame: pd.DataFrame, formatter: Callable[[Any], str], units: dict[str, pd.Series],
                      helps: dict[str, str]) -> dict[str, object]:
    """Number columns whose cells say a unit after the number (``fmt.table``'s ``units``), each as wide
    as its longest "number unit" text (``fmt.text_width``), so that neither is cut."""
    def texts(column: str) -> list[str]:
        return [f"{formatter(value)} {'' if fmt.blank(unit) else fmt.visible(unit)}"
                for value, unit in zip(frame[column], units[column], strict=True) if not fmt.blank(value)]

    return {column: fmt.number_column(column, help=helps.get(column), width=fmt.text_width(texts(column), column))
            for column in units}


st.subheader("Open orders")
if orders.empty:
    st.info("No open orders in this scope.")
else:
    symbols = st.multiselect("Symbol", sorted(orders["symbol"].unique()), format_func=fmt.visible,
                             placeholder="All symbols")
    shown = orders[orders["symbol"].isin(symbols)] if symbols else orders
    st.caption(f"{len(shown)} open order(s). Distance = order price / last price − 1 (— when no last price).")
    table = pd.DataFrame({
        "Client": scope.client_links(shown), "Exchange": shown["exchange_id"],
        "Account": scope.account_links(shown, shown["label"]),
        "Symbol": shown["symbol"].map(fmt.visible), "Side": shown["side"], "Type": fmt.text(shown["type"]),
        **{label: fmt.amounts(shown[column]) for label, column in ORDER_NUMBERS.items()},
        "USD value": fmt.floats(shown["usd"]),
        "Distance": fmt.floats(shown["distance"]), "Age": fmt.floats(shown["age_seconds"]),
    }, columns=OPEN_ORDER_COLUMNS)
    quote = shown["symbol"].map(lambda symbol: prices.split_symbol(symbol)[1])
    st.dataframe(
        fmt.table(table, {**dict.fromkeys(ORDER_NUMBERS, fmt.quantity), "Distance": fmt.percent, "Age": fmt.age},
                  units=dict.fromkeys(QUOTED, quote)),
        hide_index=True, width="stretch", placeholder=fmt.MISSING,
        column_config={**fmt.number_columns(*ORDER_NUMBERS, "Distance", "Age"), "USD value": USD_VALUE, **LINKS,
                       **MARKET, **fitted_with_units(table, fmt.quantity, dict.fromkeys(QUOTED, quote), QUOTED_HELP)},
    )

st.subheader("Positions")
if positions.empty:
    st.info("No derivatives positions in this scope.")
else:
    reported = activity.reported_unrealized(positions)
    why = ("As the exchanges report it, not part of the P&L page's figures: in USD over the positions settled in a "
           "USD-like currency, and in its own currency for each coin-settled (inverse) one, never added together.")
    positions_ui.unrealized_cards(reported, why)
    st.dataframe(
        fmt.table(pd.DataFrame({
            "Client": scope.client_links(positions), "Exchange": positions["exchange_id"],
            "Account": scope.account_links(positions, positions["label"]),
            "Symbol": positions["symbol"].map(fmt.visible), "Side": fmt.text(positions["side"]),
            **{label: fmt.amounts(positions[column]) for label, column in POSITION_NUMBERS.items()},
            "Base quantity": fmt.floats(positions["base_quantity"]),
            "USD notional": fmt.floats(positions["usd"]),
            "Unrealized P&L": fmt.floats(positions["unrealized_pnl"]),
            "Leverage": fmt.amounts(positions["leverage"]),
            "Liquidation": fmt.amounts(positions["liquidation_price"]),
        }, columns=POSITION_COLUMNS),
            {**dict.fromkeys([*POSITION_NUMBERS, "Liquidation"], fmt.quantity), "Unrealized P&L": fmt.signed_money,
             "Leverage": lambda v: f"{fmt.quantity(v, 2)}×"}),
        hide_index=True, width="stretch", placeholder=fmt.MISSING,
        column_config={**fmt.number_columns(*POSITION_NUMBERS, "Leverage", "Liquidation"), **LINKS, **MARKET,
                       "Unrealized P&L": fmt.number_column("Unrealized P&L", help="As the exchange reports it; "
                                                           "— : not reported"),
                       "Base quantity": st.column_config.NumberColumn(
                           "Base quantity", format="%.8g", help="Contracts × contract size; — : size unknown"),
                       "USD notional": st.column_config.NumberColumn(
                           "USD notional", format="dollar", help="Base quantity × mark × the quote's USD price "
                           "now; — : unpriced")},
    )

st.subheader("Order history")
second, third = st.columns([2, 1])
with loaders.plain_errors("order history"):
    history_symbols, history_statuses = loaders.order_history_choices(viewer, client_id, connector_id)
symbol = second.selectbox("Symbol", [None, *history_symbols], key="order_history_symbol",
                          format_func=lambda s: "All symbols" if s is None else fmt.visible(s))
status = third.selectbox("Status", [None, *history_statuses], key="order_history_status",
                         format_func=lambda s: "All" if s is None else fmt.visible(s))
start, end = period.date_range(st.columns(2)[0], "order_history", label="Created (UTC)")
filters = {"client_id": client_id, "connector_id": connector_id, "symbol": symbol, "status": status,
           "start": start, "end": end}
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
    from_fills = history["fee_cost"].isna() & history["fill_fees"].notna()
    # the cell's number (what it sorts by) is the fills' first currency's sum; its text names every currency
    fee = history["fee_cost"].where(~from_fills, history["fill_fees"].map(
        lambda fees: None if fees is None else fees.totals[0][1]))
    fee_unit = history["fee_currency"].where(~from_fills, history["fill_fees"].map(
        lambda fees: None if fees is None else f"{fees.totals[0][0] or ''} (from {fees.fills} fill(s))".lstrip()))
    table = pd.DataFrame({
        "Time (UTC)": fmt.ms_to_datetime(history["timestamp"]), "Client": scope.client_links(history),
        "Account": scope.account_links(history, history["exchange_id"] + " / " + history["label"]),
        "Symbol": history["symbol"].map(fmt.visible), "Side": fmt.text(history["side"]),
        "Type": fmt.text(history["type"], fmt.visible), "Status": fmt.text(history["status"], fmt.visible),
        **{label: fmt.amounts(history[column]) for label, column in HISTORY_NUMBERS.items()},
        "Fee": fmt.amounts(fee),
        "Order ID": fmt.text(history["order_id"], fmt.visible),
    }, columns=HISTORY_COLUMNS)
    cost_unit = history["symbol"].map(activity.settlement_currency)
    styler = fmt.table(table, {**dict.fromkeys(HISTORY_NUMBERS, fmt.significant), "Fee": fmt.significant},
                       units={"Fee": fee_unit, "Cost": cost_unit})
    for row, fees in history["fill_fees"][from_fills].items():  # fees in several currencies: each, never added
        if len(fees.totals) > 1:
            text = " + ".join(f"{fmt.significant(cost)} {fmt.visible(currency or '')}".rstrip()
                              for currency, cost in fees.totals)
            styler = styler.format(lambda _, t=f"{text} (from {fees.fills} fill(s))": t, subset=([row], ["Fee"]))
    st.dataframe(
        styler, hide_index=True, width="stretch", placeholder=fmt.MISSING,
        column_config={"Time (UTC)": fmt.datetime_column("Time (UTC)", seconds=True), **LINKS,
                       **fmt.number_columns(*HISTORY_NUMBERS),
                       **fitted_with_units(table, fmt.significant, {"Cost": cost_unit}, {"Cost": COST_HELP}),
                       "Fee": fmt.number_column("Fee", help=FEE_HELP)},
    )
left, middle, right = st.columns([1, 1, 2])
left.number_input("Page", min_value=1, max_value=pages, step=1, key="order_history_page")
middle.selectbox("Rows per page", PAGE_SIZES, index=PAGE_SIZES.index(page_size), key="order_history_page_size")
right.download_button(
    "Download order history (CSV)", loaders.order_history_csv(viewer, **filters), file_name="order_history.csv",
    mime="text/csv", icon=":material/download:", disabled=total == 0,
    help=f"The filtered orders, newest first, at most {loaders.CSV_ROW_CAP:,} rows; narrow the dates for more.",
)
