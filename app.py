"""Entry point: settings check, migrations, login gate, navigation per role, shared sidebar."""

import streamlit as st

from lib.ui import auth, shell

st.set_page_config(page_title="Exchange dashboard", page_icon=":material/monitoring:", layout="wide")

shell.bootstrap()
viewer = auth.require_viewer()
navigation = st.navigation(shell.pages_for(viewer))
shell.sidebar(viewer)
navigation.run()
