"""What a database's rows make (an index, a frame), kept in this process and carried forward.

Reading a million fills or a year of snapshots takes about a second; a sync adds a few rows.
So ``PerDatabase`` keeps one value per database (URL and identity) with the write state it was
made at: asked again at the same state it is returned as it is; at a later one ``continued``
carries it forward from the rows added since, or says it cannot (None) and ``built`` makes it
anew. A value is kept only when nothing was committed while it was read, so the state it
names is exactly what it holds.

What is derived from such a value per connector (reconciliation's comparisons, the equity
curve's balances) is kept too and redone only for the connectors whose rows changed: each value
names every connector's rows with a ``revision``, a number this process never hands out twice,
so a connector whose revision is the one a derived figure was made from holds the same rows.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, Protocol, TypeVar

from sqlalchemy.orm import Session

from lib import queries
from lib.settings import get_settings

_REVISIONS = itertools.count(1)
_REVISIONS_LOCK = threading.Lock()


def revision() -> int:
    """A number never handed out before in this process: what a connector's rows are named by."""
    with _REVISIONS_LOCK:
        return next(_REVISIONS)


def revised(revisions: dict[int, int], connectors: Iterable[int]) -> dict[int, int]:
    """``revisions`` with one new revision for ``connectors`` (whose rows changed)."""
    changed = revision()
    return revisions | dict.fromkeys((int(c) for c in connectors), changed)


V = TypeVar("V")


class Recent(Generic[V]):
    """A few derived values by key (a database's URL and identity first), the newest kept: what is
    kept per connector beside ``PerDatabase``'s values (tests open many databases; a server has one)."""

    def __init__(self, at_most: int = 2) -> None:
        self._values: dict[Hashable, V] = {}
        self._at_most = at_most
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            return self._values.get(key)

    def put(self, key: Hashable, value: V) -> None:
        with self._lock:
            self._values.pop(key, None)
            self._values[key] = value
            while len(self._values) > self._at_most:
                self._values.pop(next(iter(self._values)))

    def clear(self) -> None:
        with self._lock:
            self._values.clear()

    def values(self) -> list[V]:
        """The values kept, oldest first."""
        with self._lock:
            return list(self._values.values())


class Made(Protocol):
    @property
    def made(self) -> queries.WriteState: ...


T = TypeVar("T", bound=Made)


def database_key(now: queries.WriteState) -> tuple[str, str]:
    """What values are kept by: the database's URL and identity."""
    return get_settings().database_url, now.identity


class PerDatabase(Generic[T]):
    """One value per database; at most ``at_most`` databases (tests open many; a server has one)."""

    def __init__(self, at_most: int = 2) -> None:
        self._values: Recent[T] = Recent(at_most)
        self._build_lock = threading.Lock()  # one build at a time: two at once would each hold a copy

    def clear(self) -> None:
        self._values.clear()

    def get(self, session: Session, now: queries.WriteState, built: Callable[[Session, queries.WriteState], T],
            continued: Callable[[Session, T, queries.WriteState], T | None]) -> T:
        """The value for the database at write state ``now`` (the session's, nothing uncommitted)."""
        key = database_key(now)
        with self._build_lock:
            kept = self._values.get(key)
            if kept is not None and kept.made == now:
                return kept
            made = (continued(session, kept, now) if kept is not None else None) or built(session, now)
            if queries.write_state(session) == now:  # nothing committed while it was read: keep it
                self._values.put(key, made)
        return made
