"""History imports: CSV files of fills and transfers the exchange no longer serves (admins only)."""

import streamlit as st

from lib.access import Role
from lib.ui import imports
from lib.ui.auth import current_viewer
from lib.ui.shell import require_role

viewer = current_viewer()
require_role(viewer, Role.ADMIN)

st.title("History imports")
st.caption("Older fills, deposits and withdrawals than the exchange still serves, from a CSV file. Every row is "
           "checked first: one bad row and nothing of the file is stored. Rows already stored (synced or "
           "imported before) are skipped.")
imports.import_form(viewer)
st.subheader("Past imports")
imports.past_imports(viewer)
