"""Sync: every connector's freshness and last error, Force sync, retries, recent runs."""

import pandas as pd
import streamlit as st

from lib.settings import get_settings
from lib.sync.status import age_text, can_force_sync
from lib.ui import sync_widgets
from lib.ui.auth import current_viewer
from lib.ui.shell import selected_client_id

viewer = current_viewer()
client_id = selected_client_id(viewer)

st.title("Sync")
interval = get_settings().sync_interval_seconds
st.caption(f"Connectors sync every {interval} s. Amber: no successful sync for three intervals; "
           "red: the last sync failed.")

connectors = sync_widgets.freshness(viewer, client_id)
if not connectors:
    st.info("No exchange connectors in this scope yet.")
    st.stop()

if can_force_sync(viewer):
    left, middle, right = st.columns([1, 1, 2], vertical_alignment="bottom")
    with left:
        sync_widgets.force_sync_button(viewer, client_id=client_id, key="sync_scope",
                                       label="Force sync: this client" if client_id else "Force sync: everything")
    names = {r.connector_id: f"{r.client} · {r.exchange} / {r.label}" for r in connectors}
    with right:
        chosen = st.selectbox("One connector", list(names), format_func=names.__getitem__, key="sync_one_pick")
    with middle:
        sync_widgets.force_sync_button(viewer, connector_ids=[chosen], key="sync_one", label="Force sync: connector")

st.subheader("Connectors")
for row in sync_widgets.freshness(viewer, client_id):  # read again: a sync above cleared the cache
    line, button = st.columns([6, 1], vertical_alignment="center")
    line.markdown(f"{sync_widgets.LEVEL_MARK[row.level]} **{row.client}** · {row.exchange} / {row.label} — "
                  f"{sync_widgets.describe(row)}")
    if row.level == "failed" and can_force_sync(viewer):
        with button:
            sync_widgets.force_sync_button(viewer, connector_ids=[row.connector_id], label="Retry",
                                           key=f"retry_{row.connector_id}")

runs = sync_widgets.runs(viewer)
if runs:
    st.subheader("Recent runs")
    st.dataframe(
        pd.DataFrame([{
            "Started": age_text(r.started_at).removeprefix("synced "), "Trigger": r.trigger, "By": r.actor,
            "Connectors": r.total, "OK": r.successful, "Failed": r.failed,
            "Finished": "yes" if r.finished_at else "running or interrupted",
        } for r in runs]),
        hide_index=True,
    )
