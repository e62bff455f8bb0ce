"""Balances: per client, connector, account type and asset, free / used / total and USD value.

Each row is priced from its connector's own price source ("Priced from"; another source only
where its own has no price). Totals sum every account type; a type the key may not read and
holdings booked as opening balances because the exchange keeps too little history are said in
plain words. Free, used and total show every digit stored (at least 2 decimals for USD-like
cash, 8 for BTC), so they foot."""

import pandas as pd
import streamlit as st

from lib import prices
from lib.access import Viewer
from lib.ui import format as fmt
from lib.ui import loaders, scope
from lib.ui.auth import current_viewer
from lib.ui.shell import current_scope

EXACT = {"Free": fmt.exact, "Used": fmt.exact, "Total": fmt.exact}


def holdings(viewer: Viewer, chosen: scope.Scope) -> pd.DataFrame:
    """The scope's latest balances per account type, the exchange's default one named "Default"."""
    rows = loaders.balances(viewer, chosen.client_id, by_account=True, connector_id=chosen.connector_id).rows
    return rows.assign(account_type=rows["account_type"].map(lambda t: t.capitalize() if t else "Default"))


def narrowed(rows: pd.DataFrame, exchanges: tuple[str, ...], assets: tuple[str, ...],
             account_types: tuple[str, ...], hide_dust: bool) -> pd.DataFrame:
    """The rows the picks keep (nothing picked: all), largest value first: the figures, table and CSV agree."""
    if exchanges:
        rows = rows[rows["exchange_id"].isin(exchanges)]
    if assets:
        rows = rows[rows["asset"].isin(assets)]
    if account_types:
        rows = rows[rows["account_type"].isin(account_types)]
    if hide_dust:
        rows = rows[~rows["priced"] | (rows["usd"].abs() >= 1)]
    return rows.sort_values("usd", ascending=False, na_position="last")


@st.cache_data(ttl=loaders.TTL, show_spinner=False, max_entries=32)
def draw_rows(viewer_scope: loaders.Scope, chosen: scope.Scope, exchanges: tuple[str, ...], assets: tuple[str, ...],
              account_types: tuple[str, ...], hide_dust: bool, key: tuple[str, str]) -> None:
    """The rows table, kept per scope, picks and database version (``loaders.data_key``): a warm
    visit replays it rather than writing every digit of thousands of amounts again."""
    rows = narrowed(holdings(loaders.viewer_of(viewer_scope), chosen), exchanges, assets, account_types, hide_dust)
    amounts = fmt.amount_columns(rows, ["free", "used", "total"])
    # what a reconciler reads first, in view beside the sidebar at 1,400 px: whose holding (pinned while the
    # rest scrolls), the total and its value (what the table sorts by) as of when, the price and where it
    # comes from; then the account type and the free / used split
    table = pd.DataFrame({
        "Client": scope.client_links(rows), "Exchange": rows["exchange_id"],
        "Account": scope.account_links(rows, rows["label"]), "Asset": scope.asset_links(rows["asset"], chosen),
        "Total": amounts["total"], "USD value": fmt.floats(rows["usd"]), "As of": rows["taken_at"],
        "Price (USD)": fmt.floats(rows["price"]),
        "Priced from": fmt.text(rows["priced_from"].where(rows["priced_from"] != "").map(prices.source_words,
                                                                                         na_action="ignore"),
                                fmt.visible),  # cash: a dash
        "Account type": rows["account_type"].map(fmt.visible),
        "Free": amounts["free"], "Used": amounts["used"],
    })
    st.dataframe(
        fmt.table(table, {**EXACT, "Price (USD)": lambda p: fmt.money(p, digits=6 if p < 1 else 2)}),
        hide_index=True, width="stretch", placeholder=fmt.UNPRICED,  # only a price or value can be missing
        column_config={
            "As of": fmt.datetime_column("As of"), **fmt.fitted_columns(table, EXACT),
            "Client": scope.link_column("Client", "This client's Overview.", pinned=True),
            "Exchange": st.column_config.TextColumn("Exchange", pinned=True),
            "Account": scope.link_column("Account", "This account alone (the sidebar's Account).", pinned=True),
            "Asset": scope.link_column("Asset", "This asset in this scope: holdings, P&L, markets, transfers.",
                                       pinned=True),
            # sized to its longest source: the grid leaves out a text twice its first rows' average (cash's "—")
            "Priced from": st.column_config.TextColumn(
                "Priced from", width=fmt.text_width(map(str, table["Priced from"].dropna()), "Priced from")),
            **fmt.number_columns("Price (USD)"), "USD value": fmt.number_column("USD value", format="dollar")},
    )


viewer = current_viewer()
chosen = current_scope(viewer)  # the sidebar's client and account (?client=&connector=)

scope.title("Balances", chosen)

with loaders.plain_errors("balances"):
    rows = holdings(viewer, chosen)
    notes = loaders.history_notes(viewer, chosen.client_id)

for note in notes.unreadable:
    st.warning(fmt.literal(note), icon=":material/lock:")

if rows.empty:
    st.info("No balances yet for this scope: they appear after a connector's first successful sync.")
    st.stop()

second, third, fourth = st.columns([2, 2, 1])
exchanges = second.multiselect("Exchange", sorted(rows["exchange_id"].unique()), format_func=fmt.visible,
                               placeholder="All exchanges")
assets = third.multiselect("Asset", sorted(rows["asset"].unique()), format_func=fmt.visible, placeholder="All assets")
hide_dust = fourth.toggle("Hide under $1", value=False, help="Unpriced rows are always kept.")
types = sorted(rows["account_type"].unique(), key=lambda t: (t != "Default", t))
account_types = []
if len(types) > 1:
    account_types = st.multiselect(
        "Account type", types, format_func=fmt.visible, placeholder="All account types",
        help="Default: the account the exchange's balance call reads unless told otherwise (spot, trading or "
             "unified). Other types the key may read (funding, ...) are listed apart; totals sum them all.")
picks = tuple(exchanges), tuple(assets), tuple(account_types), hide_dust
rows = narrowed(rows, *picks)

total, unpriced = rows["usd"].sum(skipna=True), sorted(rows.loc[~rows["priced"], "asset"].unique())
first, second = st.columns(2)
fmt.money_card(first, "Value (filtered)", total, help="Sum of priced holdings in the rows below.",
               chars=fmt.CARD_CHARS * 4 // 2)  # a half-width card
second.metric("Rows", len(rows))
if unpriced:
    st.warning("Unpriced, left out of the value: " + ", ".join(map(fmt.literal, unpriced)), icon=":material/help:")
for note in notes.opening:
    st.info(fmt.literal(note), icon=":material/history:")

with loaders.plain_errors("balances"):
    draw_rows(loaders.scope_of(viewer), chosen, *picks, loaders.data_key())
st.download_button(
    "Download CSV", fmt.csv_download(rows.drop(columns=["client_id", "connector_id"])),
    file_name="balances.csv", mime="text/csv", icon=":material/download:",
    help="Numbers as stored; an empty price / usd cell means unpriced.",
)
