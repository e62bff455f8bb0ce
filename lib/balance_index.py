"""Every (connector, asset) balance at any moment by binary search, kept live as syncs add fills.

The equity curve, the value changes and reconciliation ask for the balances ``lib.rebuild``'s
moves imply at many moments (every day of a year for every account, every daily snapshot). A
``BalanceIndex`` holds the moves grouped by (connector, asset), in time order, with running sums, so a
question is a binary search. Reading and sorting a million fills' moves takes seconds, and a
sync that adds a few fills would make every page pay it again. So ``live(session)`` keeps one
index per database in this process and, when only fills later than each of their connectors'
history were added since, adds their moves to it (``BalanceIndex.extend``). Each key's running
sum adds one move after another (``_running``), so an extended index holds bit for bit what one
built from all the moves holds, whatever the process's history (tests/test_balance_index.py).
Anything else (a back-dated fill, an import, a new transfer, ledger entry or opening balance, a
removed connector, another database) builds it again. Each connector's moves carry a revision
(``lib.kept.revision``), new for the connectors an extension adds moves to and for every one of
a build, so what is derived per connector is redone only for those.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from lib import queries, rebuild
from lib.db import has_pending_writes
from lib.kept import PerDatabase, revised

#: moments are int ms; a key's code is shifted past them to search one sorted array
_KEY_SHIFT = np.int64(1) << 42
#: the times a move may have (ms): from 1970 to 2109, so the shift above keeps keys apart
_TIMES = (0, int(_KEY_SHIFT) - 1)


def _by_connector(values: pd.Series) -> pd.Series:
    return values.astype(np.int64) if len(values) else pd.Series(dtype=np.int64)


def _in_range(timestamp: np.ndarray) -> np.ndarray:
    """``timestamp`` when every time is ms from 1970 to 2109, else ValueError: packed with its
    key's code, a time out of that range would read as another key's (another account's)."""
    if len(timestamp) and (timestamp.min() < _TIMES[0] or timestamp.max() > _TIMES[1]):
        raise ValueError("A stored time is outside 1970 to 2109 (milliseconds); balances over time cannot be "
                         "rebuilt until it is corrected.")
    return timestamp


def _running(code: np.ndarray, change: np.ndarray, base: np.ndarray | None = None) -> np.ndarray:
    """Each key's running sum over ``change`` (grouped by ``code``, in order), one addition after
    another from ``base`` (the key's sum so far; 0 when None), as ``np.cumsum`` adds: so the sums
    an index is extended with equal those of one built at once."""
    out = np.empty(len(change), dtype=float)
    edges = np.flatnonzero(np.diff(code)) + 1
    for low, high in zip(np.r_[0, edges].tolist(), np.r_[edges, len(change)].tolist(), strict=True):
        if base is None:
            np.cumsum(change[low:high], out=out[low:high])
        else:
            out[low:high] = np.cumsum(np.r_[base[low], change[low:high]])[1:]
    return out


def _inserted(values: np.ndarray, at: np.ndarray, new: np.ndarray) -> np.ndarray:
    """``np.insert(values, at, new)`` for ``at`` in ascending order, as the slices between joined:
    np.insert marks every position of a million-long array (~5 ms each) for a sync's few moves."""
    edges = np.r_[0, at, len(values)]
    pieces = [values[edges[0]:edges[1]]]
    for n in range(len(at)):
        pieces += [new[n:n + 1], values[edges[n + 1]:edges[n + 2]]]
    return np.concatenate(pieces)


@dataclass(frozen=True)
class BalanceIndex:
    """The moves of ``lib.rebuild`` as running balances, searchable by (connector, asset, moment):
    grouped by key (a code per (connector, asset), in the order keys first appear), in time order
    within each."""

    connector: np.ndarray  # per key (its code is its position): the connector's id
    asset: np.ndarray  # per key: the asset (object)
    stamp: np.ndarray  # per move, sorted: key code << 42 | timestamp
    running: np.ndarray  # per move: its key's balance after it
    turnover: np.ndarray  # per move: its key's sum of |change| so far
    first_move: pd.Series  # per connector id: its first move of any kind (ms)
    first_event: pd.Series  # per connector id: its first fill, transfer or ledger move (ms)
    last_move: pd.Series  # per connector id: its last move (ms)
    opening: frozenset[int]  # connectors with a nonzero opening balance
    revisions: dict[int, int]  # per connector id with moves: the revision of its moves (``lib.kept``)

    @classmethod
    def of(cls, moves: pd.DataFrame) -> BalanceIndex:
        """The index of ``moves`` (``rebuild.MOVE_COLUMNS``, float changes, in any order)."""
        connector = moves["connector_id"].to_numpy(np.int64)
        asset_code, assets = pd.factorize(moves["asset"])
        code, pairs = pd.factorize(connector * max(len(assets), 1) + asset_code)
        stamp = code.astype(np.int64) * _KEY_SHIFT + _in_range(moves["timestamp"].to_numpy(np.int64))
        order = np.argsort(stamp, kind="stable")
        code_sorted = code[order]
        change = moves["change"].to_numpy(float)[order]
        events = moves[moves["kind"] != "opening"]
        return cls(
            connector=np.asarray(pairs // max(len(assets), 1), dtype=np.int64),
            asset=np.asarray(assets, dtype=object)[pairs % max(len(assets), 1)],
            stamp=stamp[order],
            running=_running(code_sorted, change), turnover=_running(code_sorted, np.abs(change)),
            first_move=_by_connector(moves.groupby("connector_id")["timestamp"].min()),
            first_event=_by_connector(events.groupby("connector_id")["timestamp"].min()),
            last_move=_by_connector(moves.groupby("connector_id")["timestamp"].max()),
            opening=frozenset(int(c) for c in moves.loc[(moves["kind"] == "opening") & (moves["change"] != 0),
                                                        "connector_id"]),
            revisions=revised({}, np.unique(connector).tolist()))

    def keys(self, connector_ids: Sequence[int] | None = None) -> pd.DataFrame:
        """The (connector_id, asset) pairs with history, of ``connector_ids`` (None: all), with each
        one's ``code`` (what ``balances`` asks by)."""
        chosen = self.codes(connector_ids)
        return pd.DataFrame({"connector_id": self.connector[chosen], "asset": self.asset[chosen], "code": chosen})

    def balances(self, code: np.ndarray, moment: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(balance, turnover) of each key ``code`` (from ``keys``; -1: a key without history, 0 and
        0) at each ``moment`` (int ms, inclusive), as ``at`` gives them, with no frame built."""
        code = np.asarray(code, dtype=np.int64)
        found = np.where(code >= 0, self._found(code * _KEY_SHIFT + np.asarray(moment, dtype=np.int64), code), -1)
        return self._picked(found, self.running), self._picked(found, self.turnover)

    def codes(self, connector_ids: Sequence[int] | None = None) -> np.ndarray:
        """The codes of the keys of ``connector_ids`` (None: all), in code order."""
        every = np.arange(len(self.connector), dtype=np.int64)
        return every if connector_ids is None else every[np.isin(self.connector, np.asarray(connector_ids,
                                                                                             dtype=np.int64))]

    def _found(self, probe: np.ndarray, code: np.ndarray) -> np.ndarray:
        """For each probe (its key's code << 42 | a time): the position of the key's last move at or
        before that time; -1 where the key has none."""
        if not len(self.stamp):
            return np.full(len(probe), -1, dtype=np.int64)
        found = np.searchsorted(self.stamp, probe, side="right") - 1
        safe = np.clip(found, 0, None)
        return np.where((found >= 0) & (self.stamp[safe] // _KEY_SHIFT == code), found, -1)

    @staticmethod
    def _picked(found: np.ndarray, values: np.ndarray) -> np.ndarray:
        """``values`` at the ``_found`` positions; 0 where there is none."""
        return np.where(found >= 0, values[found], 0.0) if len(values) else np.zeros(len(found))

    def _last(self, probe: np.ndarray, code: np.ndarray, values: np.ndarray) -> np.ndarray:
        """``values`` at each probe's key's last move at or before its time (see ``_found``)."""
        return self._picked(self._found(probe, code), values)

    def grid(self, times: Sequence[int] | np.ndarray,
             connector_ids: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``at`` for one list of times as arrays (key code, moment, balance, turnover), one search
        for both sums and no frame: a year of days for 200 accounts is 800,000 rows."""
        codes = self.codes(connector_ids)
        times = np.asarray(times, dtype=np.int64)
        code, moment = np.repeat(codes, len(times)), np.tile(times, len(codes))
        found = self._found(code * _KEY_SHIFT + moment, code)
        return code, moment, self._picked(found, self.running), self._picked(found, self.turnover)

    def at(self, moments: pd.DataFrame | Sequence[int] | np.ndarray,
           connector_ids: Sequence[int] | None = None) -> pd.DataFrame:
        """The balance of every (connector, asset) of ``connector_ids`` (None: all) at each moment
        (int ms, inclusive: a move at the moment counts): ``connector_id``, ``asset``, ``moment``,
        ``balance`` and ``turnover`` (the sum of |change| so far: the scale of the float round-off
        in the balance), one row per key and moment; before a key's first move both are 0.

        ``moments`` is one list of times for every connector, or a frame of (``connector_id``,
        ``moment``) rows giving each connector its own."""
        if isinstance(moments, pd.DataFrame):
            codes = self.codes(connector_ids)
            pairs = pd.DataFrame({"code": codes, "connector_id": self.connector[codes]}).merge(
                moments[["connector_id", "moment"]].drop_duplicates(), on="connector_id")
            code, moment = pairs["code"].to_numpy(np.int64), pairs["moment"].to_numpy(np.int64)
            found = self._found(code * _KEY_SHIFT + moment, code)
            balance, turnover = self._picked(found, self.running), self._picked(found, self.turnover)
        else:
            code, moment, balance, turnover = self.grid(moments, connector_ids)
        return pd.DataFrame({"connector_id": self.connector[code], "asset": self.asset[code], "moment": moment,
                             "balance": balance, "turnover": turnover})

    def extend(self, moves: pd.DataFrame) -> BalanceIndex | None:
        """This index with ``moves`` added, when each is later than every move of its connector
        here (a sync's new fills); None otherwise (the caller builds the index again)."""
        if moves.empty:
            return self
        connector = moves["connector_id"].to_numpy(np.int64)
        timestamp = _in_range(moves["timestamp"].to_numpy(np.int64))
        if (timestamp <= self.last_move.reindex(connector).to_numpy(float)).any():  # NaN: a new connector
            return None
        touched = np.flatnonzero(np.isin(self.connector, connector))  # the keys of these connectors only
        known = {(int(c), a): int(n) for n, c, a in zip(touched, self.connector[touched], self.asset[touched],
                                                        strict=True)}
        keys = list(zip(connector.tolist(), moves["asset"], strict=True))
        fresh = list(dict.fromkeys(k for k in keys if k not in known))
        known |= {k: len(self.connector) + n for n, k in enumerate(fresh)}
        code = np.array([known[k] for k in keys], dtype=np.int64)
        order = np.lexsort((timestamp, code))
        code, stamp = code[order], code[order] * _KEY_SHIFT + timestamp[order]
        change = moves["change"].to_numpy(float)[order]
        at = np.searchsorted(self.stamp, stamp, side="right")  # after every move of the key: they are later
        running = _running(code, change, self._last(stamp, code, self.running))
        turnover = _running(code, np.abs(change), self._last(stamp, code, self.turnover))
        firsts = moves.groupby("connector_id")["timestamp"].min()
        return BalanceIndex(
            connector=np.concatenate([self.connector, np.array([c for c, _ in fresh], dtype=np.int64)]),
            asset=np.concatenate([self.asset, np.array([a for _, a in fresh], dtype=object)]),
            stamp=_inserted(self.stamp, at, stamp), running=_inserted(self.running, at, running),
            turnover=_inserted(self.turnover, at, turnover),
            first_move=_by_connector(self.first_move.combine(firsts, min, fill_value=np.iinfo(np.int64).max)),
            first_event=_by_connector(self.first_event.combine(firsts, min, fill_value=np.iinfo(np.int64).max)),
            last_move=_by_connector(self.last_move.combine(moves.groupby("connector_id")["timestamp"].max(), max,
                                                           fill_value=-1)),
            opening=self.opening, revisions=revised(self.revisions, np.unique(connector).tolist()))


@dataclass(frozen=True)
class _Kept:
    """A live index and what it was made from."""

    index: BalanceIndex
    made: queries.WriteState  # the database's write state its fills were read at
    max_id: int
    count: int  # fills read
    first_fills: pd.Series  # per connector: its first fill move (ms), which dates opening balances
    others: pd.DataFrame  # ``rebuild.other_moves`` as they were


_KEPT: PerDatabase[_Kept] = PerDatabase()


def _built(session: Session, made: queries.WriteState) -> _Kept:
    fills = queries._stored_fills(session)
    moves = rebuild.joined(rebuild.fill_changes(fills))
    first_fills = rebuild.first_moves(moves)
    others = rebuild.other_moves(session, None, first_fills)
    index = BalanceIndex.of(rebuild.joined([moves, others]))
    return _Kept(index, made, int(fills["id"].max()) if len(fills) else 0, len(fills), first_fills, others)


def _extended(session: Session, kept: _Kept, now: queries.WriteState) -> _Kept | None:
    fresh = queries.fills_added_since(session, kept.made, now, kept.max_id, kept.count)
    if fresh is None:
        return None
    moves = rebuild.joined(rebuild.fill_changes(fresh))
    first_fills = _by_connector(kept.first_fills.combine(rebuild.first_moves(moves), min,
                                                         fill_value=np.iinfo(np.int64).max))
    others = rebuild.other_moves(session, None, first_fills)
    index = kept.index.extend(moves) if others.equals(kept.others) else None
    if index is None:
        return None
    return _Kept(index, now, max(kept.max_id, int(fresh["id"].max()) if len(fresh) else 0), kept.count + len(fresh),
                 first_fills, others)


def live(session: Session) -> BalanceIndex:
    """The index of every connector's moves as the database holds them now (scope it with
    ``at``'s ``connector_ids``), continued from the kept one where only later fills came since."""
    now = queries.write_state(session)
    if now is None or has_pending_writes(session.connection()):  # no version names what is read here
        return BalanceIndex.of(rebuild.balance_moves(session))
    return _KEPT.get(session, now, _built, _extended).index
