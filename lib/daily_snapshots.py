"""Each connector's last balance snapshot of every UTC day, kept live as syncs add snapshots.

Reconciliation compares the history with the last snapshot of each day of each connector (and
the newest). Reading those out of a year of snapshots takes most of a second (200 accounts: a
grouped scan of every row), and every sync would make the next view pay it again for the few
rows it added. So ``daily(session)`` keeps them per database in this process, with the account
types that ever reported each asset, and when only snapshots were added since it re-reads just
the days the new ones fall on, for their connectors.

It continues only when the database went through the write version it was read at (not a
restored older copy) and no snapshot was changed or removed since (the snapshots epoch, which a
deleted connector and thinning move too: ``lib.snapshots`` deletes rows once an hour, and the
first view after it reads everything again); on PostgreSQL, where a row may commit later than one
with a higher id, the table must also hold exactly the kept rows plus those read since. Each
connector's rows carry a revision (``lib.kept.revision``), new for the connectors a sync's rows
were added to and for every one of a full read, so reconciliation redoes only those; a continued
connector's rows also name the revisions they grew from (``grown``), so what is derived from them
day by day may redo only the days from the first one re-read.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from sqlalchemy import Double, and_, cast, func, select
from sqlalchemy.orm import Session

from lib import queries
from lib.db import has_pending_writes
from lib.kept import PerDatabase, revised
from lib.models import BalanceSnapshot

_DAY_MS = 86_400_000
#: how many earlier revisions a connector's rows name in ``grown``: a view seldom lags more syncs
_GROWN_AT_MOST = 16


@dataclass(frozen=True)
class DailySnapshots:
    """``rows``: connector_id, moment (ms), asset, total (float; one row per account type) of each
    connector's last snapshot of each UTC day; ``account_types``: per (connector, asset), the
    account types that ever reported it ("default, funding"); ``revisions``: per connector with
    rows, the revision of its rows (``lib.kept``); ``grown``: per connector continued since a full
    read, (earlier revision, ms) pairs, newest first: its rows before that moment, and every
    snapshot taken before it, are those of the earlier revision (only snapshots were added since,
    none before it)."""

    rows: pd.DataFrame
    account_types: dict[tuple[int, str], str]
    revisions: dict[int, int]
    grown: dict[int, tuple[tuple[int, int], ...]] = field(default_factory=dict)


def moments_ms(moments: pd.Series) -> np.ndarray:
    """Database times (SQLite's text or PostgreSQL's aware values) as int ms since 1970, UTC."""
    taken = pd.to_datetime(moments, utc=True)
    return ((taken - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)).to_numpy(np.int64)


def _daily_rows(session: Session, connector_ids: list[int] | None = None, since_ms: int | None = None) -> pd.DataFrame:
    """The last snapshot of each UTC day (of ``connector_ids``, None: all; from the day starting at
    ``since_ms`` on), amounts cast to float by the database and read as the driver's plain tuples
    (typed rows took several seconds for a year of 200 connectors)."""
    span = []
    if connector_ids is not None:
        span.append(BalanceSnapshot.connector_id.in_(connector_ids))
    if since_ms is not None:
        span.append(BalanceSnapshot.taken_at >= datetime.fromtimestamp(since_ms / 1000, UTC))
    last = (select(BalanceSnapshot.connector_id, func.max(BalanceSnapshot.taken_at).label("taken_at")).where(*span)
            .group_by(BalanceSnapshot.connector_id, queries.bucket_of(session, "day")).subquery())
    query = (select(BalanceSnapshot.connector_id, BalanceSnapshot.taken_at, BalanceSnapshot.asset,
                    cast(BalanceSnapshot.total, Double).label("total"))
             .join(last, and_(last.c.connector_id == BalanceSnapshot.connector_id,
                              last.c.taken_at == BalanceSnapshot.taken_at)))
    found = queries.driver_frame(session, query)
    if found.empty:
        return pd.DataFrame({"connector_id": pd.Series(dtype=np.int64), "moment": pd.Series(dtype=np.int64),
                             "asset": pd.Series(dtype=object), "total": pd.Series(dtype=float)})
    return pd.DataFrame({"connector_id": found["connector_id"].astype(np.int64),
                         "moment": moments_ms(found["taken_at"]), "asset": found["asset"],
                         "total": found["total"].astype(float).fillna(0.0)})


def _type_sets(session: Session, after_id: int = 0) -> dict[tuple[int, str], frozenset[str]]:
    """Per (connector, asset): the account types of the snapshot rows with an id above ``after_id``."""
    query = (select(BalanceSnapshot.connector_id, BalanceSnapshot.asset, BalanceSnapshot.account_type)
             .where(BalanceSnapshot.id > after_id).distinct())
    found: dict[tuple[int, str], set[str]] = {}
    for connector_id, asset, account_type in queries.driver_rows(session, query):
        found.setdefault((int(connector_id), str(asset)), set()).add(account_type or "default")
    return {key: frozenset(types) for key, types in found.items()}


def _named(types: dict[tuple[int, str], frozenset[str]]) -> dict[tuple[int, str], str]:
    return {key: ", ".join(sorted(names)) for key, names in types.items()}


def _row_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(BalanceSnapshot)) or 0)


@dataclass(frozen=True)
class _Kept:
    found: DailySnapshots
    types: dict[tuple[int, str], frozenset[str]]
    made: queries.WriteState
    count: int
    max_id: int


_KEPT: PerDatabase[_Kept] = PerDatabase()


def _everything(session: Session) -> tuple[DailySnapshots, dict[tuple[int, str], frozenset[str]]]:
    types = _type_sets(session)
    rows = _daily_rows(session)
    return DailySnapshots(rows, _named(types), revised({}, rows["connector_id"].unique().tolist())), types


def _read_all(session: Session, made: queries.WriteState) -> _Kept:
    count, top = _row_count(session), int(session.scalar(select(func.max(BalanceSnapshot.id))) or 0)
    found, types = _everything(session)
    return _Kept(found, types, made, count, top)


def _continued(session: Session, kept: _Kept, now: queries.WriteState) -> _Kept | None:
    """``kept`` brought to ``now`` by the rows added since; None when more than inserts happened."""
    if now.identity != kept.made.identity or now.snapshots_epoch != kept.made.snapshots_epoch:
        return None
    if not queries.went_through(session, kept.made.version, kept.made.token):
        return None
    added = pd.DataFrame(queries.driver_rows(session, select(BalanceSnapshot.id, BalanceSnapshot.connector_id,
                                                             BalanceSnapshot.taken_at)
                                             .where(BalanceSnapshot.id > kept.max_id)),
                         columns=["id", "connector_id", "taken_at"])
    count = kept.count + len(added)
    if not queries.ids_grow_in_commit_order(session) and count != _row_count(session):
        return None  # PostgreSQL: a row committed late with a lower id than one read before
    if added.empty:
        return replace(kept, made=now)
    touched = sorted({int(c) for c in added["connector_id"]})
    days = pd.Series(moments_ms(added["taken_at"]) // _DAY_MS * _DAY_MS)  # whole days: a day's last may move
    firsts = days.groupby(added["connector_id"].astype(np.int64).to_numpy()).min()
    since = int(firsts.min())
    rows = kept.found.rows
    stale = rows["connector_id"].isin(touched).to_numpy() & (rows["moment"].to_numpy(np.int64) >= since)
    rows = pd.concat([rows[~stale], _daily_rows(session, touched, since)], ignore_index=True)
    types = dict(kept.types)
    for key, names in _type_sets(session, kept.max_id).items():
        types[key] = types.get(key, frozenset()) | names
    revisions = revised(kept.found.revisions, touched)
    grown = dict(kept.found.grown)
    for connector, first in firsts.items():
        before = kept.found.revisions.get(int(connector))
        if before is None:  # a connector's first rows: nothing to grow from
            grown.pop(int(connector), None)
            continue
        earlier = [(revision, min(at, int(first))) for revision, at in grown.get(int(connector), ())]
        grown[int(connector)] = tuple([(before, int(first)), *earlier][:_GROWN_AT_MOST])
    return _Kept(DailySnapshots(rows, _named(types), revisions, grown), types, now, count, int(added["id"].max()))


def daily(session: Session) -> DailySnapshots:
    """Every connector's daily last snapshots and account types as the database holds them now
    (callers narrow them to their scope); continued from the kept ones where only rows were added."""
    now = queries.write_state(session)
    if now is None or has_pending_writes(session.connection()):  # no version names what is read here
        return _everything(session)[0]
    return _KEPT.get(session, now, _read_all, _continued).found
