"""Orders & positions: open orders with age and distance from the last price; positions."""

import pandas as pd
import streamlit as st

from lib.ui import format as fmt
from lib.ui import loaders
from lib.ui.auth import current_viewer
from lib.ui.shell import selected_client_id

#: Table label -> report column, shown as text so a missing value reads "—" (never "None").
ORDER_NUMBERS = {"Price": "price", "Amount": "amount", "Filled": "filled", "Remaining": "remaining", "Last": "last"}
POSITION_NUMBERS = {"Contracts": "contracts", "Entry": "entry_price", "Mark": "mark_price", "Notional": "notional"}

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
            "Distance": shown["distance"].map(fmt.percent), "Age": fmt.text(shown["age_seconds"], fmt.age),
        }),
        hide_index=True, width="stretch",
        column_config=fmt.numbers_right(*ORDER_NUMBERS, "Distance", "Age"),
    )

st.subheader("Positions")
if positions.empty:
    st.info("No derivatives positions in this scope.")
else:
    reported = positions["unrealized_pnl"].notna()
    st.metric("Unrealized P&L (as the exchanges report it)",
              fmt.money(positions.loc[reported, "unrealized_pnl"].sum(), signed=True) if reported.any() else "—",
              help=f"{int((~reported).sum())} position(s) without a figure from their exchange are left out.")
    st.dataframe(
        pd.DataFrame({
            "Client": positions["client"], "Exchange": positions["exchange_id"], "Account": positions["label"],
            "Symbol": positions["symbol"].map(fmt.visible), "Side": fmt.text(positions["side"]),
            **{label: fmt.text(positions[column], fmt.quantity) for label, column in POSITION_NUMBERS.items()},
            "Unrealized P&L": positions["unrealized_pnl"].map(lambda v: fmt.money(v, signed=True)
                                                              if pd.notna(v) else "not reported"),
            "Leverage": fmt.text(positions["leverage"], lambda v: f"{fmt.quantity(v, 2)}×"),
            "Liquidation": fmt.text(positions["liquidation_price"], fmt.quantity),
        }),
        hide_index=True, width="stretch",
        column_config=fmt.numbers_right(*POSITION_NUMBERS, "Unrealized P&L", "Leverage", "Liquidation"),
    )
