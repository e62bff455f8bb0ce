"""Overview: total value and its change, allocation, top holdings, connector health."""

from datetime import UTC, date, datetime, timedelta

import pandas as pd
import streamlit as st
from streamlit.errors import StreamlitAPIException

from lib import equity, reports
from lib.access import Role, Viewer
from lib.demo import DEMO_CLIENTS
from lib.figures_ahead import OVERVIEW_DAYS
from lib.ui import charts, loaders, scope, sync_widgets
from lib.ui import format as fmt
from lib.ui.auth import current_viewer
from lib.ui.demo import load_demo_button
from lib.ui.shell import current_scope

#: the tabs over the last OVERVIEW_DAYS; only the open one's chart is drawn (the browser draws a hidden one too)
VALUE_TABS = ("Equity", "Allocation over time")


def holdings(viewer: Viewer, chosen: scope.Scope) -> reports.BalancesReport:
    """The scope's latest holdings: the cards, the top-holdings table and the kept drawings read the same."""
    return loaders.balances(viewer, chosen.client_id, connector_id=chosen.connector_id)


def value_over_time(viewer: Viewer, chosen: scope.Scope, start: date) -> equity.EquityCurve:
    """The scope's value rebuilt from its history, from ``start`` (a UTC day) on."""
    return loaders.equity_curve(viewer, chosen.client_id, chosen.connector_id, start=start)


# Kept drawings (lib.ui.loaders.data_key): a warm visit replays the recorded chart or table instead
# of loading the frames and building a plotly figure and its JSON again. Nothing here reads the clock.
@st.cache_data(ttl=loaders.TTL, show_spinner=False, max_entries=32)
def draw_value_tab(viewer_scope: loaders.Scope, chosen: scope.Scope, start: date, tab: str,
                   key: tuple[str, str]) -> None:
    """The open tab's chart (one of VALUE_TABS), kept per scope, first day, tab and database version."""
    drawn = value_over_time(loaders.viewer_of(viewer_scope), chosen, start)
    charts.draw(charts.equity(drawn.curve, drawn.transfers, drawn.snapshots, drawn.disagreements)
                if tab == VALUE_TABS[0] else charts.allocation_over_time(drawn.by_asset))


#: what each ring of the allocation sunburst is, as its title names it
RING_WORDS = {"client": "client", "exchange_id": "exchange", "label": "account", "asset": "asset"}


def allocation_rings(chosen: scope.Scope) -> list[str]:
    """The sunburst's rings, inside out: clients only when several may be shown (a viewer of one
    client has ``chosen.client`` named without picking it, and reads "by client" as seeing others'
    data); within one client its exchanges and accounts; one account split by asset alone."""
    if chosen.connector_id is not None:
        return ["asset"]
    return ["client", "exchange_id", "asset"] if chosen.client is None else ["exchange_id", "label", "asset"]


def allocation_title(rings: list[str]) -> str:
    """'Allocation by exchange, account and asset': the rings drawn, inside out."""
    words = [RING_WORDS[ring] for ring in rings]
    return "Allocation by " + (f"{', '.join(words[:-1])} and {words[-1]}" if len(words) > 1 else words[0])


@st.cache_data(ttl=loaders.TTL, show_spinner=False, max_entries=32)
def draw_allocation(viewer_scope: loaders.Scope, chosen: scope.Scope, key: tuple[str, str]) -> None:
    """The allocation sunburst, kept per scope and database version."""
    rows = holdings(loaders.viewer_of(viewer_scope), chosen).rows
    rings = allocation_rings(chosen)
    charts.draw(charts.allocation(rows, rings, allocation_title(rings)))


def flows_text(flows: tuple[float, list[str]] | None) -> str:
    """The window's deposits less withdrawals (``equity.net_flows``) in a sentence for a change
    card's help, so that the change is not read as profit."""
    if flows is None:
        return "No deposit or withdrawal in this window."
    net, unpriced = flows
    if unpriced:
        return (f"Deposits less withdrawals in this window: {fmt.literal(fmt.signed_money(net))} without "
                + ", ".join(map(fmt.literal, unpriced)) + ", which have no price: so the change net of them "
                "is not known.")
    return (f"Deposits less withdrawals in this window: {fmt.literal(fmt.signed_money(net))}, each valued when it "
            "happened. The figure under the change takes them off: what trading and prices did.")


