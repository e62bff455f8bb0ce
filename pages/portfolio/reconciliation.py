"""Reconciliation: does the synced history explain every balance the exchanges reported?

Per account and asset (account types summed), the balance the stored history implies against
every stored balance snapshot (lib.reconcile): unbalanced rows first, with the difference in
units and USD, the first snapshot of the divergence, the causes the product can tell, and the
asset's history around that date. Client users see their own clients only (the loaders scope
every read)."""

from datetime import timedelta
from typing import NamedTuple

import pandas as pd
import streamlit as st
from streamlit.errors import StreamlitAPIException

from lib.access import Viewer
from lib.reconcile import Reconciliation
from lib.ui import format as fmt
from lib.ui import loaders, scope
from lib.ui.auth import current_viewer
from lib.ui.shell import current_scope

STATUS_LABELS = {"unbalanced": "Unbalanced", "unknown": "Unknown", "balanced": "Balanced"}
#: how far before the first divergence the asset's history is listed (the last balanced
#: snapshot may be older; then from there)
LOOK_BEFORE = timedelta(days=7)
COLUMNS = {
    **fmt.number_columns("Reported", "Implied by history"),
    "Difference": fmt.number_column("Difference", help="Reported − implied, in units; — : unknown"),
    "Difference (USD)": fmt.number_column("Difference (USD)", help="The difference at the asset's USD price; "
                                          "— : unknown or unpriced"),
    "First divergence": fmt.datetime_column("First divergence"),
    "Newest snapshot": fmt.datetime_column("Newest snapshot"),
    "Cause": st.column_config.TextColumn("Cause", width="large"),
    "Client": scope.link_column("Client", "This client's Overview."),
    "Account": scope.link_column("Account", "This account's Balances (the sidebar set to it)."),
    "Asset": scope.link_column("Asset", "This asset in this scope: holdings, P&L, markets, transfers."),
}


class Picks(NamedTuple):
    """An account's entry in the "Where to look" pickers."""

    label: str  # "client · exchange / label (N unbalanced)"
    assets: dict[int, str]  # row of the reconciliation -> asset code, as shown


def scoped(viewer: Viewer, chosen: scope.Scope) -> Reconciliation:
    """The scope's reconciliation: the client's (or every visible client's), narrowed to the account picked."""
    result = loaders.reconciliation(viewer, chosen.client_id)
    if chosen.connector_id is None:
        return result
    return Reconciliation(result.rows[result.rows["connector_id"] == chosen.connector_id].reset_index(drop=True),
                          [n for n in result.unsynced if fmt.visible(n) == f"{chosen.client} · {chosen.account}"])


@st.cache_data(ttl=loaders.TTL, show_spinner=False, max_entries=32)
def draw_rows(viewer_scope: loaders.Scope, chosen: scope.Scope, show_balanced: bool, key: tuple[str, str]) -> None:
    """The rows table, kept per scope, toggle and database version (``loaders.data_key``): a warm
    visit replays it rather than formatting thousands of cells again."""
    rows = scoped(loaders.viewer_of(viewer_scope), chosen).rows
    shown = rows if show_balanced else rows[rows["status"] != "balanced"]
    if shown.empty:
        st.info("Nothing to show with these settings.")
        return
    st.dataframe(fmt.table(pd.DataFrame({
        "Status": shown["status"].map(STATUS_LABELS),
        "Client": scope.client_links(shown),
        "Account": scope.account_links(shown, shown["exchange_id"] + " / " + shown["label"]),
        "Asset": scope.asset_links(shown["asset"], chosen),
        "Account types": fmt.text(shown["account_types"].where(shown["account_types"] != ""), fmt.visible),
        "Reported": fmt.floats(shown["reported"]),
        "Implied by history": fmt.floats(shown["implied"]),
        "Difference": fmt.floats(shown["difference"].where(shown["status"] != "unknown")),
        "Difference (USD)": fmt.floats(shown["difference_usd"].where(shown["status"] != "unknown")),
        "First divergence": pd.to_datetime(shown["first_divergence"], utc=True),
        "Newest snapshot": shown["taken_at"],
        "Cause": [fmt.visible(cause) if cause else ("no history of this asset" if status == "unknown" else "")
                  for status, cause in zip(shown["status"], shown["cause"], strict=True)],
    }), {**dict.fromkeys(["Reported", "Implied by history", "Difference"], fmt.quantity),
         "Difference (USD)": fmt.signed_money}), hide_index=True, width="stretch", placeholder=fmt.MISSING,
        column_config=COLUMNS)


