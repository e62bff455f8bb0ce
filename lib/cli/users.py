"""User commands: ``user add|list|reset-password|disable|enable|unlock|assign``.

Passwords come from ``DASHBOARD_PASSWORD`` or a hidden prompt (typed twice), never from
an argument (it would sit in the shell history and the process list) and are never printed.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys

from lib import users
from lib.access import SYSTEM, Role
from lib.cli import CommandError, given
from lib.clients import find_client
from lib.db import session_scope

PASSWORD_ENV = "DASHBOARD_PASSWORD"
USERNAME = given("username", "a user name")


def register(subparsers: argparse._SubParsersAction) -> None:
    user = subparsers.add_parser("user", help="manage dashboard users").add_subparsers(dest="action", required=True)

    add = user.add_parser("add", help=f"create a user (password from {PASSWORD_ENV} or a prompt)")
    add.add_argument("username", type=USERNAME)
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--email", type=given("--email", "an address"), help="matched against the single sign-on email")
    add.add_argument("--no-password", action="store_true", help="single sign-on only (needs --email)")
    add.set_defaults(handler=_add)

    listing = user.add_parser("list", help="list users")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_list)

    reset = user.add_parser("reset-password", help=f"set a new password ({PASSWORD_ENV} or a prompt); unlocks")
    reset.add_argument("username", type=USERNAME)
    reset.set_defaults(handler=_reset_password)

    for name, handler, text in (("disable", _disable, "disable a user (logged out at once)"),
                                ("enable", _enable, "enable a disabled user"),
                                ("unlock", _unlock, "lift a lockout after failed logins")):
        command = user.add_parser(name, help=text)
        command.add_argument("username", type=USERNAME)
        command.set_defaults(handler=handler)

    assign = user.add_parser("assign", help="let a client-role user see a client")
    assign.add_argument("username", type=USERNAME)
    assign.add_argument("--client", required=True, type=given("--client", "a client name"), help="client name")
    assign.set_defaults(handler=_assign)


def _read_password() -> str:
    """From the environment, else typed twice at a hidden prompt; checked before any change."""
    password = os.environ.get(PASSWORD_ENV)
    if password is None:
        if not sys.stdin.isatty():
            raise CommandError(f"password missing: set {PASSWORD_ENV} or run in a terminal")
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat the password: ") != password:
            raise CommandError("the two passwords differ")
    return users.check_password(password)


def _add(args: argparse.Namespace) -> int:
    password = None if args.no_password else _read_password()
    with session_scope() as session:
        user = users.create_user(session, SYSTEM, args.username, args.role, password, args.email)
        print(f"user {user.id} created: {user.username} ({user.role})")
    return 0


def _list(args: argparse.Namespace) -> int:
    with session_scope() as session:
        rows = []
        for user in users.list_users(session, SYSTEM):
            clients = [c.name for c in users.assigned_clients(session, SYSTEM, user.id)]
            rows.append({
                "id": user.id, "username": user.username, "email": user.email, "role": user.role,
                "disabled": user.disabled, "locked": users.is_locked(user), "clients": clients,
                "password": user.password_hash is not None,
                "last_login_at": user.last_login_at.isoformat() if user.last_login_at else None,
                "created_at": user.created_at.isoformat(),
            })
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    for row in rows:
        state = "disabled" if row["disabled"] else "locked" if row["locked"] else "active"
        scope = f"  clients: {', '.join(row['clients']) or 'none'}" if row["role"] == Role.CLIENT else ""
        print(f"{row['id']:>4}  {row['username']}  {row['role']}  {state}{scope}")
    return 0


def _reset_password(args: argparse.Namespace) -> int:
    password = _read_password()
    with session_scope() as session:
        users.reset_password(session, SYSTEM, users.find_user(session, args.username).id, password)
    print(f"password reset for {args.username.strip()}")
    return 0


def _disable(args: argparse.Namespace) -> int:
    with session_scope() as session:
        users.set_disabled(session, SYSTEM, users.find_user(session, args.username).id, True)
    print(f"user disabled: {args.username.strip()}")
    return 0


def _enable(args: argparse.Namespace) -> int:
    with session_scope() as session:
        users.set_disabled(session, SYSTEM, users.find_user(session, args.username).id, False)
    print(f"user enabled: {args.username.strip()}")
    return 0


def _unlock(args: argparse.Namespace) -> int:
    with session_scope() as session:
        users.unlock(session, SYSTEM, users.find_user(session, args.username).id)
    print(f"user unlocked: {args.username.strip()}")
    return 0


def _assign(args: argparse.Namespace) -> int:
    with session_scope() as session:
        user = users.find_user(session, args.username)
        if user.role != Role.CLIENT:
            raise CommandError(f"{user.username} has role {user.role}, which sees every client already")
        client = find_client(session, args.client)
        users.assign_client(session, SYSTEM, user.id, client.id)
        print(f"{user.username} can now see client {client.name}")
    return 0
