"""Widgets of the "Clients & keys" admin page: client management and connector forms.

Secret inputs live only inside forms with ``clear_on_submit``, have no session-state key,
and are handed straight to lib.connectors; nothing secret is kept between reruns.
"""

from __future__ import annotations

import zlib

import pandas as pd
import streamlit as st

from lib import clients, connectors, exchanges, reports
from lib.access import Viewer
from lib.db import session_scope
from lib.models import LABEL_MAX, NAME_MAX, URL_MAX
from lib.sync import sync_connector
from lib.ui import context, loaders, sync_widgets
from lib.ui.format import MISSING, literal, text_width, visible
from lib.validation import ValidationError
from lib.vault import VaultError

FLASH_KEY = "admin_flash"


def flash(section: str, kind: str, message: str) -> None:
    """Keep a message for the next run, to be shown in ``section`` (beside the form that caused it)."""
    st.session_state[FLASH_KEY] = (section, kind, message)


def show_flash(section: str) -> None:
    """The message kept for ``section``: a plain sentence quoting names and exchange errors,
    so shown literally."""
    if st.session_state.get(FLASH_KEY, ("",))[0] != section:
        return
    _section, kind, message = st.session_state.pop(FLASH_KEY)
    message = literal(message)
    if kind == "success":
        st.success(message, icon=":material/check_circle:")
    elif kind == "error":
        st.error(message, icon=":material/error:")
    elif kind == "warning":
        st.warning(message, icon=":material/warning:")


def _client_options(viewer: Viewer) -> dict[int, str]:
    """Client names by id, as select options show them (plain text, invisible characters written out)."""
    with session_scope() as session:
        return {c.id: visible(c.name) for c in clients.list_clients(session, viewer)}


# --- clients ----------------------------------------------------------------------------

def clients_section(viewer: Viewer) -> None:
    show_flash("clients")
    with st.form("add_client", clear_on_submit=True):
        name = st.text_input("New client name", max_chars=NAME_MAX, placeholder="e.g. Sharp Foundation")
        if st.form_submit_button("Create client", type="primary"):
            try:
                with session_scope() as session:
                    client = clients.create_client(session, viewer, name)
                    flash("clients", "success", f"Client '{client.name}' created.")
                st.rerun()
            except ValidationError as error:
                st.error(literal(error))

    with session_scope() as session:
        rows = [
            {"Client": c.name, "Connectors": len(c.connectors), "Created": c.created_at}
            for c in clients.list_clients(session, viewer)
        ]
    if not rows:
        st.info("No clients yet. Create one above, then add its exchange keys.")
        return
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")

    options = _client_options(viewer)
    client_id = st.selectbox("Manage client", list(options), format_func=options.get, key="manage_client")
    with st.form("rename_client", clear_on_submit=True):
        new_name = st.text_input("Rename to", max_chars=NAME_MAX)
        if st.form_submit_button("Rename"):
            try:
                with session_scope() as session:
                    clients.rename_client(session, viewer, client_id, new_name)
                flash("clients", "success", f"Client renamed to '{new_name.strip()}'.")
                st.rerun()
            except ValidationError as error:
                st.error(literal(error))
    confirm = st.checkbox(
        f"Yes, delete '{literal(options[client_id])}' with all its connectors and synced data",
        key="confirm_delete_client",
    )
    if st.button("Delete client", disabled=not confirm, type="secondary"):
        with session_scope() as session:
            clients.delete_client(session, viewer, client_id)
        st.session_state.pop("confirm_delete_client", None)
        flash("clients", "success", f"Client '{options[client_id]}' deleted.")
        st.rerun()


# --- adding a connector -------------------------------------------------------------------

def _credential_inputs(form: str, exchange_id: str) -> list[str]:
    """One password input per credential ccxt requires; returns their session-state keys."""
    keys, labels = [], exchanges.credential_labels(exchange_id)
    for name in exchanges.required_credentials(exchange_id):
        key = f"{form}_{name}"
        st.text_input(labels[name], type="password", max_chars=4096, autocomplete="off", key=key)
        keys.append(key)
    return keys


