"""Sync: every connector's freshness and last error, Force sync, retries, history coverage, recent runs."""

from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from lib.access import Role
from lib.settings import get_settings
from lib.sync.status import can_force_sync
from lib.ui import format as fmt
from lib.ui import loaders, scope, sync_widgets
from lib.ui.auth import current_viewer
from lib.ui.format import visible
from lib.ui.shell import current_scope

#: SyncRun.trigger as the Recent runs table says it
TRIGGERS = {"worker": "scheduled", "force": "Force sync", "cli": "command line", "save": "key saved"}

viewer = current_viewer()
chosen = current_scope(viewer)
client_id = chosen.client_id  # connectors are listed per client, each named with its account

scope.title("Sync", scope.Scope(client_id, chosen.client))
interval = get_settings().sync_interval_seconds
st.caption(f"Connectors sync every {interval} s. Overdue: no successful sync for three intervals; "
           "failing: the last sync failed.")

connectors = sync_widgets.freshness(viewer, client_id)
if not connectors:
    st.info("No exchange connectors in this scope yet.")
    st.stop()

REQUEST_KEY = "sync_request"


def request_sync(**scope: object) -> None:
    """Button callback: remember what to sync; it runs below the buttons, full width."""
    st.session_state[REQUEST_KEY] = scope


if can_force_sync(viewer):
    names = {r.connector_id: visible(f"{r.client} · {r.exchange} / {r.label}") for r in connectors}
    whole, one, pick = st.columns([1, 1, 2], vertical_alignment="bottom")
    whole.button("Force sync: this client" if client_id else "Force sync: everything", key="sync_scope",
                 icon=":material/sync:", on_click=request_sync, kwargs={"client_id": client_id})
    picked = pick.selectbox("One connector", list(names), format_func=names.__getitem__, key="sync_one_pick")
    one.button("Force sync: connector", key="sync_one", icon=":material/sync:", on_click=request_sync,
               kwargs={"connector_ids": [picked]})
requested = st.session_state.pop(REQUEST_KEY, None)
if requested is not None:
    sync_widgets.run_force_sync(viewer, **requested)

st.subheader("Connectors")
rows = sync_widgets.freshness(viewer, client_id)  # read again: a sync above cleared the cache
if rows:  # one table: what needs a look first (failing, overdue, never synced), then by client and account
    sync_widgets.connectors_table(rows)
else:
    st.caption("No exchange connectors yet.")
failing = [r.connector_id for r in rows if r.level == "failed"]
if failing and can_force_sync(viewer):
    st.button(f"Retry the {len(failing)} failing connector(s)", key="sync_retry", icon=":material/replay:",
              on_click=request_sync, kwargs={"connector_ids": failing})

st.subheader("History coverage")
st.caption("Per connector and data kind: the range fetched, the oldest date the exchange still keeps, windows "
           "that failed (the next sync retries them), the last walk that reached now, and why the oldest date is "
           "what it is. "
           f"*{sync_widgets.NOT_PUBLISHED}*: the exchange does not say how long it keeps that data; "
           f"{fmt.MISSING}: the cell does not apply (balances, CSV imports) or nothing is fetched yet.")
#: the look-back rule's documentation reference is a developer's: admins see it, others the reason in words
reference = viewer.role is Role.ADMIN
with loaders.plain_errors("history coverage"):
    coverage = loaders.coverage(viewer, client_id)
# one table for every connector, not an expander each: 200 expanders cost the browser ~300 ms a visit
overview = sync_widgets.coverage_overview(rows, coverage, reference=reference)
if overview.failing:
    st.warning(f"{overview.failing} connector{' has' if overview.failing == 1 else 's have'} failed windows: "
               "they are listed first, and the next sync retries them.", icon=":material/warning:")
st.dataframe(overview.frame, hide_index=True, width="stretch",
             column_config=sync_widgets.coverage_column_config(overview.frame.columns))
if overview.walked:
    walked = {item.connector_id: item for item in overview.walked}  # failed windows first
    shown = st.selectbox("Markets walked: connector", list(walked), key="coverage_pick",
                         format_func=lambda connector_id: visible(walked[connector_id].name),
                         help="One connector's coverage and every market walked, as its details show them.")
    sync_widgets.coverage_table(walked[shown], reference=reference)

runs = sync_widgets.runs(viewer)
if runs:
    st.subheader("Recent runs")
    now = datetime.now(UTC)
    started = [r.started_at if r.started_at.tzinfo else r.started_at.replace(tzinfo=UTC) for r in runs]  # SQLite: naive
    st.dataframe(
        fmt.table(pd.DataFrame([{
            "Started": at, "Age": (now - at).total_seconds(), "Trigger": TRIGGERS.get(r.trigger, r.trigger),
            "By": r.actor,
            "Connectors": r.total, "OK": r.successful, "Failed": r.failed,
            "Finished": "yes" if r.finished_at else "running or interrupted",
        } for r, at in zip(runs, started, strict=True)]), {"Age": fmt.ago}),
        hide_index=True, placeholder=fmt.MISSING,
        column_config={"Started": fmt.datetime_column("Started"), "Age": fmt.number_column("Age"),
                       **{label: fmt.number_column(label, format="%d") for label in ("Connectors", "OK", "Failed")}},
    )
