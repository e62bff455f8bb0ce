"""What ``make run`` starts: the dashboard (app.py) in Streamlit's ASGI app, with the session
cookie route, security headers and the set-up token of lib/ui/server.py.

``streamlit run serve.py`` finds ``app`` and serves it with uvicorn
(https://docs.streamlit.io/develop/api-reference/server/st.app); every ``--server.*`` option
and config.toml setting applies as to ``streamlit run app.py``.
"""

import streamlit as st

from lib.ui import server

app = st.App("app.py", routes=server.routes(), middleware=server.middleware(), lifespan=server.lifespan)
