"""Clients & keys: clients, their exchange connectors, and the credentials behind them."""

import streamlit as st

from lib.access import Role
from lib.ui import admin
from lib.ui.auth import current_viewer
from lib.ui.demo import load_demo_button
from lib.ui.shell import require_role

viewer = current_viewer()
require_role(viewer, Role.ADMIN)

st.title("Clients & keys")
connectors_tab, add_tab, clients_tab = st.tabs(["Connectors", "Add connector", "Clients"])
with connectors_tab:
    admin.connectors_section(viewer)
with add_tab:
    admin.add_connector_section(viewer)
with clients_tab:
    admin.clients_section(viewer)
    st.divider()
    st.caption("Try the dashboard without real keys: demo clients backed by a local exchange simulator.")
    load_demo_button(viewer)