def _take_secrets(form: str, exchange_id: str) -> dict[str, str]:
    """Read the submitted credentials and blank them in the session at once.

    Called from a submit callback (the only place Streamlit lets widget state be
    written), so no secret outlives the submit in st.session_state.
    """
    credentials = {}
    for name in exchanges.required_credentials(exchange_id):
        key = f"{form}_{name}"
        credentials[name] = st.session_state.get(key) or ""
        st.session_state[key] = ""
    return credentials


def add_connector_section(viewer: Viewer) -> None:
    """Client + exchange pickers, then the credential form for exactly that exchange."""
    options = _client_options(viewer)
    if not options:
        st.info("Create a client first (Clients tab).")
        return
    client_id = st.selectbox("Client", list(options), format_func=options.get, key="new_connector_client")
    exchange_id = st.selectbox(
        "Exchange", exchanges.supported_exchanges(), index=None, placeholder="Type to search the supported exchanges",
        key="new_connector_exchange",
    )
    if exchange_id is None:
        st.caption(f"{len(exchanges.supported_exchanges())} exchanges supported by the installed ccxt and plug-ins.")
        return
    # before saving: how much history the exchange keeps, so a short look-back is no surprise
    st.info("\n\n".join(literal(fact) for fact in reports.fills_lookback(exchange_id)), icon=":material/history:")
    with st.form("add_connector"):
        st.text_input("Label", value="main", max_chars=LABEL_MAX, key="add_connector_label",
                      help="Unique per client and exchange.")
        _credential_inputs("add_connector", exchange_id)
        if exchanges.supports_sandbox(exchange_id):
            st.toggle("Sandbox / testnet", key="add_connector_sandbox", help="Use the exchange's test environment.")
        with st.expander("Advanced"):
            st.text_input(
                "API base URL override", max_chars=URL_MAX, placeholder="https://gateway.example.com",
                key="add_connector_api_url",
                help="For proxies and gateways: every API URL of the exchange keeps its path on this base.",
            )
        st.caption("Secret fields are cleared after every submit and are never shown again.")
        left, right = st.columns(2)
        arguments = (viewer, client_id, options[client_id], exchange_id)
        left.form_submit_button("Test connection", width="stretch", on_click=_submit_connector,
                                args=(*arguments, False))
        right.form_submit_button("Save", type="primary", width="stretch", on_click=_submit_connector,
                                 args=(*arguments, True))
    show_flash("add_connector")


def _submit_connector(viewer: Viewer, client_id: int, client_name: str, exchange_id: str, save: bool) -> None:
    """Submit callback: validate, test, and (when saving) store; the outcome is flashed."""
    data = connectors.ConnectorInput(
        exchange_id, st.session_state.get("add_connector_label", ""), _take_secrets("add_connector", exchange_id),
        st.session_state.get("add_connector_api_url"), bool(st.session_state.get("add_connector_sandbox")),
    )
    flash("add_connector", *_test_and_store(viewer, client_id, client_name, data, save))


def _test_and_store(viewer: Viewer, client_id: int, client_name: str, data: connectors.ConnectorInput,
                    save: bool) -> tuple[str, str]:
    try:
        result = connectors.check_input(data)
    except ValidationError as error:
        return "error", str(error)
    if not result.ok:
        return "error", (f"Connection failed: {result.message} Nothing was saved." if save else result.message)
    if not save:
        return "success", result.message + " Re-enter the secrets and press Save to store them."
    try:
        with session_scope() as session:
            connector = connectors.create_connector(session, viewer, context.vault(), client_id, data)
            connector_id, name = connector.id, f"{connector.exchange_id} / {connector.label}"
    except ValidationError as error:
        return "error", str(error)
    return _first_sync(viewer, connector_id, f"Saved {name} for {client_name}.")


def _first_sync(viewer: Viewer, connector_id: int, saved: str) -> tuple[str, str]:
    """A saved key is synced at once, so its balances show without another step."""
    result = sync_connector(viewer, connector_id, trigger="save")
    st.cache_data.clear()
    if result.success:
        return "success", (f"{saved} First sync done: {result.balances} balance(s), "
                           f"{result.new_trades} fill(s), {result.open_orders} open order(s).")
    return "warning", f"{saved} The first sync failed: {result.error} It will be retried by the worker."


