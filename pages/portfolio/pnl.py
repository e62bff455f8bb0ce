"""P&L: realized, unrealized, fees and net by FIFO or average cost, with charts and warnings.

The rules are PNL.md's; the figures come from lib.reports (the same as ``python -m lib.cli pnl``).
"""

import pandas as pd
import streamlit as st

from lib.ui import charts, loaders
from lib.ui import format as fmt
from lib.ui.auth import current_viewer
from lib.ui.shell import selected_client_id

METHODS = {"fifo": "FIFO", "average": "Average cost"}

viewer = current_viewer()
client_id = selected_client_id(viewer)

st.title("P&L")

with loaders.plain_errors("accounts"):
    connectors = loaders.connectors(viewer, client_id)
if connectors.empty:
    st.info("No exchange accounts in this scope yet.")
    st.stop()

names = {int(r.id): fmt.visible(f"{r.client} · {r.exchange_id} / {r.label}") for r in connectors.itertuples()}
first, second, third = st.columns([2, 3, 2])
method = first.radio("Method", list(METHODS), format_func=METHODS.get, horizontal=True, key="pnl_method")
connector_id = second.selectbox("Scope", [None, *names], key="pnl_connector",
                                format_func=lambda c: "All accounts of the selected client(s)" if c is None
                                else names[c])
dates = third.date_input("Dates (UTC)", value=(), key="pnl_dates",
                         help="Realized P&L counts disposals in this window; empty means all history.")
start = dates[0] if len(dates) > 0 else None
end = dates[1] if len(dates) > 1 else None
per_connector = st.toggle("Pool lots per connector", key="pnl_pool",
                          help="Off: lots of one asset are pooled across every account in scope (PNL.md).")

with loaders.plain_errors("P&L"), st.spinner("Computing P&L…"):
    summary = loaders.pnl(viewer, client_id, connector_id, method, start, end,
                          "connector" if per_connector else "scope")

totals = summary.totals
cards = st.columns(4)
cards[0].metric("Realized", fmt.money(totals["realized"], signed=True))
cards[1].metric("Unrealized", fmt.money(totals["unrealized"], signed=True),
                help="Market value minus remaining cost basis of priced holdings.")
cards[2].metric("Fees", fmt.money(totals["fees"]),
                help="Already inside proceeds and cost basis (PNL.md); shown for information, not subtracted again.")
cards[3].metric("Net", fmt.money(totals["net"], signed=True),
                help="Realized in the window + unrealized at its end (which includes gains from before the window).")
st.caption(f"{METHODS[summary.method]}, lots pooled per {'connector' if summary.pool == 'connector' else 'scope'}, "
           f"over {summary.fills:,} fill(s).")

for asset, units in sorted(summary.unmatched.items()):
    st.warning(f"{fmt.literal(asset)}: {fmt.quantity(units)} unit(s) were disposed of with no acquisition on "
               "record; they are counted with zero cost basis (history may be missing).", icon=":material/warning:")
if summary.unpriced:
    st.warning("Unpriced (no market price; their market value and unrealized P&L are left out): "
               + ", ".join(map(fmt.literal, summary.unpriced)), icon=":material/help:")
for message in summary.warnings:  # plain sentences that name asset codes
    st.info(fmt.literal(message), icon=":material/info:")
with loaders.plain_errors("history notes"):
    notes = loaders.history_notes(viewer, client_id, connector_id)
for note in notes.opening:  # cost basis of these lots is the first sync's price, not what was paid
    st.info(fmt.literal(note), icon=":material/history:")

if summary.daily.empty:
    st.info("No disposals in this window, so no realized P&L to chart.")
else:
    left, right = st.columns(2)
    left.plotly_chart(charts.cumulative_realized(summary.daily), width="stretch")
    right.plotly_chart(charts.daily_pnl(summary.daily), width="stretch")

st.subheader("Equity")
with loaders.plain_errors("equity curve"):
    curve, moves = loaders.equity_curve(viewer, client_id, connector_id, start, end)
if curve.empty:
    st.info("No balance snapshots in this window for an equity curve.")
elif curve["time"].dt.normalize().nunique() < 2:  # one day of snapshots: a flat line would say nothing
    st.caption("The equity curve builds up as balances are synced over time "
               f"(first snapshot: {curve['time'].min():%Y-%m-%d}).")
else:
    st.plotly_chart(charts.equity(curve, moves), width="stretch")
    first, _last = charts.covered(curve)
    if (earlier := int((moves["time"] < first).sum())) > 0:
        st.caption(f"The curve starts at the first snapshot ({fmt.moment(first)}); {earlier} earlier "
                   "deposit(s)/withdrawal(s) are listed below, not drawn.")
if not moves.empty:
    listed = moves.sort_values("time", ascending=False)
    with st.expander(f"Deposits & withdrawals in this window ({len(listed):,})"):
        st.dataframe(
            pd.DataFrame({
                "Time": listed["time"], "Type": listed["type"], "Asset": listed["currency"].map(fmt.visible),
                "Amount": fmt.text(listed["amount"], fmt.quantity), "USD value": listed["usd"].map(fmt.money),
            }),
            hide_index=True, width="stretch",
            column_config={"Time": fmt.datetime_column("Time"), **fmt.numbers_right("Amount", "USD value")},
        )

st.subheader("Per asset")
assets = summary.per_asset.sort_values("market_value", ascending=False, na_position="last")
priced = assets["priced"].astype(bool)
st.dataframe(
    pd.DataFrame({
        "Asset": assets["asset"].map(fmt.visible), "Quantity": assets["quantity"].map(fmt.quantity),
        "Cost basis": assets["cost_basis"].map(fmt.money),
        "Market value": assets["market_value"].where(priced).map(fmt.money),
        "Realized": assets["realized"].map(lambda v: fmt.money(v, signed=True)),
        "Unrealized": assets["unrealized"].where(priced).map(lambda v: fmt.money(v, signed=True)),
        "Fees": assets["fees"].map(fmt.money),
        "Unmatched": assets["unmatched_quantity"].map(lambda q: fmt.quantity(q) if q else fmt.MISSING),
    }),
    hide_index=True, width="stretch",
    column_config=fmt.numbers_right("Quantity", "Cost basis", "Market value", "Realized", "Unrealized", "Fees",
                                    "Unmatched"),
)
st.download_button(
    "Download CSV", fmt.csv_bytes(assets), file_name=f"pnl_{summary.method}.csv", mime="text/csv",
    icon=":material/download:", help="Per-asset figures in USD; empty market value / unrealized means unpriced.",
)
