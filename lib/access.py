"""Who is looking: the viewer that every data-access function takes and filters by."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"  # clients, keys, users, everything
    ANALYST = "analyst"  # reads all clients, forces syncs
    CLIENT = "client"  # reads only the clients assigned to the user


class AccessDenied(PermissionError):
    """The viewer may not do this; the message is safe to show."""


@dataclass(frozen=True)
class Viewer:
    username: str
    role: Role
    client_ids: frozenset[int] = frozenset()  # only meaningful for Role.CLIENT

    @property
    def sees_all_clients(self) -> bool:
        return self.role in (Role.ADMIN, Role.ANALYST)

    def can_see_client(self, client_id: int) -> bool:
        return self.sees_all_clients or client_id in self.client_ids

    def require(self, *roles: Role) -> None:
        if self.role not in roles:
            raise AccessDenied("You do not have permission to do this.")


#: The identity scripted tools (CLI, worker) act as.
SYSTEM = Viewer(username="system", role=Role.ADMIN)
