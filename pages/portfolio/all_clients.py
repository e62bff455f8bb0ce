"""Clients: every client side by side for a period (admins and analysts), from lib.client_summary
(the same figures as ``python -m lib.cli clients``). Numbers stay numbers so every column sorts
numerically; the total sits apart from the table so sorting never moves it.
"""

from datetime import UTC, date, datetime, time, timedelta

import pandas as pd
import streamlit as st

from lib import client_summary
from lib.access import Role, Viewer
from lib.ui import format as fmt
from lib.ui import loaders, period, scope
from lib.ui.auth import current_viewer
from lib.ui.shell import require_role

METHODS = {"fifo": "FIFO", "average": "Average cost"}
#: how the P&L counts fees: the P&L page's own words for its Fees figure (PNL.md)
FEES_INSIDE = "Already inside proceeds and cost basis (PNL.md); shown for information, not subtracted again."
#: table column -> (label, help); USD columns are dollars with cents, counts whole numbers
USD = {
    "value_usd": ("Value", "Priced holdings now (latest balances), USD."),
    "change_24h": ("Value change 24h", "Value now minus 24 h ago, rebuilt from the history, deposits and "
                   "withdrawals included: not P&L (see Net); empty: no history that old."),
    "change_7d": ("Value change 7d", "Value now minus 7 days ago, deposits and withdrawals included: not P&L; "
                  "empty: no history that old."),
    "change_30d": ("Value change 30d", "Value now minus 30 days ago, deposits and withdrawals included: not P&L; "
                   "empty: no history that old."),
    "realized": ("Realized", "Disposals inside the period, after fees: the fees are already inside proceeds and "
                 "cost basis (PNL.md). Only this client's own trades, over all its accounts."),
    "unrealized_change": ("Unrealized change", "Unrealized P&L at the period's end minus at its start."),
    "net": ("Net", "Realized + change in unrealized, so after fees: the fees are already inside proceeds and cost "
            "basis (PNL.md), not subtracted again."),
    "volume_usd": ("Volume", "USD notional of the period's fills (quote valued at the fill's time), rounded to "
                   "the cent per account, market, side and day, as on the Activity page."),
    "fees_usd": ("Fees", "USD value of the period's trading fees, each at its currency's USD price that day, "
                 f"rounded to the cent per account, market, side and day, as on the Activity page. {FEES_INSIDE}"),
}
COUNTS = {
    "fills": ("Fills", "Fills in the period."),
    "accounts": ("Accounts", "Exchange accounts (connectors)."),
    "unbalanced_accounts": ("Unbalanced", "Accounts whose last successful sync found balances the synced history "
                            "does not explain (see Reconciliation)."),
}


@st.cache_data(ttl=loaders.TTL, show_spinner=False, max_entries=50)
def _summary(scope: loaders.Scope, start: date | None, end: date | None, method: str,
             key: tuple[str, str]) -> client_summary.ClientSummary:
    start_at = None if start is None else datetime.combine(start, time(), tzinfo=UTC)
    end_at = None if end is None else datetime.combine(end + timedelta(days=1), time(), tzinfo=UTC)
    return client_summary.client_summary(loaders.viewer_of(scope), start_at, end_at, method=method)


def load(viewer: Viewer, start: date | None, end: date | None, method: str) -> client_summary.ClientSummary:
    """Cached per viewer, period, method and data version (new synced data shows at once)."""
    return _summary(loaders.scope_of(viewer), start, end, method, loaders._key())


viewer = current_viewer()
require_role(viewer, Role.ADMIN, Role.ANALYST)

st.title("Clients")

first, second = st.columns([3, 2])
start, end = period.period_picker(first, "clients")
method = second.radio("P&L method", list(METHODS), format_func=METHODS.get, horizontal=True, key="clients_method")
window = period.period_text(start, end)

with loaders.plain_errors("clients"), st.spinner("Computing every client's figures…"):
    summary = load(viewer, start, end, method)
rows, total = summary.rows, summary.total
if rows.empty:
    st.info("No clients yet.")
    st.stop()

cards = [*st.columns(3), *st.columns(3)[:2]]  # two rows, so that every figure shows in full
third = fmt.CARD_CHARS * 4 // 3  # what a third-width card shows uncut
for card, (label, column, signed) in zip(cards, (
        ("Total value", "value_usd", False), ("Realized", "realized", True),
        ("Unrealized change", "unrealized_change", True), ("Volume", "volume_usd", False),
        ("Fees", "fees_usd", False)), strict=True):
    fmt.money_card(card, label, total[column], signed=signed, help=USD[column][1], chars=third)
st.caption(f"Totals over {len(rows):,} client(s) and {total['accounts']:,} account(s) "
           f"({total['unbalanced_accounts']:,} unbalanced); {METHODS[method]}, {window}. "
           "Each client's P&L comes from its own trades only, across all of its accounts and never mixed with "
           "another client's: the same figures the P&L page shows with that client picked.")

table = rows.assign(client=scope.client_links(rows))
config: dict[str, object] = {
    "client_id": None, "unpriced_activity": None,
    "client": scope.link_column("Client", "This client's Overview (the sidebar set to it).", pinned=True),
    "last_success_at": fmt.datetime_column("Last sync"),
}
config |= {c: st.column_config.NumberColumn(label, help=text, format="dollar") for c, (label, text) in USD.items()}
config |= {c: st.column_config.NumberColumn(label, help=text, format="%d") for c, (label, text) in COUNTS.items()}
st.dataframe(table[["client", *USD, *COUNTS, "last_success_at", "client_id", "unpriced_activity"]],
             hide_index=True, width="stretch", column_config=config)
st.caption("Last sync: the oldest last successful sync among the client's accounts (empty when one never synced).")

if summary.unpriced:
    st.warning("Unpriced (no market price; left out of values and unrealized P&L): "
               + ", ".join(map(fmt.literal, summary.unpriced)), icon=":material/help:")
if summary.unpriced_activity:
    st.warning("No USD price at the fill's time for " + ", ".join(map(fmt.literal, summary.unpriced_activity))
               + ": those fills' notional or fees are left out of volume and fees.", icon=":material/help:")

stated = pd.concat([rows.drop(columns="client_id").assign(row="client"), pd.DataFrame([{"row": "total", **total}])],
                   ignore_index=True)
stated = stated.assign(method=method, window_start=start.isoformat() if start else "",
                       window_end=end.isoformat() if end else "")
st.download_button("Download CSV", fmt.csv_download(stated), file_name="clients.csv", mime="text/csv",
                   icon=":material/download:", help="One row per client and a total row (column row), USD "
                   "amounts exact; the method and period (UTC days, both included; empty: all history) on every row.")
