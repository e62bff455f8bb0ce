"""The frame around every page: start-up checks, the page list per role, the sidebar."""

from __future__ import annotations

import streamlit as st

from lib.access import Role, Viewer
from lib.clients import list_clients
from lib.db import session_scope
from lib.ui import auth, context, loaders, scope, sync_widgets
from lib.ui import format as fmt
from lib.ui.format import visible
from lib.vault import VaultError

SCOPE_KEY = scope.CLIENT_KEY

# (section, file, title, icon, roles allowed)
PAGES: list[tuple[str, str, str, str, tuple[Role, ...]]] = [
    ("Portfolio", "pages/portfolio/overview.py", "Overview", ":material/dashboard:", tuple(Role)),
    ("Portfolio", "pages/portfolio/balances.py", "Balances", ":material/account_balance_wallet:", tuple(Role)),
    ("Portfolio", "pages/portfolio/trades.py", "Trades", ":material/swap_horiz:", tuple(Role)),
    ("Portfolio", "pages/portfolio/orders.py", "Orders & positions", ":material/list_alt:", tuple(Role)),
    ("Portfolio", "pages/portfolio/pnl.py", "P&L", ":material/query_stats:", tuple(Role)),
    ("Portfolio", "pages/portfolio/asset.py", "Asset", ":material/toll:", tuple(Role)),
    ("Portfolio", "pages/portfolio/all_clients.py", "Clients", ":material/groups:", (Role.ADMIN, Role.ANALYST)),
    ("Portfolio", "pages/portfolio/activity.py", "Activity", ":material/bar_chart:", tuple(Role)),
    ("Portfolio", "pages/portfolio/reconciliation.py", "Reconciliation", ":material/rule:", tuple(Role)),
    ("Portfolio", "pages/portfolio/statements.py", "Statements", ":material/description:", tuple(Role)),
    ("Operations", "pages/operations/sync.py", "Sync", ":material/sync:", tuple(Role)),
    ("Admin", "pages/admin/clients.py", "Clients & keys", ":material/key:", (Role.ADMIN,)),
    ("Admin", "pages/admin/imports.py", "History imports", ":material/upload_file:", (Role.ADMIN,)),
    ("Admin", "pages/admin/users.py", "Users", ":material/group:", (Role.ADMIN,)),
    ("Admin", "pages/admin/audit.py", "Audit log", ":material/history:", (Role.ADMIN,)),
]


def bootstrap() -> None:
    """Migrate once, open the vault; a broken configuration stops with a clear message."""
    try:
        context.ready_database()
    except Exception as error:  # noqa: BLE001 - shown to the operator, not a traceback
        st.error(f"The database could not be prepared: {type(error).__name__}. Check DATABASE_URL and the logs.")
        st.stop()
    try:
        context.vault()
    except VaultError as error:
        st.error(f"Encryption keys: {error}")
        st.stop()


def admin_notices(viewer: Viewer) -> None:
    """Configuration warnings, for admins only: they can act on them, and other roles (clients'
    staff among them) should not learn how the install is set up."""
    if viewer.role is Role.ADMIN and context.vault().generated:
        st.warning(
            "A generated development encryption key is in use. Set ENCRYPTION_KEYS before "
            "storing real API keys (see the README).",
            icon=":material/warning:",
        )


def pages_for(viewer: Viewer) -> dict[str, list[st.Page]]:
    """The navigation this viewer gets; restricted pages re-check the role themselves."""
    sections: dict[str, list[st.Page]] = {}
    for section, path, title, icon, roles in PAGES:
        if viewer.role in roles:
            sections.setdefault(section, []).append(
                st.Page(path, title=title, icon=icon, default=title == "Overview")
            )
    return sections


def require_role(viewer: Viewer, *roles: Role) -> None:
    """First line of every restricted page: refuse and stop unless the role fits."""
    if viewer.role not in roles:
        st.error("You do not have access to this page.")
        st.stop()




def selected_client_id(viewer: Viewer) -> int | None:
    """The client chosen in the sidebar (None = every client the viewer may see)."""
    client_id = st.session_state.get(SCOPE_KEY) or None
    if client_id is not None and not viewer.can_see_client(client_id):
        return None
    return client_id


def current_scope(viewer: Viewer) -> scope.Scope:
    """The client and account chosen in the sidebar, re-checked against what the viewer may see
    (an account picked under "All clients" brings its client along)."""
    client_id = selected_client_id(viewer)
    connectors = loaders.connectors(viewer, client_id)
    connector_id = st.session_state.get(scope.ACCOUNT_KEY) or None
    row = connectors[connectors["id"] == connector_id] if connector_id is not None else connectors.iloc[:0]
    if not row.empty:
        first = row.iloc[0]
        return scope.Scope(int(first["client_id"]), fmt.visible(first["client"]), int(connector_id),
                           scope.account_label(first["exchange_id"], first["label"]))
    clients = loaders.clients(viewer)  # cached: no query per page run
    if client_id is None:  # "All clients" names the one client of a viewer who may see only one
        return scope.Scope(client=fmt.visible(clients["name"].iloc[0])) if len(clients) == 1 else scope.Scope()
    named = clients.loc[clients["id"] == client_id, "name"]
    return scope.Scope(client_id, fmt.visible(named.iloc[0]) if not named.empty else None)


#: ``?client=<name>`` in the URL picks that client (links from other pages; a shared URL)
CLIENT_PARAM = scope.CLIENT_PARAM


def _client_changed() -> None:
    """Another client: its accounts are other ones, so the account goes back to "All"."""
    st.session_state[scope.ACCOUNT_KEY] = scope.ALL


def _account_changed(owners: dict[int, int]) -> None:
    """An account picked under "All clients" picks its client too, so the URL names both."""
    connector_id = st.session_state.get(scope.ACCOUNT_KEY)
    if connector_id in owners and not st.session_state.get(SCOPE_KEY):
        st.session_state[SCOPE_KEY] = owners[connector_id]


def sidebar(viewer: Viewer) -> None:
    with session_scope() as session:
        clients = {c.id: visible(c.name) for c in list_clients(session, viewer)}
    # a viewer who may see one client picks nothing: "All clients" would read as if others existed
    only = next(iter(clients.values())) if len(clients) == 1 else None
    with st.sidebar:
        client_id = scope.pick(st, SCOPE_KEY, "Client", {} if only else clients, only or "All clients",
                               on_change=_client_changed)
        connectors = loaders.connectors(viewer, client_id)
        accounts = {int(r.id): scope.account_label(r.exchange_id, r.label) if client_id else
                    visible(f"{r.client} · {r.exchange_id} / {r.label}") for r in connectors.itertuples()}
        owners = {int(r.id): int(r.client_id) for r in connectors.itertuples()}
        scope.pick(st, scope.ACCOUNT_KEY, "Account", accounts, "All accounts",
                   on_change=lambda: _account_changed(owners))
        sync_widgets.sidebar_freshness(viewer, selected_client_id(viewer))
        auth.logout_button(viewer)
