"""Statements: a client's month-end statements as the worker kept them, and one made on demand.

Client users see only their own clients (lib.statement_store and lib.statements check the
viewer); admins and analysts any client's. The kept files are downloaded as stored, so a
revised month shows the revision it was sent as.
"""

import streamlit as st

from lib import statement_store, statements
from lib.access import AccessDenied
from lib.clients import list_clients
from lib.db import session_scope
from lib.models import utcnow
from lib.statement_render import FontMissing, to_html, to_pdf
from lib.ui import format as fmt
from lib.ui import loaders
from lib.ui.auth import current_viewer
from lib.ui.shell import selected_client_id

#: months offered for an on-demand statement, counting back from the current one
MONTHS_OFFERED = 36

viewer = current_viewer()
with session_scope() as session:
    names = {c.id: c.name for c in list_clients(session, viewer)}

if not names:
    st.title("Statements")
    st.info("No client to show statements for: none is assigned to you yet.")
    st.stop()
chosen = selected_client_id(viewer)  # the sidebar's client: a statement is one client's, the page has no picker
client_id = chosen if chosen in names else next(iter(names)) if len(names) == 1 else None
if client_id is None:
    st.title("Statements")
    st.info("A statement is one client's: pick the client in the sidebar.", icon=":material/arrow_back:")
    st.stop()
st.title(f"Statements · {fmt.literal(names[client_id])}")
st.caption(fmt.literal(f"Statements of {names[client_id]}. Month-end statements are made by the worker once a "
                       "month has closed (UTC) and revised when data dated in that month arrives later."))

st.subheader("Kept month-end statements")
with loaders.plain_errors("statements"), session_scope() as session:
    kept = statement_store.list_kept(session, viewer, client_id)
if not kept:
    st.info("No month-end statement is kept for this client yet: the worker makes them after a month with "
            "activity has closed.")
else:
    st.dataframe(
        [{"Period": k.period, "Revision": k.revision,
          "Revised": "Yes: data for the month arrived after it closed" if k.revision > 1 else "No",
          "Generated": k.generated_at} for k in kept],
        column_config={"Generated": fmt.datetime_column("Generated")}, hide_index=True)
    by_period = {k.period: k for k in kept}
    period = st.selectbox("Period to download", list(by_period))
    item = by_period[period]
    with loaders.plain_errors("statement"), session_scope() as session:
        html_bytes = statement_store.kept_file(session, viewer, item.id, "html")
        pdf_bytes = statement_store.kept_file(session, viewer, item.id, "pdf")
    left, right = st.columns(2)
    stem = f"statement-{client_id}-{period}-r{item.revision}"
    left.download_button("Download HTML", html_bytes, f"{stem}.html", "text/html", key="kept-html")
    right.download_button("Download PDF", pdf_bytes, f"{stem}.pdf", "application/pdf", key="kept-pdf")  # as below

st.subheader("On demand")
now = utcnow()
months = [statements.month_of(now)]
while len(months) < MONTHS_OFFERED:
    months.append(statements.month_of(statements.month_window(months[-1])[0] - statements.ONE_MS))
with st.form("on-demand"):
    month = st.selectbox("Month", months, help="The current month runs up to now.")
    made = st.form_submit_button("Generate")
if made:
    start, end = statements.month_window(month)
    try:
        with st.spinner("Computing the statement…"):
            data = statements.gather(viewer, client_id, start, min(end, now), month)
    except AccessDenied as error:
        st.error(str(error))
        st.stop()
    try:
        pdf: bytes | str = to_pdf(data)
    except FontMissing as error:
        pdf = str(error)
    st.session_state["statement-on-demand"] = (client_id, month, to_html(data), pdf, data.generated_at,
                                               end > now)
held = st.session_state.get("statement-on-demand")
if held is not None and held[0] == client_id:
    _, month, page, pdf, generated_at, partial = held
    st.caption(f"Made {fmt.moment(generated_at)} for {month}" + (", up to that moment" if partial else "")
               + "; not kept.")
    left, right = st.columns(2)
    left.download_button("Download HTML", page.encode(), f"statement-{client_id}-{month}.html", "text/html",
                         key="demand-html")
    if isinstance(pdf, bytes):
        right.download_button("Download PDF", pdf, f"statement-{client_id}-{month}.pdf", "application/pdf",
                              key="demand-pdf")
    else:
        right.warning(pdf)
