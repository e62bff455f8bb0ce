"""Provisioning commands: migrate, client, connector, vault."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys

from sqlalchemy import select

from lib import connectors
from lib.access import SYSTEM
from lib.cli import CommandError, _coverage, given, record_id
from lib.clients import create_client, delete_client, find_client, list_clients
from lib.db import migrate, session_scope
from lib.exchanges import credential_labels, required_credentials
from lib.models import LABEL_MAX, URL_MAX, Connector
from lib.validation import clean_text, clean_url
from lib.vault import Vault, VaultError, load_vault

#: ccxt credential name -> environment variable the CLI reads it from
CREDENTIAL_ENV = {
    "apiKey": "EXCHANGE_API_KEY",
    "secret": "EXCHANGE_SECRET",
    "password": "EXCHANGE_PASSWORD",
    "uid": "EXCHANGE_UID",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    subparsers.add_parser("migrate", help="apply database migrations").set_defaults(handler=_migrate)

    client = subparsers.add_parser("client", help="manage clients").add_subparsers(dest="action", required=True)
    add = client.add_parser("add", help="create a client")
    add.add_argument("name", type=given("name", "a client name"))
    add.set_defaults(handler=_client_add)
    listing = client.add_parser("list", help="list clients")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_client_list)
    remove = client.add_parser("remove", help="delete a client and all its data")
    remove.add_argument("name", type=given("name", "a client name"))
    remove.set_defaults(handler=_client_remove)

    connector = subparsers.add_parser("connector", help="manage exchange connectors").add_subparsers(
        dest="action", required=True
    )
    add = connector.add_parser("add", help="add a connector (credentials from EXCHANGE_* or prompts)")
    add.add_argument("--client", required=True, type=given("--client", "a client name"))
    add.add_argument("--exchange", required=True, type=given("--exchange", "an exchange id"))
    add.add_argument("--label", default="main", type=given("--label", "a label"))
    add.add_argument("--api-url", type=given("--api-url", "a URL (leave the option out for the exchange's own)"))
    add.add_argument("--sandbox", action="store_true")
    add.add_argument("--skip-test", action="store_true",
                     help="store without testing the key against the exchange first (exchange down, say)")
    add.add_argument("--no-sync", action="store_true", help="store without the immediate first sync")
    add.set_defaults(handler=_connector_add)
    listing = connector.add_parser("list", help="list connectors (keys masked)")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_connector_list)
    test = connector.add_parser("test", help="test a stored connector with a live fetch_balance")
    test.add_argument("id", type=record_id("connector"))
    test.set_defaults(handler=_connector_test)
    remove = connector.add_parser("remove", help="delete a connector and its synced data")
    remove.add_argument("id", type=record_id("connector"))
    remove.set_defaults(handler=_connector_remove)
    _coverage.add_parser(connector)

    vault = subparsers.add_parser("vault", help="encryption keys").add_subparsers(dest="action", required=True)
    vault.add_parser("rotate", help="re-encrypt every credential with the newest key").set_defaults(
        handler=_vault_rotate
    )


def _migrate(_args: argparse.Namespace) -> int:
    migrate()
    return 0


def _client_add(args: argparse.Namespace) -> int:
    with session_scope() as session:
        client = create_client(session, SYSTEM, args.name)
        print(f"client {client.id} created: {client.name}")
    return 0


def _client_list(args: argparse.Namespace) -> int:
    with session_scope() as session:
        rows = [
            {"id": c.id, "name": c.name, "connectors": len(c.connectors), "created_at": c.created_at.isoformat()}
            for c in list_clients(session, SYSTEM)
        ]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
    else:
        for row in rows:
            print(f"{row['id']:>4}  {row['name']}  ({row['connectors']} connector(s))")
    return 0


def _client_remove(args: argparse.Namespace) -> int:
    with session_scope() as session:
        client = find_client(session, args.name)
        delete_client(session, SYSTEM, client.id)
    print(f"client removed: {args.name.strip()}")
    return 0


def _read_credentials(exchange_id: str) -> dict[str, str]:
    """Each required credential from its EXCHANGE_* variable, else a hidden prompt."""
    exchange_id = connectors.check_exchange(exchange_id)
    credentials, labels = {}, credential_labels(exchange_id)
    for name in required_credentials(exchange_id):
        variable = CREDENTIAL_ENV.get(name, f"EXCHANGE_{name.upper()}")
        value = os.environ.get(variable)
        if value is None:
            if not sys.stdin.isatty():
                raise CommandError(f"{labels[name]} missing: set {variable}")
            value = getpass.getpass(f"{labels[name]}: ")
        credentials[name] = value
    return credentials


def _connector_add(args: argparse.Namespace) -> int:
    """What was typed on the command line is checked before any credential is asked for."""
    clean_text(args.label, "label", LABEL_MAX)
    clean_url(args.api_url, URL_MAX)
    with session_scope() as session:
        client_id = find_client(session, args.client).id
    data = connectors.ConnectorInput(
        exchange_id=args.exchange, label=args.label, credentials=_read_credentials(args.exchange),
        api_url=args.api_url, sandbox=args.sandbox,
    )
    vault = load_vault()
    if not args.skip_test:
        result = connectors.check_input(data)
        if not result.ok:
            raise CommandError(f"connection test failed: {result.message} Nothing was saved.")
    with session_scope() as session:
        connector = connectors.create_connector(session, SYSTEM, vault, client_id, data)
        connector_id, hint = connector.id, connectors.masked_key(connector)
    print(f"connector {connector_id} saved: {data.exchange_id} / {args.label.strip()} key {hint}")
    if not args.no_sync:
        from lib.cli.sync import print_sync_after_save

        return print_sync_after_save(connector_id)
    return 0


def _connector_rows() -> list[dict[str, object]]:
    """Masked rows; ``decryptable`` is None when the configured keys cannot even be loaded."""
    try:
        vault: Vault | None = load_vault()
    except VaultError:
        vault = None
    with session_scope() as session:
        return [
            {
                "id": c.id, "client": c.client.name, "exchange": c.exchange_id, "label": c.label,
                "key": connectors.masked_key(c), "enabled": c.enabled, "status": c.status,
                "supported": connectors.support_note(c) is None,
                "decryptable": vault.can_decrypt(c.credentials_ciphertext) if vault else None,
                "last_success_at": c.last_success_at.isoformat() if c.last_success_at else None,
                "last_error": c.last_error,
                "created_at": c.created_at.isoformat(), "updated_at": c.updated_at.isoformat(),
            }
            for c in session.scalars(select(Connector).order_by(Connector.id))
        ]


def _connector_list(args: argparse.Namespace) -> int:
    rows = _connector_rows()
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    for row in rows:
        note = "" if row["supported"] else "  [not supported by the installed ccxt]"
        note += "" if row["decryptable"] else "  [cannot decrypt with the configured keys]"
        print(f"{row['id']:>4}  {row['client']}  {row['exchange']}/{row['label']}  key {row['key']}  "
              f"{'enabled' if row['enabled'] else 'disabled'}  {row['status']}{note}")
    return 0


def _connector_test(args: argparse.Namespace) -> int:
    vault = load_vault()
    with session_scope() as session:
        spec = connectors.connection_spec(connectors.get_connector(session, args.id), vault)
    result = connectors.check_connection(spec)
    print(result.message, file=sys.stdout if result.ok else sys.stderr)
    return 0 if result.ok else 1


def _connector_remove(args: argparse.Namespace) -> int:
    with session_scope() as session:
        connectors.delete_connector(session, SYSTEM, args.id)
    print(f"connector {args.id} removed")
    return 0


def _vault_rotate(_args: argparse.Namespace) -> int:
    try:
        with session_scope() as session:
            count = connectors.rotate_all(session, SYSTEM, load_vault())
    except VaultError as error:
        raise CommandError(str(error)) from None
    print(f"re-encrypted {count} connector(s) with the newest key")
    return 0