# --- the connector list and per-connector management ------------------------------------------

#: The Connectors table's columns: the connector (pinned while the rest scrolls), its state and last
#: error, then its key and URL and when it was updated, all in view beside the sidebar at 1,400 px (with
#: no error; a long one pushes the rest to the scrolled part)
CONNECTOR_COLUMNS = ("Client", "Exchange", "Label", "Status", "Last error", "Enabled", "Key", "API URL", "Updated",
                     "Created", "Extra symbols")
CONNECTOR_PINNED = ("Client", "Exchange", "Label")
#: the widest a text column of the Connectors table is drawn (px), as the grid's own sizing
TEXT_MAX_WIDTH = 500


def column_width(values: pd.Series, label: str) -> int:
    """A text column's width (px) that shows its longest value (or label) uncut, up to TEXT_MAX_WIDTH: the
    grid sizes a column to its first rows but leaves out any text twice their average, so one long
    status or error among short ones would be cut to the header's width."""
    return text_width(map(str, values), label, TEXT_MAX_WIDTH)


#: Connector.status as the Connectors table says it
CONNECTOR_STATUS = {"new": "not synced yet", "ok": "synced", "error": "last sync failed",
                    "attention": "needs attention"}


def connector_rows(viewer: Viewer) -> list[dict[str, object]]:
    with session_scope() as session:
        vault = context.vault()
        rows = []
        for client in clients.list_clients(session, viewer):
            for c in sorted(client.connectors, key=lambda c: (c.exchange_id, c.label)):
                unsupported = connectors.support_note(c)
                if unsupported:
                    status = unsupported
                elif not vault.can_decrypt(c.credentials_ciphertext):
                    status = "cannot decrypt with the configured keys"
                else:
                    status = CONNECTOR_STATUS.get(c.status, c.status)
                rows.append({
                    # CONNECTOR_COLUMNS' order: which connector, whether it works and why not, then
                    # the key beside its URL (both say where and as whom it signs in) and when it changed
                    "id": c.id, "Client": client.name, "Exchange": c.exchange_id, "Label": c.label,
                    "Status": status, "Last error": c.last_error or "", "Enabled": c.enabled,
                    "Key": connectors.masked_key(c), "API URL": shown_url(c.api_url), "Updated": c.updated_at,
                    "Created": c.created_at, "Extra symbols": shown_symbols(c.extra_symbols),
                    "api_url": c.api_url or "", "extra_symbols": c.extra_symbols,
                })
        return rows


#: What the Connectors table says for a connector without an API URL override
DEFAULT_URL = "(exchange default)"


def shown_url(url: str | None) -> str:
    """The API URL override as the table shows it: plain text, invisible characters written out.

    lib.validation.clean_url refuses ``user:password@host``; a URL stored before that check
    still has its user info masked here, so a password can never reach the table.
    """
    return visible(without_user_info(url, "***@")) if url else DEFAULT_URL


def without_user_info(url: str | None, mask: str = "") -> str:
    """``url`` with a ``user:password@`` before its host replaced by ``mask`` (a URL stored before
    lib.validation.clean_url refused them); the URL as it is otherwise, "" for none."""
    scheme, separator, rest = (url or "").partition("://")
    host, slash, path = rest.partition("/")
    if "@" not in host:
        return url or ""
    return f"{scheme}{separator}{mask}{host.rpartition('@')[2]}{slash}{path}"


def shown_symbols(symbols: str) -> str:
    """The extra symbols set in the settings form ("ETH/BTC, SOL/USDT"), or the missing dash."""
    return visible(", ".join(symbols.split(","))) if symbols else MISSING


