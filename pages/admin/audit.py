"""Audit log: who did what and when (admins only). Never holds a secret."""

import streamlit as st

from lib.access import Role
from lib.models import utcnow
from lib.ui import period, user_admin
from lib.ui.auth import current_viewer
from lib.ui.format import csv_download, visible
from lib.ui.shell import require_role

viewer = current_viewer()
require_role(viewer, Role.ADMIN)

st.title("Audit log")
actions, actors = user_admin.audit_filters(viewer)
today = utcnow().date()
action_col, actor_col = st.columns(2)
# Actions in words, filtering by their codes; the CSV keeps the codes (machines read it).
chosen_actions = action_col.multiselect("Action", actions, format_func=user_admin.audit_action,
                                        placeholder="All actions")
actor = actor_col.selectbox("Who", [None, *actors], format_func=lambda a: "Anyone" if a is None else visible(a))
start, end = period.date_range(st.columns(2)[0], "audit", label="Days (UTC)", default="Last 30 days")

frame = user_admin.audit_frame(viewer, chosen_actions, actor, start, end)
st.caption(f"{len(frame)} event(s), newest first.")
st.dataframe(user_admin.audit_table(frame), hide_index=True, width="stretch")
st.download_button(
    "Download CSV", csv_download(frame), file_name=f"audit-{today.isoformat()}.csv",
    mime="text/csv", icon=":material/download:", disabled=frame.empty,
)