def change_delta(change: dict[str, object], flows: tuple[float, list[str]] | None) -> str | None:
    """What a change card shows under the change: with deposits or withdrawals in the window, the
    change net of them (a percentage of a value that deposits raised would read as a return);
    without any, the change as a percentage. None where that is not known: accounts left out
    (the flows are the scope's, the change is not) or a flow without a price."""
    if change["left_out"]:
        return None
    if flows is None:
        return fmt.percent(change["pct"]) if change["pct"] is not None else None
    net = equity.net_of_flows(change["change"], flows)
    return None if net is None else f"{fmt.signed_compact_money(net)} net of flows"


@st.cache_data(ttl=loaders.TTL, show_spinner=False, max_entries=32)
def draw_top_holdings(viewer_scope: loaders.Scope, chosen: scope.Scope, key: tuple[str, str]) -> None:
    """The ten largest holdings as a table, kept per scope and database version."""
    report = holdings(loaders.viewer_of(viewer_scope), chosen)
    top = report.rows.groupby("asset", as_index=False).agg(quantity=("total", "sum"), usd=("usd", "sum"),
                                                           priced=("priced", "all"))
    top["usd"] = top["usd"].where(top["priced"])
    top = top.sort_values("usd", ascending=False, na_position="last").head(10)
    top["share"] = top["usd"] / report.total_usd if report.total_usd else None
    table = pd.DataFrame({"Asset": scope.asset_links(top["asset"], chosen),
                          "Quantity": fmt.amount_columns(top, ["quantity"])["quantity"],
                          "USD value": fmt.floats(top["usd"]), "Share": fmt.floats(top["share"])})
    st.dataframe(
        fmt.table(table, {"Quantity": fmt.exact, "Share": fmt.plain_percent}),
        hide_index=True, width="stretch", placeholder=fmt.UNPRICED,  # only a value or share can be missing
        column_config={**fmt.fitted_columns(table, {"Quantity": fmt.exact}), **fmt.number_columns("Share"),
                       "Asset": scope.link_column("Asset", "This asset in this scope."),
                       "USD value": fmt.number_column("USD value", format="dollar")},
    )


viewer = current_viewer()
chosen = current_scope(viewer)  # the sidebar's client and account (?client=&connector=)
client_id, connector_id = chosen.client_id, chosen.connector_id

scope.title("Overview", chosen)

with loaders.plain_errors("overview"):
    clients = loaders.clients(viewer)
    connectors = loaders.connectors(viewer, client_id)


def welcome() -> None:
    """A new install (or a scope with no accounts): say what to do next, never a blank page."""
    if viewer.role != Role.ADMIN:
        st.info("No exchange accounts are visible to you yet. Ask an admin to add your client's API keys.",
                icon=":material/info:")
        return
    st.subheader("Welcome")
    st.write("Nothing to show yet.")
    offer_demo = not clients["name"].isin(DEMO_CLIENTS).any()  # load_demo_button hides itself once loaded
    left, right = st.columns(2)
    with left.container(border=True, height="stretch"):
        st.markdown("**Connect an exchange account**")
        st.caption("Add a client and its exchange API key; the first sync starts at once.")
        try:
            st.page_link("pages/admin/clients.py", label="Add your first key", icon=":material/key:")
        except StreamlitAPIException:  # the page runs outside app.py's navigation (a bare script run)
            st.markdown("**Add your first key** under *Admin › Clients & keys*.")
    if offer_demo:
        with right.container(border=True, height="stretch"):
            st.markdown("**Look around first**")
            st.caption("Two demo clients, synced from a local exchange simulator.")
            load_demo_button(viewer)


if clients.empty or connectors.empty:
    welcome()
    st.stop()

with loaders.plain_errors("balances"):
    report = holdings(viewer, chosen)
    changes = loaders.value_changes(viewer, client_id, connector_id)

viewer_scope, version = loaders.scope_of(viewer), loaders.data_key()
now = datetime.now(UTC)
start = now.date() - timedelta(days=OVERVIEW_DAYS - 1)
with loaders.plain_errors("equity curve"):  # its transfers (the last OVERVIEW_DAYS) say the cards' deposits
    drawn = value_over_time(viewer, chosen, start)

