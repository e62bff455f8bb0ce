"""Create, rename, list and delete clients."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from lib import audit
from lib.access import Role, Viewer
from lib.models import NAME_MAX, Client
from lib.validation import ValidationError, clean_text, look_alikes, pick_by_name, same_names


def _named(session: Session, name: str) -> Client | None:
    """The client whose name equals ``name`` ignoring case and Unicode form (see name_key)."""
    return pick_by_name(session.scalars(select(Client)), name, lambda c: c.name)


def _check_unique(session: Session, name: str, current: Client | None = None) -> None:
    """No other client has this name (see name_key) or one that looks like it (see look_alikes);
    a client keeping its own name is not compared, so look-alikes from before keep working."""
    others = [c for c in session.scalars(select(Client)) if current is None or c.id != current.id]
    same = same_names(others, name, lambda c: c.name)
    if same:
        raise ValidationError("name", f"A client named '{same[0].name}' already exists.")
    alike = [] if current is not None and name == current.name else look_alikes(others, name, lambda c: c.name)
    if alike:
        raise ValidationError("name", f"The name '{name}' looks like the existing client '{alike[0].name}' "
                                      "(characters that look alike); choose a clearly different name.")


def create_client(session: Session, viewer: Viewer, name: str) -> Client:
    viewer.require(Role.ADMIN)
    name = clean_text(name, "name", NAME_MAX)
    _check_unique(session, name)
    client = Client(name=name)
    session.add(client)
    session.flush()
    audit.record(session, viewer.username, "client.created", name)
    return client


def rename_client(session: Session, viewer: Viewer, client_id: int, new_name: str) -> Client:
    viewer.require(Role.ADMIN)
    client = get_client(session, client_id)
    new_name = clean_text(new_name, "name", NAME_MAX)
    _check_unique(session, new_name, current=client)
    audit.record(session, viewer.username, "client.renamed", f"{client.name} -> {new_name}")
    client.name = new_name
    return client


def delete_client(session: Session, viewer: Viewer, client_id: int) -> None:
    """Delete a client with its connectors and every row synced for them.

    Each connector's credentials get their own "credentials.removed" event, as when a
    connector is deleted alone, so the audit log answers "where did this key go?".
    """
    viewer.require(Role.ADMIN)
    client = get_client(session, client_id)
    for connector in client.connectors:
        audit.record(session, viewer.username, "credentials.removed",
                     connector.describe(), "client deleted")
    audit.record(session, viewer.username, "client.deleted", client.name,
                 f"{len(client.connectors)} connector(s) removed")
    session.delete(client)


def get_client(session: Session, client_id: int) -> Client:
    client = session.get(Client, client_id)
    if client is None:
        raise ValidationError("client", f"No client with id {client_id}.")
    return client


def find_client(session: Session, name: str) -> Client:
    client = _named(session, name or "")
    if client is None:
        raise ValidationError("client", f"No client named '{(name or '').strip()}'.")
    return client


def list_clients(session: Session, viewer: Viewer) -> list[Client]:
    query = select(Client).order_by(Client.name)
    if not viewer.sees_all_clients:
        query = query.where(Client.id.in_(viewer.client_ids))
    return list(session.scalars(query))
