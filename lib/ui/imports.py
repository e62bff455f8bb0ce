"""Widgets of the "History imports" admin page: upload a CSV for a connector, check, import, list.

The file stays in the uploader between "Check file" and "Import"; both run the whole check
(lib.imports), so what is imported is exactly what was checked. Every message quotes the
file and is shown literally.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from lib import imports, queries
from lib.access import Viewer
from lib.db import session_scope
from lib.ui.format import MISSING, datetime_column, literal, visible
from lib.validation import ValidationError

KIND_LABELS = {"fills": "Fills", "transfers": "Deposits & withdrawals"}


def _connector_names(viewer: Viewer) -> dict[int, str]:
    with session_scope() as session:
        frame = queries.connectors(session, viewer)
    return {int(r.id): visible(f"{r.client} · {r.exchange_id} / {r.label} (#{r.id})") for r in frame.itertuples()}


def import_form(viewer: Viewer) -> None:
    """Connector and kind pickers, then the file with its check and import buttons."""
    names = _connector_names(viewer)
    if not names:
        st.info("No connectors yet. Add one on the Clients & keys page first.")
        return
    connector_id = st.selectbox("Connector", list(names), format_func=names.get, key="import_connector")
    kind = st.radio("Rows in the file", imports.KINDS, format_func=KIND_LABELS.get, horizontal=True,
                    key="import_kind")
    st.caption(f"Columns: {', '.join(imports.REQUIRED[kind])}; optional: {', '.join(imports.OPTIONAL[kind])}. "
               f"UTF-8, at most {imports.MAX_ROWS:,} rows and {imports.MAX_BYTES // 2**20} MB per file; "
               "timestamp in UTC, ISO-8601 (2024-01-31T14:05:00Z, or a day: 2024-01-31) or epoch milliseconds; "
               "a line that cannot be read is named, and then nothing is imported.")
    with st.form("history_import"):
        upload = st.file_uploader("CSV file", type=["csv"])
        left, right = st.columns(2)
        check = left.form_submit_button("Check file", width="stretch")
        store = right.form_submit_button("Import", type="primary", width="stretch")
    if (check or store) and upload is None:
        st.error("Choose a CSV file first.")
    elif check:
        with st.spinner("Checking every row…"):
            _check(viewer, connector_id, kind, upload.getvalue())
    elif store:
        with st.spinner("Checking and importing every row…"):
            _import(viewer, connector_id, kind, upload.name, upload.getvalue())


def _check(viewer: Viewer, connector_id: int, kind: imports.Kind, data: bytes) -> None:
    try:
        with session_scope() as session:
            found = imports.preview(session, viewer, connector_id, kind, data)
            previous = (f" This file was imported before (import #{found.previous.id}, "
                        f"{found.previous.imported_at:%Y-%m-%d %H:%M} UTC)." if found.previous else "")
    except ValidationError as error:
        st.error(literal(error), icon=":material/error:")
        return
    st.info(literal(f"{found.rows} row(s) from {imports.day(found.first_timestamp)} – "
                    f"{imports.day(found.last_timestamp)} (UTC); {found.new_rows} not yet stored, "
                    f"{found.rows - found.new_rows} already stored (skipped).{previous} "
                    "Press Import to store them."), icon=":material/fact_check:")


def _import(viewer: Viewer, connector_id: int, kind: imports.Kind, filename: str, data: bytes) -> None:
    try:
        with session_scope() as session:
            result = imports.import_file(session, viewer, connector_id, kind, filename, data, via="page")
    except ValidationError as error:
        st.error(literal(error), icon=":material/error:")
        return
    st.cache_data.clear()  # pages show the new rows at once
    st.success(literal(result.message()), icon=":material/check_circle:")


def past_imports(viewer: Viewer) -> None:
    with session_scope() as session:
        frame = queries.history_imports(session, viewer)
    if frame.empty:
        st.caption("No imports yet.")
        return
    st.dataframe(pd.DataFrame({
        "#": frame["id"], "Imported": frame["imported_at"],
        "Connector": [visible(f"{r.client} · {r.exchange_id} / {r.label}") for r in frame.itertuples()],
        "Rows of": frame["kind"].map(KIND_LABELS), "File": frame["filename"].map(visible),
        "Rows": frame["rows"], "New": frame["new_rows"],
        "From (UTC)": frame["first_timestamp"].map(lambda ms: MISSING if pd.isna(ms) else imports.day(int(ms))),
        "To (UTC)": frame["last_timestamp"].map(lambda ms: MISSING if pd.isna(ms) else imports.day(int(ms))),
        "By": frame["actor"].map(visible),
    }), hide_index=True, width="stretch", column_config={"Imported": datetime_column("Imported")})
