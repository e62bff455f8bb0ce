"""Entry point: settings check, migrations, login gate, navigation per role, shared sidebar."""

import streamlit as st

from lib.settings import SettingsError, get_settings

st.set_page_config(page_title="Exchange dashboard", page_icon=":material/monitoring:", layout="wide")
try:
    get_settings()
except SettingsError as error:  # before the pages' modules, which read settings when imported
    st.error(f"Configuration: {error} Fix it in the environment, .env or .streamlit/secrets.toml.")
    st.stop()

from lib.ui import auth, shell  # noqa: E402 - imported once the settings are known to be usable
from lib.ui.worker import ensure_background_worker  # noqa: E402

shell.bootstrap()
ensure_background_worker()  # scheduled sync inside `make run`; once per server process
viewer = auth.require_viewer()
navigation = st.navigation(shell.pages_for(viewer))
shell.sidebar(viewer)
navigation.run()
