"""P&L: realized, unrealized, fees and net by FIFO or average cost, with charts and warnings.

The rules are PNL.md's; the figures come from lib.reports (the same as ``python -m lib.cli pnl``): for a
window, the period figures of lib.pnl.period (opening and closing value, flows, and the identity).
"""


from datetime import date
from decimal import Decimal

import pandas as pd
import streamlit as st

from lib import activity, reports
from lib.ui import charts, loaders, period, scope
from lib.ui import format as fmt
from lib.ui import positions as positions_ui
from lib.ui.auth import current_viewer
from lib.ui.shell import current_scope

METHODS = {"fifo": "FIFO", "average": "Average cost"}
USD_COLUMNS = {"Cost basis": "cost_basis", "Market value": "market_value", "Realized": "realized",
               "Unrealized": "unrealized", "Fees": "fees"}
USD_HELP = {"Market value": "At the window's end. —: unpriced.",
            "Unrealized": "At the window's end (the Unrealized change card is its change over the window). "
                          "—: unpriced."}


def identity_line(totals: dict[str, float]) -> str:
    """The window's identity in words and figures: closing - opening - net flows, and what explains it."""
    left = totals["closing_value"] - totals["opening_value"] - totals["net_flows"]
    line = (f"Closing − opening − net flows = {fmt.money(left, signed=True)} = realized "
            f"{fmt.money(totals['realized'], signed=True)} + change in unrealized "
            f"{fmt.money(totals['unrealized_change'], signed=True)}")
    if abs(totals["withdrawn_unrealized"]) >= 0.005:  # a gain adds, a loss takes away: its size, in words
        gain = totals["withdrawn_unrealized"] > 0
        line += (f" {'+' if gain else '−'} unrealized {'gain' if gain else 'loss'} carried out by withdrawals "
                 f"{fmt.money(abs(totals['withdrawn_unrealized']))}")
    if abs(totals["unpriced_basis_change"]) >= 0.005:
        line += (" − change in the cost basis of unpriced holdings "
                 f"{fmt.money(totals['unpriced_basis_change'], signed=True)}")
    return line + f" (difference {fmt.money(totals['identity_gap'], signed=True)})."


def footing_line(footing: reports.PnlFooting) -> str:
    """How the per-asset table adds up to the Closing value card, in words and figures to the cent
    (plain text: the caller shows it with ``fmt.literal``)."""
    def term(words: str, value: Decimal) -> str:  # "+ words $1.00" or "− words $1.00": the sign reads once
        return f" {'−' if value < 0 else '+'} {words} {fmt.money(abs(value))}"

    line = (f"The table foots to the closing value: market value of the {footing.priced_rows:,} priced row(s) "
            f"{fmt.money(footing.rows)}" + term(f"cash in USD-like currencies ({', '.join(footing.cash_assets)}; "
                                               "$1 a unit, no row: cash has no lot to match)", footing.cash))
    if footing.rounding:
        line += term("the rows' rounding to the cent", footing.rounding)
    line += f" = closing value {fmt.money(footing.closing)}."
    if footing.cash < 0:
        line += (" The cash is negative: the history spends or withdraws more of it than came in (missing "
                 "deposits or fills?).")
    if footing.unpriced:
        line += (f" Unpriced, so in neither figure: {', '.join(footing.unpriced)} (their rows have no "
                 "market value).")
    return line


def pnl_of(viewer_scope: loaders.Scope, chosen: scope.Scope, method: str, start: date | None, end: date | None,
           pool: str) -> reports.PnlSummary:
    """The scope's P&L as the page shows it (the loader's, kept per scope and database version)."""
    return loaders.pnl(loaders.viewer_of(viewer_scope), chosen.client_id, chosen.connector_id, method, start, end,
                       pool)


# The drawings below are kept with st.cache_data per viewer, scope, picks and database version
# (loaders.data_key): a warm visit replays their elements rather than building figures, frames
# and the Styler's text again. Nothing in them depends on the clock.

@st.cache_data(ttl=loaders.TTL, show_spinner=False, max_entries=32)
def draw_realized(viewer_scope: loaders.Scope, chosen: scope.Scope, method: str, start: date | None, end: date | None,
                  pool: str, key: tuple[str, str]) -> None:
    """Cumulative and daily realized P&L in the window."""
    daily = pnl_of(viewer_scope, chosen, method, start, end, pool).daily
    if daily.empty:
        st.info("No disposals in this window, so no realized P&L to chart.")
        return
    left, right = st.columns(2)
    charts.draw(charts.cumulative_realized(daily), left)
    charts.draw(charts.daily_pnl(daily), right)


