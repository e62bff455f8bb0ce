"""What a dialect sees of a request and what it answers, without any aiohttp in between.

Keeping the dialects as plain functions from ``Call`` to ``Reply`` makes them easy to
read against the exchanges' documentation and leaves transport tricks to the server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lib.simulator.accounts import SimAccount, World
from lib.simulator.ledger import Ledger


@dataclass(frozen=True)
class Reply:
    status: int
    payload: Any
    headers: Mapping[str, str] = field(default_factory=dict)


class ApiError(Exception):
    """Raised by a dialect handler to answer with the exchange's own error shape."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.payload)
        self.reply = reply


@dataclass
class Call:
    """One request after the dialect prefix was stripped; ``account`` is set once signed."""

    world: World
    method: str
    path: str
    raw_path_qs: str
    raw_query: str
    params: dict[str, str]
    headers: Mapping[str, str]
    body: str
    now: int
    account: SimAccount | None = None

    @property
    def ledger(self) -> Ledger:
        assert self.account is not None, "private handler without an authenticated account"
        return self.world.ledger(self.account.id)