changed_at = datetime.fromisoformat(changes["now"]["at"])  # the changes' own now: their windows, to the second
columns = st.columns(4)
fmt.money_card(columns[0], "Total value", report.total_usd,
               help="Sum of priced holdings as the exchanges report them, in USD. Open derivatives positions "
                    "(Orders & positions) are not valued on their own: their unrealized P&L counts only as far "
                    "as an exchange books it into a balance.")
for column, window in zip(columns[1:], ("24h", "7d", "30d"), strict=True):
    change = changes[window]
    since = changed_at - reports.CHANGE_WINDOWS[window]
    moved = equity.net_flows(drawn.transfers, since, changed_at)  # from the curve's transfers: no query
    flows = "" if change["left_out"] else " " + flows_text(moved)
    why = ("Not profit: the change of the accounts' value, so deposits and withdrawals in the window count in it "
           "(the P&L page has the window's realized and unrealized P&L)." + flows + " "
           f"From {fmt.moment(since)} to {fmt.moment(changed_at)}, by the balances the synced history implies at both "
           "ends, for the same accounts; — when no "
           "history is that old." + (f" {change['left_out']} account(s) whose history starts later are left out."
                                     if change["left_out"] else "")
           + (" No candle that old for " + ", ".join(map(fmt.literal, change["unpriced"]))
              + ": valued at today's price, so only its quantity change counts." if change.get("unpriced") else ""))
    if change["change"] is None:
        column.metric(f"Change {window}", fmt.MISSING, help=why)
    else:
        fmt.money_card(column, f"Change {window}", change["change"], signed=True, help=why,
                       delta=change_delta(change, moved))

if report.unpriced:
    st.warning("Unpriced (no ticker or candle to value them; left out of the totals): "
               + ", ".join(map(fmt.literal, report.unpriced)), icon=":material/help:")

if drawn.empty:
    st.info("No fills, transfers or opening balances synced yet, so there is no value over time to draw.")
else:
    for tab, label in zip(st.tabs(VALUE_TABS, key="overview_value_tab", on_change="rerun"), VALUE_TABS, strict=True):
        if tab.open:
            with tab, loaders.plain_errors("equity curve"):
                draw_value_tab(viewer_scope, chosen, start, label, version)
    st.caption(f"Last {OVERVIEW_DAYS} days, rebuilt from the synced history (first event: "
               f"{fmt.moment(drawn.first_event)}) and valued with daily candles; dots are balance snapshots, "
               "crosses snapshots the history does not explain. Any window: P&L page.")
    if not drawn.unpriced.empty:
        st.warning("No candle to value " + ", ".join(
            f"{fmt.literal(r.asset)} ({r.points} point(s), {r.first:%Y-%m-%d} to {r.last:%Y-%m-%d})"
            for r in drawn.unpriced.itertuples()) + "; left out of those points' totals.", icon=":material/help:")

# each connector's reconciliation as its last sync recorded it (cheap; the Reconciliation page recomputes)
checked = [row for row in sync_widgets.freshness(viewer, client_id) if row.reconciliation
           and connector_id in (None, row.connector_id)]
unbalanced = [row for row in checked if row.reconciliation == "unbalanced"]
if unbalanced:
    st.warning(f"{len(unbalanced)} account(s) reported balances at their last sync that their synced history does "
               f"not explain ({sum(row.unbalanced for row in unbalanced)} asset(s)): see Portfolio › Reconciliation.",
               icon=":material/rule:")
elif checked:
    unknown = sum(row.reconciliation == "unknown" for row in checked)
    st.caption("Reconciliation at the last sync: the synced history explains every account's reported balances"
               + (f"; {unknown} account(s) unknown: an asset with no history, or nothing to compare." if unknown
                  else "."))

if report.empty:
    st.info("No balances synced yet for this scope; they appear after the first successful sync.")
else:
    left, right = st.columns([3, 2])
    with left, loaders.plain_errors("balances"):
        draw_allocation(viewer_scope, chosen, version)
    with right, loaders.plain_errors("balances"):
        st.subheader("Top holdings")
        draw_top_holdings(viewer_scope, chosen, version)

st.subheader("Connector health")
sync_widgets.health_summary(viewer, client_id, connector_id)
