"""Audit log: who did what and when (admins only). Never holds a secret."""

from datetime import timedelta

import streamlit as st

from lib.access import Role
from lib.models import utcnow
from lib.ui import user_admin
from lib.ui.auth import current_viewer
from lib.ui.format import csv_bytes, visible
from lib.ui.shell import require_role

viewer = current_viewer()
require_role(viewer, Role.ADMIN)

st.title("Audit log")
actions, actors = user_admin.audit_filters(viewer)
today = utcnow().date()
action_col, actor_col, days_col = st.columns(3)
chosen_actions = action_col.multiselect("Action", actions, placeholder="All actions")
actor = actor_col.selectbox("Who", [None, *actors], format_func=lambda a: "Anyone" if a is None else visible(a))
days = days_col.date_input("Days (UTC)", value=(today - timedelta(days=30), today), max_value=today,
                           format="YYYY-MM-DD")
picked = days if isinstance(days, tuple) else (days,)  # a range being picked has one day

frame = user_admin.audit_frame(viewer, chosen_actions, actor, picked[0] if picked else None,
                               picked[-1] if picked else None)
st.caption(f"{len(frame)} event(s), newest first.")
st.dataframe(user_admin.audit_table(frame), hide_index=True, width="stretch")
st.download_button(
    "Download CSV", csv_bytes(frame), file_name=f"audit-{today.isoformat()}.csv",
    mime="text/csv", icon=":material/download:", disabled=frame.empty,
)
