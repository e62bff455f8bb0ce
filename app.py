"""Entry point: settings check, migrations, login gate, navigation per role, shared sidebar.

``make run`` starts it through ``serve.py`` (session cookie route, security headers).
"""

import streamlit as st

from lib.settings import PROJECT_ROOT, SettingsError, get_settings

# A local file: a ":material/..." page icon makes every browser fetch it from fonts.gstatic.com.
st.set_page_config(page_title="Exchange dashboard", page_icon=str(PROJECT_ROOT / "static" / "favicon.svg"),
                   layout="wide")
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
shell.admin_notices(viewer)
navigation = st.navigation(shell.pages_for(viewer), expanded=True)  # every page listed, none behind "View more"
shell.sidebar(viewer)
navigation.run()