@st.cache_data(ttl=loaders.TTL, show_spinner=False, max_entries=32)
def draw_equity(viewer_scope: loaders.Scope, chosen: scope.Scope, start: date | None, end: date | None,
                key: tuple[str, str]) -> None:
    """The equity curve over the window, its unpriced assets and the window's transfers."""
    drawn = loaders.equity_curve(loaders.viewer_of(viewer_scope), chosen.client_id, chosen.connector_id, start, end)
    if drawn.curve["time"].nunique() < 2:  # one point: a line would say nothing
        st.info("No history in this window for an equity curve (it starts at the first fill, transfer or opening "
                "balance" + (f", {fmt.moment(drawn.first_event)}" if drawn.first_event is not None else "") + ").")
    else:
        charts.draw(charts.equity(drawn.curve, drawn.transfers, drawn.snapshots, drawn.disagreements))
        st.caption("Rebuilt from the synced history and valued with daily candles; dots are balance snapshots, "
                   "crosses snapshots the history does not explain (see Reconciliation).")
    if not drawn.unpriced.empty:
        st.warning("No candle to value " + ", ".join(
            f"{fmt.literal(r.asset)} ({r.first:%Y-%m-%d} to {r.last:%Y-%m-%d})" for r in drawn.unpriced.itertuples())
            + "; left out of the curve on those days.", icon=":material/help:")
    moves = drawn.transfers
    if not moves.empty:
        listed = moves.sort_values("time", ascending=False)
        whose = {} if chosen.connector_id is not None else {"Account": listed["account"].map(fmt.visible)}
        with st.expander(f"Deposits & withdrawals in this window ({len(listed):,})"):
            shown = pd.DataFrame({
                "Time": listed["time"], **whose, "Type": listed["type"].str.capitalize(),
                "Asset": listed["currency"].map(fmt.visible),
                # every digit the amount has, at least its asset's floor (cents, BTC's satoshi), grouped
                "Amount": fmt.amount_columns(listed, ["amount"], asset="currency")["amount"],
                "USD value": listed["usd"],
            })
            st.dataframe(
                fmt.table(shown, {"Amount": fmt.exact}), hide_index=True, width="stretch", placeholder=fmt.MISSING,
                column_config={"Time": fmt.datetime_column("Time"), **fmt.fitted_columns(shown, {"Amount": fmt.exact}),
                               "USD value": st.column_config.NumberColumn("USD value", format="dollar")},
            )


@st.cache_data(ttl=loaders.TTL, show_spinner=False, max_entries=32)
def draw_per_asset(viewer_scope: loaders.Scope, chosen: scope.Scope, method: str, start: date | None, end: date | None,
                   pool: str, key: tuple[str, str]) -> None:
    """The per-asset table: quantity, cost basis, market value, realized, unrealized, fees."""
    assets = pnl_of(viewer_scope, chosen, method, start, end, pool).per_asset.sort_values(
        "market_value", ascending=False, na_position="last")
    priced = assets["priced"].astype(bool)
    st.dataframe(
        pd.DataFrame({
            "Asset": scope.asset_links(assets["asset"], chosen), "Quantity": assets["quantity"],
            **{label: assets[column].where(priced) if column in ("market_value", "unrealized") else assets[column]
               for label, column in USD_COLUMNS.items()},
            "Unmatched": assets["unmatched_quantity"].where(assets["unmatched_quantity"] != 0),
        }),
        hide_index=True, width="stretch", placeholder=fmt.MISSING,
        column_config={"Asset": scope.link_column("Asset", "This asset in this scope: holdings, markets, transfers.",
                                                 pinned=True),  # stays in view when the wide table scrolls
                       "Quantity": st.column_config.NumberColumn("Quantity", format="%.8f"),
                       "Unmatched": st.column_config.NumberColumn("Unmatched", format="%.8f", help="Units sold or "
                                                                  "withdrawn beyond the lots held (missing history)."),
                       **{label: st.column_config.NumberColumn(label, format="dollar", help=USD_HELP.get(label))
                          for label in USD_COLUMNS}},
    )


viewer = current_viewer()
chosen = current_scope(viewer)  # the sidebar's client and account: the page's only scope control
client_id, connector_id = chosen.client_id, chosen.connector_id

scope.title("P&L", chosen)

with loaders.plain_errors("accounts"):
    connectors = loaders.connectors(viewer, client_id)
if connectors.empty:
    st.info("No exchange accounts in this scope yet.")
    st.stop()

first, second = st.columns([2, 3])
method = first.radio("Method", list(METHODS), format_func=METHODS.get, horizontal=True, key="pnl_method")
start, end = period.period_picker(second, "pnl", label="Window (UTC)")
POOLS = {"scope": "Across the scope", "client": "Per client", "connector": "Per account"}
pool = st.radio("Lots pooled", list(POOLS), format_func=POOLS.get, horizontal=True, key="pnl_pool",
                help="Across the scope (PNL.md): one pool per asset over every account shown, so with several "
                "clients one client's sale can close another client's lot. Per client: each client's own lots, "
                "as the Clients page and statements count. Per account: each exchange account's own lots.")
if pool == "scope" and client_id is None and connectors["client_id"].nunique() > 1:
    st.caption("Lots are pooled across clients here; per client (as on the Clients page) the realized and "
               "unrealized split can differ.")
window = period.period_text(start, end)