def window_around(since: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The days listed around a first divergence (``LOOK_BEFORE`` before it to the day after)."""
    return since - LOOK_BEFORE, since + timedelta(days=1)


@st.cache_data(ttl=loaders.TTL, show_spinner=False, max_entries=32)
def finding_picks(viewer_scope: loaders.Scope, chosen: scope.Scope, key: tuple[str, str]) -> dict[int, Picks]:
    """The unbalanced rows by account (connector id), in the table's order: each account's picker
    label and its assets' labels by row.

    Two pickers, an account's then an asset's, rather than one of every finding: 2,200 findings
    (200 accounts) in one picker cost the browser about 35 ms on every visit, and a long list is
    read by account anyway. Labelled once per scope and database version, not on every run."""
    rows = scoped(loaders.viewer_of(viewer_scope), chosen).rows
    findings = rows[rows["status"] == "unbalanced"]
    assets: dict[int, dict[int, str]] = {}
    names: dict[int, str] = {}
    for i, row in zip(findings.index, findings.itertuples(), strict=True):
        names.setdefault(row.connector_id, fmt.visible(f"{row.client} · {row.exchange_id} / {row.label}"))
        assets.setdefault(row.connector_id, {})[i] = fmt.visible(row.asset)
    return {int(connector_id): Picks(f"{names[connector_id]} ({len(listed)} unbalanced)", listed)
            for connector_id, listed in assets.items()}


@st.cache_data(ttl=loaders.TTL, show_spinner=False, max_entries=32)
def draw_moves(viewer_scope: loaders.Scope, connector_id: int, asset: str, since: pd.Timestamp,
               key: tuple[str, str]) -> None:
    """The asset's history around its first divergence, with the balance implied after each change."""
    start, end = window_around(since)
    around = loaders.moves_around(loaders.viewer_of(viewer_scope), connector_id, asset,
                                  int(start.timestamp() * 1000), int(end.timestamp() * 1000))
    st.caption(fmt.literal(f"{asset}: every change the history holds from {start:%Y-%m-%d} to {end:%Y-%m-%d} (UTC), "
                           f"with the balance it implies after each; the first divergent snapshot was taken "
                           f"{fmt.moment(since)}."))
    if around.empty:
        st.info("The history holds no change of this asset in that window: a missing fill or transfer would be here.")
        return
    st.dataframe(fmt.table(pd.DataFrame({
        "Time (UTC)": fmt.ms_to_datetime(around["timestamp"]), "Kind": around["kind"],
        "Change": fmt.floats(around["change"]), "Implied balance after": fmt.floats(around["balance"]),
    }), dict.fromkeys(["Change", "Implied balance after"], fmt.quantity)), hide_index=True, width="stretch",
        placeholder=fmt.MISSING, column_config={"Time (UTC)": fmt.datetime_column("Time (UTC)", seconds=True),
                                                **fmt.number_columns("Change", "Implied balance after")})


viewer = current_viewer()
chosen = current_scope(viewer)  # the sidebar's client and account (?client=&connector=)

scope.title("Reconciliation", chosen)
st.caption("For each account and asset: the balance the stored history implies (opening balance + fills − fees "
           "+ deposits − withdrawals − withdrawal fees + ledger income such as funding and interest) against each "
           "balance the exchange reported, summed over the account types read. Balanced means equal within "
           "0.00000001 units.")

with loaders.plain_errors("reconciliation"):
    result = scoped(viewer, chosen)
    data_key = loaders.data_key()  # with the viewer and picks: the kept drawings' key

for name in result.unsynced:
    st.info(fmt.literal(f"{name}: no balance has been read yet, so there is nothing to reconcile."),
            icon=":material/hourglass_empty:")
rows = result.rows
if rows.empty:
    st.info("No balances to reconcile in this scope yet: they appear after a connector's first successful sync.")
    st.stop()

unbalanced, unknown, balanced = (result.count(s) for s in ("unbalanced", "unknown", "balanced"))
first, second, third, fourth = st.columns(4)
first.metric("Unbalanced", unbalanced, help="Assets whose newest reported balance the history does not explain.")
second.metric("Accounts unbalanced", result.unbalanced_accounts)
third.metric("Unknown", unknown, help="Assets the product holds no history for at all.")
fourth.metric("Balanced", balanced)
if unbalanced == 0 and unknown == 0:
    st.success("The stored history explains every reported balance in this scope.", icon=":material/check_circle:")

show_balanced = st.toggle("Show balanced rows", value=unbalanced + unknown == 0)
with loaders.plain_errors("reconciliation"):
    draw_rows(loaders.scope_of(viewer), chosen, show_balanced, data_key)

findings = rows[rows["status"] == "unbalanced"]
if findings.empty:
    st.stop()

st.subheader("Where to look")
picks = finding_picks(loaders.scope_of(viewer), chosen, data_key)
account_pick, asset_pick = st.columns(2)
account = account_pick.selectbox("Unbalanced account", list(picks), key="reconciliation_account",
                                 format_func=lambda connector_id: picks[connector_id].label)
assets = picks[account].assets
picked = findings.loc[asset_pick.selectbox("Unbalanced asset", list(assets), format_func=assets.get,
                                           key=f"reconciliation_asset_{account}")]  # remembered per account
since = pd.Timestamp(picked["first_divergence"])
for _, sentence in picked["causes"]:
    st.warning(fmt.literal(sentence[:1].upper() + sentence[1:]), icon=":material/troubleshoot:")
start, end = window_around(since)
with loaders.plain_errors("history of this asset"):
    draw_moves(loaders.scope_of(viewer), int(picked["connector_id"]), str(picked["asset"]), since, data_key)
link = {scope.CLIENT_PARAM: fmt.visible(picked["client"]),
        scope.ACCOUNT_PARAM: scope.account_label(picked["exchange_id"], picked["label"]),
        "start": f"{start:%Y-%m-%d}", "end": f"{end:%Y-%m-%d}"}
try:
    st.page_link("pages/portfolio/trades.py", label="This account's fills in that window", icon=":material/swap_horiz:",
                 query_params=link)
except StreamlitAPIException:  # the page runs outside app.py's navigation (a bare script run)
    st.caption(f"See Portfolio › Trades for this account from {link['start']} to {link['end']}.")
