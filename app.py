"""Entry point: settings check, migrations, login gate, navigation per role, shared sidebar."""

import streamlit as st

from lib.ui import auth, shell
from lib.ui.worker import ensure_background_worker

st.set_page_config(page_title="Exchange dashboard", page_icon=":material/monitoring:", layout="wide")

shell.bootstrap()
ensure_background_worker()  # scheduled sync inside `make run`; once per server process
viewer = auth.require_viewer()
navigation = st.navigation(shell.pages_for(viewer))
shell.sidebar(viewer)
navigation.run()
