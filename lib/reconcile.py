"""Does the stored history explain the balances the exchange reported? Per connector and asset.

For every (connector, asset) the balance the history implies (``lib.rebuild``) is compared
with every stored balance snapshot, summed over the account types read (the history cannot
place money in one account type; see ``lib.rebuild``). Syncs may snapshot every minute, so
the comparison runs on the last snapshot of each UTC day (and the newest one); where a row
diverges, the snapshots of the day it began are compared one by one to find the first. (So a
divergence that paused within a day, between two days that end diverged, counts from the
earlier day.)

A row is
- **balanced**: at the newest snapshot the difference is within the tolerance;
- **unbalanced**: it is not; the difference in units and in USD (current marks, NaN when
  unpriced), the first snapshot of the divergence that lasts until now, and the causes the
  product can tell (``causes``);
- **unknown**: the exchange reports the asset and the product holds no history at all for it
  (no fill, transfer, ledger entry or opening balance), so it cannot say what explains it.

Tolerance: ``UNITS_TOLERANCE`` (1e-8, one satoshi: the finest amount step of the spot markets
the supported exchanges list in ccxt's market precision, BTC at 8 decimals; the stored
amounts carry no precision of their own) plus ``RELATIVE_TOLERANCE`` of the asset's turnover
and balance, which bounds float64's round-off over a long history (``lib.rebuild`` sums in
float64) while staying far below any amount an exchange moves.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, Literal, TypeVar

import numpy as np
import pandas as pd
from sqlalchemy import Double, and_, cast, or_, select
from sqlalchemy.orm import Session

from lib import balance_index, daily_snapshots, prices, queries, rebuild, reports
from lib.access import Viewer
from lib.balance_index import BalanceIndex
from lib.daily_snapshots import DailySnapshots
from lib.db import has_pending_writes, session_scope
from lib.kept import Recent, database_key
from lib.models import BalanceSnapshot
from lib.pnl.ledger import settle_currency

Status = Literal["balanced", "unbalanced", "unknown"]
T = TypeVar("T", float, pd.Series)
UNITS_TOLERANCE = 1e-8
RELATIVE_TOLERANCE = 1e-12
#: the order rows are listed in: what needs a look first
STATUS_ORDER = {"unbalanced": 0, "unknown": 1, "balanced": 2}
#: ``cause``: the causes' sentences joined; ``causes``: (kind, sentence) pairs, kinds below
ROW_COLUMNS = [
    "connector_id", "client_id", "client", "exchange_id", "label", "asset", "account_types", "status",
    "implied", "reported", "difference", "difference_usd", "taken_at", "first_divergence", "snapshots",
    "cause", "causes",
]
#: the causes ``causes`` can name, as keys for tests and the JSON output
PENDING, ACCOUNT_TYPE, MARKET, LOOKBACK, CONTRACTS, UNEXPLAINED = (
    "transfer pending", "account type not read", "market not walked", "history older than kept",
    "contract P&L not in history", "unexplained")


@dataclass(frozen=True)
class Reconciliation:
    """Rows (``ROW_COLUMNS``) unbalanced first, and connectors with no snapshot to compare with."""

    rows: pd.DataFrame
    unsynced: list[str]  # "client · exchange / label" of connectors never read yet

    def count(self, status: Status) -> int:
        return int((self.rows["status"] == status).sum())

    @property
    def unbalanced_accounts(self) -> int:
        """Connectors with at least one unbalanced asset."""
        return int(self.rows.loc[self.rows["status"] == "unbalanced", "connector_id"].nunique())


@contextmanager
def _session(session: Session | None) -> Iterator[Session]:
    if session is not None:
        yield session
    else:
        with session_scope() as own:
            yield own


def tolerance(turnover: T, reported: T) -> T:
    """How far implied and reported may differ and still be Balanced (see the module's note)."""
    return UNITS_TOLERANCE + RELATIVE_TOLERANCE * (turnover + abs(reported))


#: a connector's place in ``_compare`` is shifted past the moments (ms until 2109) to sort both at once
_PLACE_SHIFT = np.int64(1) << 42


def _compare(index: BalanceIndex, ids: list[int], snapshots: pd.DataFrame) -> pd.DataFrame:
    """Implied against reported at each snapshot moment of each connector of ``ids``: one row per
    (connector, asset, moment) for every asset the history or any snapshot names (an asset
    missing from a snapshot was reported as 0), with ``implied``, ``reported``, ``tolerance``,
    ``divergent``, ``known`` (the asset has history) and ``key`` (one number per (connector,
    asset)), sorted by connector, asset and moment. ``snapshots``: connector_id, moment, asset,
    total (one row per account type).

    Built from arrays (a year of 200 accounts is 800,000 rows, which pandas merges took most of a
    second to join): every key gets its connector's sorted moments, the history's balance is a
    binary search (``BalanceIndex.balances``) and each snapshot row is added to its key's moment."""
    moment = snapshots["moment"].to_numpy(np.int64)
    place, connectors = pd.factorize(snapshots["connector_id"].to_numpy(np.int64), sort=True)
    stamp = place.astype(np.int64) * _PLACE_SHIFT + moment
    stamps = np.unique(stamp)  # each connector's moments, sorted, connector after connector
    per_connector = np.bincount(stamps // _PLACE_SHIFT, minlength=len(connectors))
    first_of_connector = np.cumsum(per_connector) - per_connector
    history = index.keys(ids)
    history = history[history["connector_id"].isin(connectors)]  # a connector with no moment has no row
    history_place = np.searchsorted(connectors, history["connector_id"].to_numpy(np.int64))
    asset_code, assets = pd.factorize(np.concatenate([history["asset"].to_numpy(object),
                                                      snapshots["asset"].to_numpy(object)]), sort=True)
    width = np.int64(max(len(assets), 1))
    history_pairs = history_place * width + asset_code[:len(history)]
    snapshot_pairs = place * width + asset_code[len(history):]
    pairs = np.unique(np.concatenate([history_pairs, snapshot_pairs]))  # sorted: connector, then asset
    key_place = pairs // width
    index_code = np.full(len(pairs), -1, dtype=np.int64)
    index_code[np.searchsorted(pairs, history_pairs)] = history["code"].to_numpy(np.int64)
    lengths = per_connector[key_place]
    key_first_row = np.cumsum(lengths) - lengths
    key = np.repeat(np.arange(len(pairs)), lengths)
    within = np.arange(len(key)) - key_first_row[key]
    moments = stamps[first_of_connector[key_place][key] + within] % _PLACE_SHIFT
    implied, turnover = index.balances(index_code[key], moments)
    row_of_snapshot = (key_first_row[np.searchsorted(pairs, snapshot_pairs)]
                       + np.searchsorted(stamps, stamp) - first_of_connector[place])
    reported = np.bincount(row_of_snapshot, weights=np.nan_to_num(snapshots["total"].to_numpy(float)),
                           minlength=len(key))
    allowed = tolerance(turnover, reported)
    return pd.DataFrame({
        "connector_id": np.asarray(connectors, dtype=np.int64)[key_place][key],
        "asset": np.asarray(assets, dtype=object)[pairs % width][key], "moment": moments, "implied": implied,
        "turnover": turnover, "reported": reported, "known": (index_code >= 0)[key], "key": key,
        "tolerance": allowed, "divergent": np.abs(reported - implied) > allowed})


def _snapshots_between(session: Session, spans: pd.DataFrame) -> pd.DataFrame:
    """Every snapshot of each connector in its spans (after ``start``, up to ``end``, ms), in one
    query; the account types are summed by ``_compare`` (exact amounts are never summed in SQL:
    SQLite holds them as text)."""
    inside = [and_(BalanceSnapshot.connector_id.in_([int(c) for c in group["connector_id"].unique()]),
                   BalanceSnapshot.taken_at > datetime.fromtimestamp(start / 1000, UTC),
                   BalanceSnapshot.taken_at <= datetime.fromtimestamp(end / 1000, UTC))
              for (start, end), group in spans.groupby(["start", "end"])]
    query = select(BalanceSnapshot.connector_id, BalanceSnapshot.taken_at, BalanceSnapshot.asset,
                   cast(BalanceSnapshot.total, Double).label("total")).where(or_(*inside))
    found = queries.driver_frame(session, query) if inside else pd.DataFrame()  # one query, not one per span
    if found.empty:
        return pd.DataFrame(columns=["connector_id", "moment", "asset", "total"])
    return pd.DataFrame({"connector_id": found["connector_id"].astype(np.int64),
                         "moment": daily_snapshots.moments_ms(found["taken_at"]),
                         "asset": found["asset"], "total": found["total"].astype(float)})


def _runs(moment: np.ndarray, ok_at: np.ndarray, first: np.ndarray,
          end: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per run of comparisons [first, end) in moment order: how many, the moment of the last
    balanced one (``ok_at``: its position, -1: none; NaN) and the moment after it, where the
    divergence lasting to the run's end opened (its first moment when none was balanced; NaN when
    the last one is balanced or the run is empty)."""
    last_ok = np.where(ok_at >= 0, moment[np.maximum(ok_at, 0)], np.nan)
    after = np.where(ok_at >= 0, ok_at + 1, first)
    opened = np.where(after < end, moment[np.clip(after, 0, max(len(moment) - 1, 0))], np.nan)
    return end - first, last_ok, opened


def _then(earlier: tuple[np.ndarray, np.ndarray, np.ndarray], later: tuple[np.ndarray, np.ndarray, np.ndarray],
          later_first: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``_runs`` of two runs one after the other, from each one's (``later_first``: the later run's
    first moment): what ``_runs`` gives of them joined."""
    n, last_ok, opened = earlier
    more, later_ok, later_opened = later
    own_ok = (more > 0) & ~np.isnan(later_ok)
    carried = np.where((n > 0) & ~np.isnan(opened), opened, later_first)
    return (n + more, np.where(own_ok, later_ok, last_ok),
            np.where(more == 0, opened, np.where(own_ok, later_opened, carried)))


#: what ``_summary`` adds for continuing a connector's rows (``_continued``), dropped before they leave
_STATE = ["_before", "_before_last_ok", "_before_opened", "_previous", "_opened"]


def _rows_of(compared: pd.DataFrame, last: np.ndarray, runs: tuple[np.ndarray, np.ndarray, np.ndarray],
             before: tuple[np.ndarray, np.ndarray, np.ndarray], previous: np.ndarray) -> pd.DataFrame:
    """The summary rows: each key's newest comparison (at ``last``) with its status, the number of
    snapshots compared and the first moment of the lasting divergence (``runs``: of every moment;
    ``before``: of every moment but the newest, and ``previous``, the moment before it: kept to
    continue the key when later snapshots come)."""
    summary = compared.iloc[last].drop(columns="key").reset_index(drop=True)
    summary = summary.assign(snapshots=runs[0], first_divergence=runs[2], last_ok=runs[1])
    # no history and nothing reported now: nothing is left to explain
    status = np.where(~summary["divergent"], "balanced", np.where(summary["known"], "unbalanced", "unknown"))
    return summary.assign(status=status, difference=summary["reported"] - summary["implied"], _before=before[0],
                          _before_last_ok=before[1], _before_opened=before[2], _previous=previous,
                          _opened=runs[2])


def _summarise(compared: pd.DataFrame) -> pd.DataFrame:
    """Per (connector, asset): the newest comparison, the status, how many snapshots were
    compared, and the first moment of the divergence that lasts until the newest one (the moment
    after the last balanced one), with ``_STATE``. ``compared``: ``_compare``'s rows, in its order."""
    key = compared["key"].to_numpy()
    if not len(key):
        return compared.assign(snapshots=0, first_divergence=np.nan, last_ok=np.nan, status="", difference=0.0,
                               **dict.fromkeys(_STATE, np.nan)).drop(columns="key")
    first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    last = np.r_[first[1:], len(key)] - 1
    moment = compared["moment"].to_numpy(np.int64)
    divergent = compared["divergent"].to_numpy(bool)
    position = np.arange(len(key))
    ok_at = np.maximum.reduceat(np.where(divergent, -1, position), first)
    is_last = np.zeros(len(key), dtype=bool)
    is_last[last] = True
    ok_before = np.maximum.reduceat(np.where(divergent | is_last, -1, position), first)
    previous = np.where(last > first, moment[np.maximum(last - 1, 0)], np.nan)
    return _rows_of(compared, last, _runs(moment, ok_at, first, last + 1), _runs(moment, ok_before, first, last),
                    previous)


def _refine(session: Session, index: BalanceIndex, summary: pd.DataFrame) -> pd.Series:
    """The first divergent snapshot of each unbalanced row, found among every snapshot of the
    day its daily comparison first diverged (after the last balanced daily snapshot)."""
    unbalanced = summary[summary["status"] == "unbalanced"]
    if unbalanced.empty:
        return summary["first_divergence"]
    previous = unbalanced["last_ok"].fillna(unbalanced["first_divergence"] - 86_400_000)
    spans = pd.DataFrame({"connector_id": unbalanced["connector_id"],
                          "start": np.maximum(previous, unbalanced["first_divergence"] - 86_400_000),
                          "end": unbalanced["first_divergence"]})
    spans = spans.astype(np.int64).drop_duplicates()
    detail = _snapshots_between(session, spans)
    if detail.empty:
        return summary["first_divergence"]
    wanted = unbalanced[["connector_id", "asset", "first_divergence"]]
    compared = _compare(index, [int(c) for c in spans["connector_id"].unique()], detail).merge(
        wanted, on=["connector_id", "asset"])
    after = compared.join(unbalanced.set_index(["connector_id", "asset"])["last_ok"], on=["connector_id", "asset"])
    opened = np.maximum(after["last_ok"].fillna(after["first_divergence"] - 86_400_000),
                        after["first_divergence"] - 86_400_000)
    after = after[(after["moment"] > opened) & (after["moment"] <= after["first_divergence"])]  # its own span
    # the divergence lasts from the first divergent snapshot after the last balanced one
    ok = after[~after["divergent"]].groupby(["connector_id", "asset"])["moment"].max().rename("ok_inside")
    after = after.join(ok, on=["connector_id", "asset"])
    lasting = after[after["divergent"] & (after["ok_inside"].isna() | (after["moment"] > after["ok_inside"]))]
    first = lasting.groupby(["connector_id", "asset"])["moment"].min()
    refined = summary.join(first.rename("refined"), on=["connector_id", "asset"])["refined"]
    return refined.fillna(summary["first_divergence"])


def _summary(session: Session, index: BalanceIndex, ids: list[int], snapshots: pd.DataFrame) -> pd.DataFrame:
    """``_summarise``'s rows of the connectors of ``snapshots``, their first divergence refined."""
    summary = _summarise(_compare(index, ids, snapshots))
    summary["first_divergence"] = _refine(session, index, summary)
    return summary


@dataclass(frozen=True)
class _Compared:
    """``_summary``'s rows of the connectors compared so far (by connector, then asset, with
    ``_STATE``), and per connector the revisions of its moves and daily snapshots they were made
    from and ``_moves_read``'s (last move, digest) of its moves then."""

    rows: pd.DataFrame
    made_from: dict[int, tuple[int | None, int | None]]
    moves: dict[int, tuple[int | None, bytes]]


_COMPARED: Recent[_Compared] = Recent()  # per database (``kept.database_key``)


def _moves_read(index: BalanceIndex, upto: dict[int, int | None]) -> dict[int, tuple[bytes, float]]:
    """Per connector of ``upto``: a digest of its moves at or before its time there (None: none)
    as ``index`` holds them (each key's asset, times, balances and turnovers), and the time of its
    first move after it (inf: none). Equal digests: the same moves up to that time, so the same
    balances at every moment before the first later move."""
    keys = index.keys(list(upto)).sort_values(["connector_id", "asset"], kind="stable")
    code = keys["code"].to_numpy(np.int64)
    until = np.array([-1 if upto[c] is None else upto[c] for c in keys["connector_id"].tolist()], dtype=np.int64)
    shift = balance_index._KEY_SHIFT
    low = np.searchsorted(index.stamp, code * shift, side="left")
    high = np.searchsorted(index.stamp, code * shift + until, side="right")
    later = np.minimum(high, max(len(index.stamp) - 1, 0))
    has_later = (high < len(index.stamp)) & (index.stamp[later] // shift == code) if len(index.stamp) else high < 0
    after = np.where(has_later, index.stamp[later] % shift if len(index.stamp) else 0, np.inf)
    digests = {c: hashlib.blake2b(digest_size=32) for c in upto}
    firsts = dict.fromkeys(upto, np.inf)
    for connector, asset, lo, hi, next_at in zip(keys["connector_id"].tolist(), keys["asset"].tolist(), low.tolist(),
                                                 high.tolist(), after.tolist(), strict=True):
        digest = digests[connector]
        digest.update(f"{asset}\0{hi - lo}\0".encode())
        for values in (index.stamp, index.running, index.turnover):
            digest.update(values[lo:hi].tobytes())
        firsts[connector] = min(firsts[connector], next_at)
    return {c: (digests[c].digest(), firsts[c]) for c in upto}


def _moves_kept(index: BalanceIndex, ids: list[int]) -> dict[int, tuple[int | None, bytes]]:
    """``_Compared.moves`` of ``ids``: each connector's last move now and the digest of its moves."""
    last = {c: (int(index.last_move[c]) if c in index.last_move.index else None) for c in ids}
    return {c: (last[c], digest) for c, (digest, _) in _moves_read(index, last).items()}


def _same(one: np.ndarray, other: np.ndarray) -> np.ndarray:
    return (one == other) | (np.isnan(one) & np.isnan(other))


def _differ(one: pd.DataFrame, other: pd.DataFrame) -> set[int]:
    """The connectors whose (connector_id, asset) pairs in ``one`` and ``other`` are not the same."""
    pairs = [set(zip(frame["connector_id"].tolist(), frame["asset"].tolist(), strict=True)) for frame in (one, other)]
    return {c for c, _ in pairs[0] ^ pairs[1]}


def _continued(session: Session, index: BalanceIndex, daily: DailySnapshots, snapshots: pd.DataFrame,
               kept: _Compared, changed: list[int]) -> tuple[pd.DataFrame, list[int]]:
    """The rows of the ``changed`` connectors that can be continued from the kept ones, and those
    that cannot (to redo whole). A connector continues when what changed is verifiably later than
    the moments it keeps: its daily snapshots grew from the kept revision after a moment
    (``DailySnapshots.grown``), its moves up to the kept last move are those compared then (digest)
    and the first later move is after them, and its assets (with and without history) are the
    kept ones. The kept moments before the first changed time stay (all, or all but the newest
    when that day's last snapshot moved); only the later ones are compared, each key's runs joined
    to the kept ones (``_then``): the same rows a whole comparison gives."""
    rows = kept.rows[kept.rows["connector_id"].isin(changed)]
    connectors = rows["connector_id"].tolist()
    newest = dict(zip(connectors, rows["moment"].tolist(), strict=True))  # every key of a connector: its moments
    before = dict(zip(connectors, rows["_previous"].tolist(), strict=True))
    redo: list[int] = []
    cut: dict[int, float] = {}
    check: dict[int, int | None] = {}
    for c in changed:
        if c not in kept.made_from or c not in newest:
            redo.append(c)
            continue
        held_moves, held_daily = kept.made_from[c]
        now_moves, now_daily = index.revisions.get(c), daily.revisions.get(c)
        cut[c] = np.inf
        if now_daily != held_daily:
            since = dict(daily.grown.get(c, ())).get(held_daily) if held_daily is not None else None
            if since is None:
                redo.append(c)
                continue
            cut[c] = since
        if now_moves != held_moves:
            check[c] = kept.moves[c][0]
    for c, (digest, first_after) in _moves_read(index, check).items():
        if digest != kept.moves[c][1]:
            redo.append(c)
        else:
            cut[c] = min(cut[c], first_after)
    history = index.keys([c for c in cut if c not in redo])
    held_known = rows[rows["known"]]
    known_differ = _differ(history, held_known)
    whole: dict[int, bool] = {}
    for c in [c for c in cut if c not in redo]:
        if c in known_differ:
            redo.append(c)
        elif newest[c] < cut[c]:
            whole[c] = True
        elif not np.isnan(before[c]) and before[c] < cut[c]:
            whole[c] = False
        else:
            redo.append(c)
    kept_until = {c: int(newest[c]) if w else int(before[c]) for c, w in whole.items()}
    ids = sorted(kept_until)
    later = snapshots[snapshots["connector_id"].isin(ids)]
    later = later[later["moment"].to_numpy(np.int64) > later["connector_id"].map(kept_until).to_numpy(np.int64)]
    growing = set(later["connector_id"].tolist())
    same = [c for c in ids if c not in growing and whole[c]]  # nothing later: the kept rows stand
    redo += [c for c in ids if c not in growing and not whole[c]]
    unchanged = rows[rows["connector_id"].isin(same)]
    if not growing:
        return unchanged, redo
    compared = _compare(index, sorted(growing), later)
    differ = _differ(compared.drop_duplicates("key"), rows[rows["connector_id"].isin(growing)])
    redo += sorted(differ)
    compared = compared[~compared["connector_id"].isin(list(differ))]
    if compared.empty:
        return unchanged, redo
    key = compared["key"].to_numpy()
    first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    last = np.r_[first[1:], len(key)] - 1
    moment = compared["moment"].to_numpy(np.int64)
    divergent = compared["divergent"].to_numpy(bool)
    position = np.arange(len(key))
    is_last = np.zeros(len(key), dtype=bool)
    is_last[last] = True
    held = compared.iloc[first][["connector_id", "asset"]].merge(rows, on=["connector_id", "asset"], how="left")
    connector = held["connector_id"].to_numpy(np.int64)
    taken = np.array([whole[c] for c in connector.tolist()], dtype=bool)
    kept_runs = (held["_before"].to_numpy(np.int64), held["_before_last_ok"].to_numpy(float),
                 held["_before_opened"].to_numpy(float))
    newest_moment = held["moment"].to_numpy(np.int64)
    newest_ok = ~held["divergent"].to_numpy(bool)
    with_newest = _then(kept_runs, (np.ones(len(held), dtype=np.int64), np.where(newest_ok, newest_moment, np.nan),
                                    np.where(newest_ok, np.nan, newest_moment)), newest_moment)
    base = tuple(np.where(taken, one, other) for one, other in zip(with_newest, kept_runs, strict=True))
    later_first = moment[first]
    runs = _then(base, _runs(moment, np.maximum.reduceat(np.where(divergent, -1, position), first), first, last + 1),
                 later_first)
    runs_before = _then(base, _runs(moment, np.maximum.reduceat(np.where(divergent | is_last, -1, position), first),
                                    first, last), later_first)
    until = np.array([kept_until[c] for c in connector.tolist()], dtype=float)
    previous = np.where(last > first, moment[np.maximum(last - 1, 0)], until)
    found = _rows_of(compared, last, runs, runs_before, previous)
    limit = np.array([cut[c] for c in connector.tolist()], dtype=float)
    opened = found["_opened"].to_numpy(float)
    reuse = ((found["status"] == "unbalanced").to_numpy() & (held["status"] == "unbalanced").to_numpy()
             & _same(opened, held["_opened"].to_numpy(float))
             & _same(found["last_ok"].to_numpy(float), held["last_ok"].to_numpy(float)) & (opened < limit))
    # the refinement reads snapshots and moves up to the divergence's first daily moment: kept when that stands
    refined = found["first_divergence"].to_numpy(float).copy()
    refined[reuse] = held["first_divergence"].to_numpy(float)[reuse]
    if (~reuse).any():
        refined[~reuse] = _refine(session, index, found[~reuse].reset_index(drop=True)).to_numpy(float)
    found["first_divergence"] = refined
    return pd.concat([unchanged, found]), redo


def _compared(session: Session, index: BalanceIndex, daily: DailySnapshots, snapshots: pd.DataFrame) -> pd.DataFrame:
    """``_summary`` of every connector of ``snapshots`` (those in scope, ``daily``'s rows), kept per
    database: a connector's rows depend on its own moves and snapshots only, so after a sync they
    are redone for the connectors whose moves (``index``) or daily snapshots changed revision, and
    taken as they were for the others (a year of 200 accounts compares 800,000 rows in ~0.3 s);
    where only later snapshots and moves came, from the first changed day on (``_continued``)."""
    read = sorted(int(c) for c in snapshots["connector_id"].unique())
    now = queries.write_state(session)
    if now is None or has_pending_writes(session.connection()):  # no version names what is read here
        return _summary(session, index, read, snapshots).drop(columns=_STATE)
    key = database_key(now)
    made_from = {c: (index.revisions.get(c), daily.revisions.get(c)) for c in read}
    kept = _COMPARED.get(key)
    held = kept.made_from if kept is not None else {}
    changed = [c for c in read if held.get(c) != made_from[c]]
    parts = [] if kept is None else [kept.rows[~kept.rows["connector_id"].isin(changed)]] if changed else [kept.rows]
    redo = changed
    if changed and kept is not None:
        continued, redo = _continued(session, index, daily, snapshots, kept, changed)
        parts.append(continued)
    if redo:
        parts.append(_summary(session, index, redo, snapshots[snapshots["connector_id"].isin(redo)]))
    parts = [part for part in parts if len(part)]  # every connector of ``snapshots`` has rows: one is not empty
    rows = parts[0] if len(parts) == 1 else pd.concat(parts).sort_values("connector_id", kind="stable")
    rows = rows.reset_index(drop=True)
    if changed and queries.write_state(session) == now:  # nothing committed while it was read: keep it
        moves = kept.moves if kept is not None else {}
        fresh = [c for c in changed if held.get(c, (None,))[0] != made_from[c][0] or c in redo]
        _COMPARED.put(key, _Compared(rows, held | made_from, moves | _moves_kept(index, fresh)))
    if not set(held) <= set(read):  # kept rows of connectors out of scope
        rows = rows[rows["connector_id"].isin(read)].reset_index(drop=True)
    return rows.drop(columns=_STATE)  # the caller adds columns: the kept frame stays as it is


def _day(ms: int) -> str:
    return _date_of(ms // 86_400_000)


@cache
def _date_of(day: int) -> str:
    """The UTC date of day ``day`` since 1970 (formatted once: every unbalanced row names its days)."""
    return datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m-%d")


def _amount(value: float) -> str:
    return f"{value:,.8f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class Facts:
    """What one connector's stored data says about its history, for ``causes``."""

    unreadable: tuple[tuple[str, str], ...] = ()  # (account type, error) the key could not read
    markets: tuple[str, ...] = ()  # markets walked one by one (exchanges that need a symbol)
    kept_since: int | None = None  # the oldest time the exchange keeps history (ms), if it says
    first_snapshot: int | None = None
    first_event: int | None = None  # the first stored fill, transfer or ledger entry (ms)
    opening: bool = False  # the first sync booked opening balances
    pending: tuple[tuple[str, str, int, float], ...] = ()  # (asset, type, time ms, amount) not settled
    contracts: tuple[str, ...] = ()  # contract markets ("BTC/USDT:USDT") with fills lacking realised P&L


def _facts(coverage: pd.DataFrame, pending: pd.DataFrame, index: BalanceIndex, ids: list[int],
           snapshots: pd.DataFrame, contracts: pd.DataFrame) -> dict[int, Facts]:
    """``Facts`` per connector of ``ids``, each frame read once."""
    first_snapshot = snapshots.groupby("connector_id")["moment"].min()
    events = index.first_event[index.first_event.index.isin(ids)]
    opening = index.opening & set(ids)
    unreadable: dict[int, list[tuple[str, str]]] = {}
    markets: dict[int, list[str]] = {}
    kept: dict[int, int] = {}
    for cid, stream, kind, oldest, error in zip(coverage["connector_id"], coverage["stream"], coverage["kind"],
                                                coverage["oldest_available"], coverage["failed_error"], strict=True):
        if kind == "balance" and isinstance(error, str):
            unreadable.setdefault(int(cid), []).append((stream.partition(":")[2] or "default", error))
        if kind == "trades" and ":" in stream:
            markets.setdefault(int(cid), []).append(stream.partition(":")[2])
        if kind != "balance" and oldest is not None and not pd.isna(oldest):
            kept[int(cid)] = max(int(oldest), kept.get(int(cid), int(oldest)))
    waiting: dict[int, list[tuple[str, str, int, float]]] = {}
    for cid, asset, kind, at, amount in zip(pending["connector_id"], pending["asset"], pending["type"],
                                            pending["timestamp"], pending["amount"], strict=True):
        waiting.setdefault(int(cid), []).append((str(asset), str(kind), int(at), float(amount)))
    traded = contracts.groupby("connector_id")["symbol"].agg(lambda s: tuple(sorted(s)))
    ids = set(first_snapshot.index) | set(events.index) | set(unreadable) | set(markets) | set(kept) | set(waiting)
    return {int(cid): Facts(tuple(unreadable.get(cid, ())), tuple(markets.get(cid, ())), kept.get(cid),
                            _known(first_snapshot.get(cid)), _known(events.get(cid)), cid in opening,
                            tuple(waiting.get(cid, ())), traded.get(cid, ())) for cid in ids | set(traded.index)}


def _contracts(session: Session, ids: list[int]) -> pd.DataFrame:
    """(connector_id, symbol) of every contract market where the connectors have fills whose
    realised P&L the exchange did not report (the history cannot move the settle currency)."""
    found = queries.unsettled_contracts(session, ids)
    return found[settle_currency(found["symbol"]).notna()]


def _known(value: object) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


#: the fields of a row ``causes`` reads
_CAUSE_FIELDS = ("connector_id", "asset", "difference", "tolerance", "first_divergence", "last_ok")


def causes(row: Mapping[str, Any], facts: Facts) -> list[tuple[str, str]]:
    """The likely causes of one unbalanced row that the stored data can tell, as (key, sentence):

    - a transfer still pending whose amount (or all pending ones together) equals the
      difference: the exchange counts it, the history does not yet;
    - an account type the key could not read (balance coverage with an error): its holdings
      are missing from the reported side;
    - an exchange read market by market where no walked market holds the asset;
    - a divergence from the connector's first snapshot where the exchange keeps history only
      back to a date and the account is older than that (the first sync booked opening
      balances, or a stream kept longer holds older events): older history could not be read;
    - contracts settled in the asset whose fills carry no realised P&L (not reported, or synced
      before it was read);
    - otherwise: the stored history does not explain it (a fill, transfer or ledger entry is
      missing or was changed).
    """
    found: list[tuple[str, str]] = []
    difference, asset, tolerance = float(row["difference"]), str(row["asset"]), float(row["tolerance"])
    own = [p for p in facts.pending if p[0] == asset]
    for _, kind, at, amount in own:
        if abs(difference - amount) <= tolerance:
            found.append((PENDING, f"the {kind} of {_amount(amount)} {asset} on {_day(at)} is still pending: the "
                          "exchange already counts it, the history counts it once it settles."))
    if not found and len(own) > 1 and abs(difference - sum(p[3] for p in own)) <= tolerance:
        found.append((PENDING, f"{len(own)} transfers of {asset} are still pending: the exchange already counts "
                      "them, the history counts them once they settle."))
    for account, error in facts.unreadable:
        found.append((ACCOUNT_TYPE, f"the {account} account could not be read with this key ({error}), so what "
                      "it holds is missing from the reported balance."))
    if facts.markets and not any(asset in m.split("/") for m in facts.markets):
        found.append((MARKET, f"this exchange's fills are read market by market and no market of {asset} was "
                      "walked; add its markets as extra symbols of the connector."))
    kept = facts.kept_since
    older = facts.opening or (kept is not None and facts.first_event is not None and facts.first_event < kept)
    if (kept is not None and older and facts.first_snapshot is not None
            and int(row["first_divergence"]) <= facts.first_snapshot):
        found.append((LOOKBACK, f"the exchange keeps history only since {_day(kept)} and the difference dates "
                      "from the first sync: older history could not be read; import it from the exchange's "
                      "export."))
    settled = [symbol for symbol in facts.contracts if symbol.partition(":")[2] == asset]
    if settled:
        found.append((CONTRACTS, f"this account trades contracts settled in {asset} ({', '.join(settled)}) whose "
                      "fills carry no realised P&L (the exchange did not report it, or they were synced before "
                      "it was read): that P&L moves the balance and is not in the history."))
    if not found:
        since = "" if pd.isna(row["last_ok"]) else f"after {_day(int(row['last_ok']))} and "
        found.append((UNEXPLAINED, f"the stored history does not explain it: a fill, transfer or ledger entry of "
                      f"{asset} {since}before {_day(int(row['first_divergence']))} is missing or was changed."))
    return found


def _usd(session: Session, viewer: Viewer, rows: pd.DataFrame, client_id: int | None,
         connector_id: int | None) -> np.ndarray:
    """The difference of each row at its own connector's current mark (NaN: unpriced)."""
    if rows.empty:
        return np.array([], dtype=float)
    sources = queries.price_sources(session, viewer, client_id, connector_id)
    held = pd.DataFrame({"source": rows["connector_id"].map(sources).fillna(""), "asset": rows["asset"]})
    marks = reports.current_marks(session, viewer, held, client_id, connector_id)
    price, _ = prices.own_marks(marks, list(held["source"]), list(held["asset"]), usd_like=reports.usd_like())
    return rows["difference"].to_numpy(float) * price


def reconcile(viewer: Viewer, client_id: int | None = None, connector_id: int | None = None,
              session: Session | None = None) -> Reconciliation:
    """Every (connector, asset) in the viewer's scope: status, difference, first divergence, cause."""
    with _session(session) as db:
        connectors = queries.connectors(db, viewer, client_id, connector_id)
        ids = [int(i) for i in connectors["id"]]
        daily = daily_snapshots.daily(db)
        snapshots = daily.rows[daily.rows["connector_id"].isin(ids)]
        read = set(snapshots["connector_id"].unique().tolist())
        unsynced = [f"{r.client} · {r.exchange_id} / {r.label}" for r in connectors.itertuples()
                    if int(r.id) not in read]
        if snapshots.empty:
            return Reconciliation(pd.DataFrame(columns=ROW_COLUMNS), unsynced)
        index = balance_index.live(db)
        summary = _compared(db, index, daily, snapshots)
        facts = _facts(queries.coverage(db, viewer, client_id, connector_id), rebuild.pending_transfers(db, ids),
                       index, ids, snapshots, _contracts(db, ids))
        unbalanced = np.flatnonzero((summary["status"] == "unbalanced").to_numpy())
        found: list[list[tuple[str, str]]] = [[] for _ in range(len(summary))]
        told = summary.iloc[unbalanced]  # what ``causes`` reads of a row, as plain values
        values = zip(*(told[name].tolist() for name in _CAUSE_FIELDS), strict=True)
        for at, value in zip(unbalanced.tolist(), values, strict=True):
            row = dict(zip(_CAUSE_FIELDS, value, strict=True))
            found[at] = causes(row, facts.get(int(row["connector_id"]), Facts()))
        summary["cause"] = ["; ".join(text for _, text in pairs) for pairs in found]
        summary["causes"] = [tuple(pairs) for pairs in found]
        summary["difference_usd"] = _usd(db, viewer, summary, client_id, connector_id)
    names = connectors.set_index("id")[["client_id", "client", "exchange_id", "label"]]
    rows = summary.join(names, on="connector_id")
    types = daily.account_types
    rows = rows.assign(
        account_types=[types.get((c, a), "") for c, a in zip(rows["connector_id"], rows["asset"], strict=True)],
        taken_at=pd.to_datetime(rows["moment"], unit="ms", utc=True),
        first_divergence=pd.to_datetime(rows["first_divergence"], unit="ms", utc=True),
        order=rows["status"].map(STATUS_ORDER), size=-rows["difference_usd"].abs().fillna(0.0))
    rows = rows.sort_values(["order", "size", "client", "exchange_id", "label", "asset"], kind="stable")
    return Reconciliation(rows[ROW_COLUMNS].reset_index(drop=True), unsynced)


#: ``divergences``' columns: what the equity curve marks on its snapshot points
DIVERGENCE_COLUMNS = ["connector_id", "asset", "status", "first_divergence"]


def divergences(viewer: Viewer, client_id: int | None = None, connector_id: int | None = None,
                session: Session | None = None) -> pd.DataFrame:
    """``reconcile``'s rows of the scope as the equity curve reads them (``DIVERGENCE_COLUMNS``: the
    same values), without what it does not draw: the causes, the USD differences at current marks,
    the names and the order. After a sync this is the kept comparisons (``_compared``), a few
    milliseconds, where ``reconcile`` reads coverage, pending transfers, contracts and tickers."""
    with _session(session) as db:
        ids = queries.connector_ids(db, viewer, client_id, connector_id)
        daily = daily_snapshots.daily(db)
        snapshots = daily.rows if ids is None else daily.rows[daily.rows["connector_id"].isin(ids)]
        if snapshots.empty:
            return pd.DataFrame(columns=DIVERGENCE_COLUMNS)
        summary = _compared(db, balance_index.live(db), daily, snapshots)
    return pd.DataFrame({"connector_id": summary["connector_id"], "asset": summary["asset"],
                         "status": summary["status"],
                         "first_divergence": pd.to_datetime(summary["first_divergence"], unit="ms", utc=True)})


def _dump(found: Reconciliation) -> str:
    return json.dumps({"rows": reports.frame_to_json(found.rows), "unsynced": found.unsynced},
                      default=reports.json_default)


def _load(text: str) -> Reconciliation:
    data = json.loads(text)
    rows = reports.frame_from_json(data["rows"], ("taken_at", "first_divergence"))
    rows["causes"] = [tuple(tuple(pair) for pair in pairs) for pairs in rows["causes"]]
    return Reconciliation(rows, list(data["unsynced"]))


def cached_reconcile(viewer: Viewer, client_id: int | None = None,
                     connector_id: int | None = None) -> Reconciliation:
    """``reconcile`` kept on disk like the P&L summary (``reports.disk_cached``: keyed by the scope's
    connectors and the data version): every connector against a year of snapshots takes seconds,
    and the worker makes the landing scope's ahead of the first view (``lib.figures_ahead``)."""
    return reports.disk_cached("reconcile", viewer, client_id, connector_id, [], reports.CODE_VERSION,
                               lambda: reconcile(viewer, client_id, connector_id), _dump, _load)


#: ``moves_around``: one balance change of the asset with the implied balance after it
AROUND_COLUMNS = ["timestamp", "kind", "change", "balance"]


def moves_around(viewer: Viewer, connector_id: int, asset: str, start_ms: int, end_ms: int,
                 session: Session | None = None) -> pd.DataFrame:
    """The history's changes of one asset of one connector in [start, end) with the balance
    implied after each: where to look for a missing or wrong fill or transfer. Empty for a
    connector outside the viewer's scope."""
    with _session(session) as db:
        if not queries.connector_ids(db, viewer, connector_id=connector_id):
            return pd.DataFrame(columns=AROUND_COLUMNS)
        moves = rebuild.balance_moves(db, [connector_id])
    moves = moves[moves["asset"] == asset]
    moves = moves.assign(balance=moves["change"].cumsum())
    inside = moves[(moves["timestamp"] >= start_ms) & (moves["timestamp"] < end_ms)]
    return inside[AROUND_COLUMNS].reset_index(drop=True)
