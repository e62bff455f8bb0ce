"""Asset: one asset in the sidebar's scope (client › account): where it is held, its P&L, the
markets it trades in, its deposits and withdrawals and its open orders. Every asset name on
the other pages links here (``?asset=``); the URL keeps the scope, so a link can be shared."""

import pandas as pd
import streamlit as st

from lib.ui import format as fmt
from lib.ui import loaders, scope
from lib.ui.auth import current_viewer
from lib.ui.shell import current_scope

viewer = current_viewer()
chosen = current_scope(viewer)
client_id, connector_id = chosen.client_id, chosen.connector_id

with loaders.plain_errors("assets"):
    report = loaders.balances(viewer, client_id, by_account=True)
    symbols = loaders.fill_symbols(viewer, client_id, connector_id)
held = report.rows if connector_id is None else report.rows[report.rows["connector_id"] == connector_id]
traded = {part for symbol in symbols for part in symbol.split(":")[0].split("/")}
assets = sorted(set(held["asset"]) | traded)
if not assets:
    scope.title("Asset", chosen)
    st.info("No asset in this scope yet: balances and fills appear after a connector's first successful sync.")
    st.stop()

accounts = loaders.connectors(viewer, client_id).set_index("id")


def whose(rows: pd.DataFrame) -> dict[str, pd.Series]:
    """An "Account" column ("client · exchange / label") for rows of several accounts; none when
    the scope is one account, whose name the title already gives."""
    if connector_id is not None:
        return {}
    named = accounts.reindex(rows["connector_id"])
    text = named["client"] + " · " + named["exchange_id"] + " / " + named["label"]
    return {"Account": pd.Series(text.map(fmt.visible).to_numpy(), index=rows.index)}


heading = st.container()  # the title names the asset picked below it
if st.session_state.get(scope.ASSET_KEY) not in assets:  # left from another scope: the first asset
    st.session_state.pop(scope.ASSET_KEY, None)
asset = st.selectbox("Asset", assets, key=scope.ASSET_KEY, bind="query-params", format_func=fmt.visible)
with heading:
    scope.title("Asset", chosen, asset)

with loaders.plain_errors("P&L of this asset"):
    summary = loaders.pnl(viewer, client_id, connector_id)
row = summary.per_asset[summary.per_asset["asset"] == asset]
rows = held[held["asset"] == asset]
cards = st.columns(4)
cards[0].metric("Held", fmt.exact(rows["total"].sum() if not rows.empty else 0, fmt.min_decimals(asset)),
                help="Latest balances, every account type of every account in scope.")
if rows["priced"].all():
    fmt.money_card(cards[1], "Value", rows["usd"].sum(skipna=True), help="Empty: no market price for this asset.")
else:
    cards[1].metric("Value", fmt.MISSING, help="Empty: no market price for this asset.")
if row.empty:
    cards[2].metric("Realized (all history)", fmt.MISSING, help="No fill or transfer of this asset in scope.")
    cards[3].metric("Unrealized", fmt.MISSING)
else:
    fmt.money_card(cards[2], "Realized (all history)", float(row["realized"].iloc[0]), signed=True,
                   help="FIFO, lots pooled over the scope (the P&L page has the other methods and windows).")
    if pd.notna(row["unrealized"].iloc[0]):
        fmt.money_card(cards[3], "Unrealized", float(row["unrealized"].iloc[0]), signed=True, help="Empty: unpriced.")
    else:
        cards[3].metric("Unrealized", fmt.MISSING, help="Empty: unpriced.")

st.subheader("Where it is held")
if rows.empty:
    st.caption("Not held in this scope now.")
else:
    where = pd.DataFrame({
        "Account": scope.account_links(rows, rows["client"] + " · " + rows["exchange_id"] + " / " + rows["label"]),
        "Account type": rows["account_type"].map(lambda t: t.capitalize() if t else "Default"),
        "Total": fmt.amount_columns(rows, ["total"])["total"],
        "USD value": fmt.floats(rows["usd"]),
    })
    st.dataframe(fmt.table(where, {"Total": fmt.exact}), hide_index=True, width="stretch", placeholder=fmt.UNPRICED,
                 column_config={"Account": scope.link_column("Account", "That account's balances."),
                                **fmt.fitted_columns(where, {"Total": fmt.exact}),
                                "USD value": fmt.number_column("USD value", format="dollar")})

st.subheader("Markets")
markets = [s for s in symbols if asset in s.split(":")[0].split("/")]
if not markets:
    st.caption("No fill in a market of this asset in this scope.")
else:
    st.dataframe(pd.DataFrame({"Market": [scope.link("trades", m, client=chosen.client, account=chosen.account,
                                                      symbol=m) for m in markets]}),
        hide_index=True, column_config={"Market": scope.link_column("Market", "This market's fills on Trades.")})

st.subheader("Deposits and withdrawals")
with loaders.plain_errors("transfers"):
    moves = loaders.transfers(viewer, client_id, connector_id, asset)
if moves.empty:
    st.caption("None synced in this scope.")
else:
    st.dataframe(fmt.table(pd.DataFrame({
        "Time (UTC)": fmt.ms_to_datetime(moves["timestamp"]), **whose(moves), "Type": moves["type"].str.capitalize(),
        "Amount": fmt.amounts(moves["amount"], fmt.min_decimals(asset)),
        "Status": fmt.text(moves["status"], fmt.visible),
    }).iloc[::-1], {"Amount": fmt.exact}), hide_index=True, width="stretch", placeholder=fmt.MISSING,
        column_config={"Time (UTC)": fmt.datetime_column("Time (UTC)"), **fmt.number_columns("Amount")})

st.subheader("Open orders")
with loaders.plain_errors("open orders"):
    orders, _ = loaders.orders_and_positions(viewer, client_id)
orders = orders[orders["symbol"].map(lambda s: asset in str(s).split(":")[0].split("/"))]
if connector_id is not None:
    orders = orders[orders["connector_id"] == connector_id]
if orders.empty:
    st.caption("None in a market of this asset.")
else:
    st.dataframe(fmt.table(pd.DataFrame({
        **whose(orders), "Symbol": orders["symbol"].map(fmt.visible), "Side": orders["side"],
        "Price": fmt.amounts(orders["price"]), "Amount": fmt.amounts(orders["amount"]),
        "USD value": fmt.floats(orders["usd"]),
    }), dict.fromkeys(["Price", "Amount"], fmt.exact)), hide_index=True, width="stretch", placeholder=fmt.MISSING,
        column_config={**fmt.number_columns("Price", "Amount"),
                       "USD value": fmt.number_column("USD value", format="dollar")})