with loaders.plain_errors("P&L"), st.spinner("Computing P&L…"):
    summary = loaders.pnl(viewer, client_id, connector_id, method, start, end, pool)

totals = summary.totals
cards = st.columns(4)
fmt.money_card(cards[0], "Realized", totals["realized"], signed=True, help="Disposals inside the window.")
fmt.money_card(cards[1], "Unrealized change", totals["unrealized_change"], signed=True,
               help=f"Unrealized P&L at the window's end ({fmt.money(totals['unrealized'], signed=True)}) minus at "
               f"its start ({fmt.money(totals['unrealized_start'], signed=True)}), priced holdings only.")
fmt.money_card(cards[2], "Fees", totals["fees"],
               help="Already inside proceeds and cost basis (PNL.md); shown for information, not subtracted again. "
               "A fee paid in the traded base or quote is valued at the fill's own price here; Trades, "
               "Activity and Clients value every fee at its currency's daily USD price, so their total can differ "
               "slightly.")
fmt.money_card(cards[3], "Net", totals["net"], signed=True,
               help="Realized in the window + change in unrealized over it: gains from before the window are "
               "not counted again. The change in value below can differ from it by the unrealized gain or loss "
               "that withdrawals carried out (the identity line names it).")
st.caption(f"{METHODS[summary.method]}, lots pooled {POOLS[summary.pool].lower()}, "
           f"{window}, over {summary.fills:,} fill(s) up to the window's end.")
with loaders.plain_errors("positions"):
    _, open_positions = loaders.orders_and_positions(viewer, client_id)
if connector_id is not None:
    open_positions = open_positions[open_positions["connector_id"] == connector_id]
if not open_positions.empty:  # derivatives: the exchanges' own figure, beside (not inside) the totals above
    reported = activity.reported_unrealized(open_positions)
    why = ("Open derivatives positions now, as their exchanges report it, not computed from fills and not included "
           "in the figures above: in USD over the positions settled in a USD-like currency, and in its own currency "
           "for each coin-settled (inverse) one, never added together. See Orders & positions.")
    positions_ui.unrealized_cards(reported, why)

st.subheader("Value over the window")
edges = st.columns(4)
fmt.money_card(edges[0], "Opening value", totals["opening_value"], help="Cash and priced lots at the window's "
               "start, at the candle closes then (0 for all history).")
fmt.money_card(edges[1], "Deposits", totals["deposits"], help="Deposits (and opening balances) at their market "
               "value at their time: the value their lots were booked at.")
fmt.money_card(edges[2], "Withdrawals", totals["withdrawals"], help="At their market value at their time.")
fmt.money_card(edges[3], "Closing value", totals["closing_value"], help="Cash and priced lots at the window's end.")
st.markdown(fmt.literal(identity_line(totals)))

if summary.unmatched:  # one notice for every asset, not one box each
    st.warning("Disposed of with no acquisition on record, so counted with zero cost basis (history may be "
               "missing): " + "; ".join(f"{fmt.literal(asset)} {fmt.quantity(units)}"
                                        for asset, units in sorted(summary.unmatched.items())) + ".",
               icon=":material/warning:")
if summary.unpriced:
    st.warning("Unpriced (no market price; their market value and unrealized P&L are left out): "
               + ", ".join(map(fmt.literal, summary.unpriced)), icon=":material/help:")
if summary.notes:  # plain sentences that name asset codes; the two notices above are not repeated
    st.info("\n".join(f"- {fmt.literal(message)}" for message in summary.notes), icon=":material/info:")
with loaders.plain_errors("history notes"):
    notes = loaders.history_notes(viewer, client_id, connector_id)
for note in notes.opening:  # cost basis of these lots is the first sync's price, not what was paid
    st.info(fmt.literal(note), icon=":material/history:")

kept = loaders.scope_of(viewer), chosen  # with the picks and the database version: the kept drawings' key
data_key = loaders.data_key()
with loaders.plain_errors("P&L charts"):
    draw_realized(*kept, method, start, end, pool, data_key)

st.subheader("Equity")
with loaders.plain_errors("equity curve"):
    draw_equity(*kept, start, end, data_key)

st.subheader("Per asset")
with loaders.plain_errors("per-asset P&L"):
    draw_per_asset(*kept, method, start, end, pool, data_key)
st.caption(fmt.literal(footing_line(reports.pnl_footing(totals, summary.per_asset))))
assets = summary.per_asset.sort_values("market_value", ascending=False, na_position="last")
words = "all accounts of the selected client(s)" if connector_id is None else chosen.words()
stated = reports.stated_pnl(assets, words, METHODS[summary.method], summary.pool, start, end)
st.download_button(
    "Download CSV", fmt.csv_download(stated), file_name=f"pnl_{summary.method}.csv", mime="text/csv",
    icon=":material/download:", help="Per-asset figures as the table shows them (USD to the cent, quantities to 8 "
    "decimals) with the scope, method, pool and window (UTC days, both included; empty: all history) on every "
    "row; empty market value / unrealized means unpriced. USD-like cash is not a row (see the caption above).",
)
