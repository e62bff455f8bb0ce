"""The "Load demo data" button, offered on the welcome screen and the admin page."""

from __future__ import annotations

import streamlit as st

from lib import demo
from lib.access import Role, Viewer
from lib.ui.format import literal


def load_demo_button(viewer: Viewer) -> None:
    """Admins only: start the simulator, add the demo clients, sync them, then redraw."""
    if viewer.role is not Role.ADMIN or demo.is_loaded():
        return
    if not st.button("Load demo data", icon=":material/science:",
                     help="Starts a local exchange simulator and adds two demo clients with ordinary connectors."):
        return
    with st.status("Loading demo data…", expanded=True) as status:
        st.write("Starting the local exchange simulator and adding demo clients…")
        try:
            result = demo.load_demo(viewer)
        except demo.DemoError as error:
            status.update(label="Demo data was not loaded", state="error")
            st.error(literal(error))
            return
        report = result.report
        state = "complete" if report.failed == 0 else "error"
        status.update(label=f"Demo loaded: {report.successful}/{report.total} connectors synced", state=state)
    st.cache_data.clear()
    st.rerun()