def connectors_section(viewer: Viewer) -> None:
    show_flash("connectors")
    rows = connector_rows(viewer)
    if not rows:
        st.info("No connectors yet. Add a client's exchange API key in the 'Add connector' tab.")
        return
    table = pd.DataFrame(rows, columns=CONNECTOR_COLUMNS)
    st.dataframe(table, hide_index=True, width="stretch", column_config={
                     # the connector pinned while the rest scrolls; names, state and error sized to their text
                     **{label: st.column_config.TextColumn(label, width=column_width(table[label], label),
                                                           pinned=label in CONNECTOR_PINNED or None)
                        for label in (*CONNECTOR_PINNED, "Status", "Last error")},
                     "Created": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm z"),
                     "Updated": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm z"),
                     "API URL": st.column_config.TextColumn(
                         width="medium", help="A proxy or gateway the connector talks to instead of the "
                                              f"exchange's own API; {DEFAULT_URL} when there is none. "
                                              "It changes with the credentials."),
                     "Extra symbols": st.column_config.TextColumn(help="Set under Settings below.")})
    by_id = {r["id"]: r for r in rows}
    connector_id = st.selectbox(
        "Manage connector", list(by_id), key="manage_connector",
        format_func=lambda i: visible(f"{by_id[i]['Client']} · {by_id[i]['Exchange']} · {by_id[i]['Label']}"),
    )
    row = by_id[connector_id]
    left, right = st.columns(2)
    with left.form("edit_connector"):
        st.markdown("**Settings**")
        label = st.text_input("Label", value=str(row["Label"]), max_chars=LABEL_MAX)
        enabled = st.toggle("Enabled (synced by the worker)", value=bool(row["Enabled"]))
        symbols = st.text_input(
            "Extra symbols to sync", value=str(row["extra_symbols"]), placeholder="e.g. ETH/BTC, SOL/USDT",
            help="For exchanges that need a symbol per request (Binance): markets traded before the first "
                 "sync whose assets are no longer held are only found when listed here.")
        if st.form_submit_button("Save settings"):
            _apply(lambda s: connectors.update_connector(s, viewer, connector_id, label=label, enabled=enabled,
                                                         extra_symbols=symbols),
                   "Connector settings saved.")
    with right.form("replace_credentials"):
        st.markdown("**Replace credentials**")
        exchange_id = str(row["Exchange"])
        if exchanges.is_supported(exchange_id):
            _credential_inputs("replace_credentials", exchange_id)
            # the stored URL is in the key: when another admin changes it, the field shows the new one
            stored_url = without_user_info(row["api_url"])  # a legacy password never reaches the form or state
            url_key = f"replace_credentials_api_url_{connector_id}_{zlib.crc32(stored_url.encode())}"
            st.text_input("API base URL override", value=stored_url, max_chars=URL_MAX, key=url_key,
                          help="Empty: the exchange's own URLs. Changes only with re-entered credentials, "
                               "so a stored key is never sent to a new host.")
            st.form_submit_button("Replace credentials", on_click=_replace_credentials,
                                  args=(viewer, connector_id, exchange_id, url_key))
        else:
            st.caption("This exchange is not supported by the installed ccxt; credentials cannot be replaced.")
            st.form_submit_button("Replace credentials", disabled=True)
    with st.expander("History coverage"):
        coverage = loaders.coverage(viewer, connector_id=connector_id)
        if coverage:
            sync_widgets.coverage_table(coverage[0], reference=True)  # an admin page: the docs reference too
        else:
            st.caption("Nothing fetched yet: the first sync fills this in.")
    confirm = st.checkbox("Yes, delete this connector and everything synced from it", key="confirm_delete_connector")
    if st.button("Delete connector", disabled=not confirm):
        st.session_state.pop("confirm_delete_connector", None)
        _apply(lambda s: connectors.delete_connector(s, viewer, connector_id), "Connector deleted.")


def _replace_credentials(viewer: Viewer, connector_id: int, exchange_id: str, url_key: str) -> None:
    """Submit callback: store re-entered credentials; they leave the session at once."""
    credentials = _take_secrets("replace_credentials", exchange_id)
    try:
        with session_scope() as session:
            connectors.replace_credentials(session, viewer, context.vault(), connector_id, credentials,
                                           st.session_state.get(url_key))
        flash("connectors", "success", "Credentials replaced; the old ones are gone.")
    except ValidationError as error:
        flash("connectors", "error", str(error))


def _apply(change, success: str) -> None:  # noqa: ANN001 - a function of the session
    """Run one change in one transaction; a validation error changes nothing and is shown."""
    try:
        with session_scope() as session:
            change(session)
        flash("connectors", "success", success)
    except (ValidationError, VaultError) as error:
        flash("connectors", "error", str(error))
    st.rerun()
