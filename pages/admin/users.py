"""Users: accounts, roles, client assignments, passwords (admins only)."""

import streamlit as st

from lib import users
from lib.access import Role
from lib.ui import user_admin
from lib.ui.auth import current_viewer
from lib.ui.format import literal, visible
from lib.ui.shell import require_role

viewer = current_viewer()
require_role(viewer, Role.ADMIN)

st.title("Users")
user_admin.show_flash()
rows = user_admin.user_rows(viewer)
clients = user_admin.client_names(viewer)
st.dataframe(user_admin.users_frame(rows), hide_index=True, width="stretch")
roles = [r.value for r in Role]

add_tab, edit_tab, password_tab = st.tabs(["Add user", "Edit user", "Reset password"])

with add_tab, st.form(user_admin.form_key("add"), clear_on_submit=True):
    username = st.text_input("Username")
    role = st.selectbox("Role", roles, index=roles.index(Role.ANALYST.value),
                        help="admin: everything; analyst: reads all clients, forces syncs; "
                             "client: reads only the clients assigned below")
    email = st.text_input("Email", help="Optional; single sign-on matches users by email.")
    assigned = st.multiselect("Clients (client role only)", list(clients), format_func=clients.get)
    password = st.text_input("Password", type="password", autocomplete="new-password",
                             help=f"At least {users.MIN_PASSWORD_LENGTH} characters. Leave empty for a "
                                  "single sign-on only account (needs an email).")
    confirm = st.text_input("Repeat the password", type="password", autocomplete="new-password")
    if st.form_submit_button("Add user", type="primary"):
        user_admin.next_form("add")
        if password != confirm:
            user_admin.reject("The two passwords differ.")

        def _add(session):
            user = users.create_user(session, viewer, username, role, password or None, email)
            if role == Role.CLIENT.value and assigned:
                users.set_clients(session, viewer, user.id, assigned)

        user_admin.change(_add, f"User '{username.strip()}' added.")

by_id = {r.id: r for r in rows}

with edit_tab:
    user_id = st.selectbox("User", list(by_id), format_func=lambda uid: visible(by_id[uid].username),
                           key="users_edit_pick")
    if user_id is not None:
        row = by_id[user_id]
        with st.form(user_admin.form_key(f"edit_{user_id}")):
            new_role = st.selectbox("Role", roles, index=roles.index(row.role))
            new_email = st.text_input("Email", value=row.email or "")
            new_clients = st.multiselect("Clients (client role only)", list(clients), default=list(row.client_ids),
                                         format_func=clients.get)
            active = st.toggle("Active", value=not row.disabled, help="A disabled user is logged out at once.")
            if st.form_submit_button("Save changes", type="primary"):
                user_admin.next_form(f"edit_{user_id}")

                def _edit(session):
                    users.set_email(session, viewer, user_id, new_email)
                    users.set_clients(session, viewer, user_id, new_clients)
                    users.set_role(session, viewer, user_id, new_role)
                    users.set_disabled(session, viewer, user_id, not active)

                user_admin.change(_edit, f"User '{row.username}' saved.")
        if row.locked_until and st.button(f"Unlock {literal(row.username)}", key="users_unlock"):
            user_admin.change(lambda session: users.unlock(session, viewer, user_id),
                              f"User '{row.username}' unlocked.")

with password_tab:
    user_id = st.selectbox("User", list(by_id), format_func=lambda uid: visible(by_id[uid].username),
                           key="users_pw_pick")
    if user_id is not None:
        with st.form(user_admin.form_key("password"), clear_on_submit=True):
            password = st.text_input("New password", type="password", autocomplete="new-password")
            confirm = st.text_input("Repeat the new password", type="password", autocomplete="new-password")
            if st.form_submit_button("Set password", type="primary"):
                user_admin.next_form("password")
                name = by_id[user_id].username
                if password != confirm:
                    user_admin.reject("The two passwords differ.")
                user_admin.change(lambda session: users.reset_password(session, viewer, user_id, password),
                                  f"New password set for '{name}'; a lockout, if any, is lifted.")
