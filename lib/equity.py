"""Value over time from the first event: balances rebuilt from stored history, valued with candles.

The equity curve, the 24 h / 7 d / 30 d changes and the balances at a past day do not wait for
balance snapshots: ``lib.rebuild`` implies every (connector, asset) balance at any moment from
the fills, transfers, ledger income and opening balances, back to the first of them. Each
balance is valued with its own price source's daily candles as of that moment (the close of
the latest candle that opened at or before it); the last point of a curve that reaches now is
valued at the current marks, so it ends where the Overview's total does when the history
explains the balances.

An asset held with no candle to value it is left out of that point's total and named
(``unpriced``: which asset, on how many points, from when to when), never counted as 0.
Snapshots are drawn over the rebuilt line; where reconciliation (``lib.reconcile``) finds that
the history does not explain a snapshot, the snapshot point is marked with the assets.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, localcontext
from itertools import accumulate

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from lib import balance_index, daily_snapshots, prices, queries, rebuild, reconcile
from lib.access import Viewer
from lib.balance_index import BalanceIndex
from lib.db import has_pending_writes
from lib.kept import Recent, database_key, revision
from lib.models import utcnow
from lib.reports import (
    BALANCE_REPORT_COLUMNS,
    CHANGE_WINDOWS,
    CODE_VERSION,
    BalancesReport,
    SessionOrUrl,
    _ms,
    _session,
    _with_sources,
    current_marks,
    disk_cached,
    equity_transfers,
    frame_from_json,
    frame_to_json,
    json_default,
    scope_candles,
    scope_series,
    usd_like,
)

DAY = timedelta(days=1)
#: windows up to this long are drawn hour by hour, longer ones day by day
HOURLY_UP_TO = timedelta(days=7)
#: at most about this many points: a longer history is drawn every few days (a 1970 timestamp must not
#: make 20,000 daily points of every account and asset)
MAX_POINTS = 1500
#: a rebuilt balance this small next to the units that went through it is float round-off, not a holding
DUST = 1e-10


@dataclass(frozen=True)
class EquityCurve:
    """What the equity chart draws (all USD; times are UTC)."""

    curve: pd.DataFrame  # time, usd: rebuilt holdings at the end of each day (hour), the last point now
    by_asset: pd.DataFrame  # time, asset, usd: the same, per asset (allocation over time)
    snapshots: pd.DataFrame  # time, usd: the balance snapshots of the same accounts, valued alike
    disagreements: pd.DataFrame  # time, usd, assets: snapshot points the history does not explain
    transfers: pd.DataFrame  # time, type, currency, amount, usd
    unpriced: pd.DataFrame  # asset, points, first, last: held with no price to value it
    first_event: pd.Timestamp | None  # the first fill, transfer, ledger entry or opening balance

    @property
    def empty(self) -> bool:
        return self.curve.empty


@dataclass(frozen=True)
class _History:
    """The scope's balances over time: the live index and the connectors it is asked about."""

    index: BalanceIndex
    ids: list[int] | None  # None: every connector
    first: pd.Series  # per connector in scope: its first move (ms)


def _history(session: Session, viewer: Viewer, client_id: int | None, connector_id: int | None) -> _History:
    ids = queries.connector_ids(session, viewer, client_id, connector_id)
    index = balance_index.live(session)
    first = index.first_move if ids is None else index.first_move[index.first_move.index.isin(ids)]
    return _History(index, ids, first)


def _database(session: Session) -> tuple[str, str] | None:
    """What the curve's kept figures are kept by (``kept.database_key``); None where no write version
    names what the session reads (nothing is kept then)."""
    now = queries.write_state(session)
    return None if now is None or has_pending_writes(session.connection()) else database_key(now)


def _moments(start: datetime, end: datetime, now: datetime) -> np.ndarray:
    """The last moment of each day (hour; every few days past ``MAX_POINTS`` days) from ``start`` on,
    then the window's last moment: now, or the millisecond before a past ``end`` (the window is
    [start, end)), as int ms."""
    span = min(end, now) - start
    step = timedelta(hours=1) if end - start <= HOURLY_UP_TO else DAY * max(1, -(-span.days // MAX_POINTS))
    first = pd.Timestamp(start).floor("h" if step < DAY else "D") + step
    ends = pd.date_range(first, pd.Timestamp(min(end, now)), freq=step, inclusive="left")
    ms = ((ends - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)).to_numpy(np.int64) - 1
    return np.append(ms, _ms(now) if end >= now else _ms(end) - 1)


def _valued(held: pd.DataFrame, series: dict[str, prices.Series], now_ms: int | None,
            marks: prices.SourceMarks) -> pd.DataFrame:
    """``held`` (source, asset, moment, balance) with ``price`` and ``usd``: each source's candle close
    as of the moment; a point at ``now_ms`` at the current marks first."""
    cash = usd_like()
    price = prices.usd_at_sources(series, held["source"], held["asset"], held["moment"], usd_like=cash, others=False)
    if now_ms is not None:
        at_now = (held["moment"] == now_ms).to_numpy()
        current, _ = prices.own_marks(marks, list(held.loc[at_now, "source"]), list(held.loc[at_now, "asset"]),
                                      usd_like=cash)
        price[at_now] = np.where(np.isfinite(current), current, price[at_now])
    return held.assign(price=price, usd=held["balance"].to_numpy(float) * price)


def _rebuilt(history: _History, moments: np.ndarray, sources: dict[int, str]) -> pd.DataFrame:
    """Balances at each moment, from each connector's first move on (before it the history says nothing)."""
    held = history.index.at(moments, history.ids)
    if held.empty:
        return held.assign(source=pd.Series(dtype=object))
    held = held[held["moment"].to_numpy() >= held["connector_id"].map(history.first).to_numpy()]
    held = held.assign(balance=held["balance"].where(held["balance"].abs() > DUST * held["turnover"], 0.0))
    return held.assign(source=held["connector_id"].map(sources).fillna(""))


@dataclass(frozen=True)
class _Grid:
    """An index's balances and turnovers at one list of day ends, one row per key code; a row holds
    while its connector's moves keep the revision ``made_from`` names (``lib.kept``)."""

    balance: np.ndarray  # (keys, day ends)
    turnover: np.ndarray
    made_from: dict[int, int]


_GRIDS: Recent[_Grid] = Recent(at_most=3)  # per database and list of day ends (the P&L page's, the Overview's)


def _grid(database: tuple[str, str] | None, index: BalanceIndex, times: np.ndarray,
          ids: list[int] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``index.grid(times, ids)``, the same numbers, as (key codes, balances, turnovers) with one row
    per key and one column per time; every time but the last (the day ends) kept per database
    (``database``: ``kept.database_key``, None: nothing kept) and list of day ends, and read again
    only for the keys of connectors whose moves changed revision (a sync's); the last (now) read
    for every key. A year of days of 200 accounts is 800,000 searches, ~35 ms."""
    codes = index.codes(ids)
    if database is None or len(times) < 2 or not len(codes):
        _, _, balance, turnover = index.grid(times, ids)  # key after key, each key's times in order
        return codes, balance.reshape(len(codes), len(times)), turnover.reshape(len(codes), len(times))
    days = times[:-1]
    key = (*database, days.tobytes())
    kept = _GRIDS.get(key)
    made = kept.made_from if kept is not None else {}
    owner = index.connector[codes]
    stale = [c for c in np.unique(owner).tolist() if made.get(c) != index.revisions[c]]
    if kept is not None and not stale:
        grid = kept
    else:
        redo = codes[np.isin(owner, stale)]
        size = (len(index.connector), len(days))
        balance, turnover = np.empty(size), np.empty(size)
        if kept is not None:  # the rows of other connectors as they were (a new key's is redone)
            rows = min(size[0], len(kept.balance))
            balance[:rows], turnover[:rows] = kept.balance[:rows], kept.turnover[:rows]
        found = index.balances(np.repeat(redo, len(days)), np.tile(days, len(redo)))
        balance[redo], turnover[redo] = (values.reshape(len(redo), len(days)) for values in found)
        grid = _Grid(balance, turnover, made | {c: index.revisions[c] for c in stale})
        _GRIDS.put(key, grid)
    balance, turnover = np.empty((len(codes), len(times))), np.empty((len(codes), len(times)))
    balance[:, :-1], turnover[:, :-1] = grid.balance[codes], grid.turnover[codes]
    balance[:, -1], turnover[:, -1] = index.balances(codes, np.full(len(codes), times[-1], dtype=np.int64))
    return codes, balance, turnover


def _held_by_source(history: _History, moments: np.ndarray, sources: dict[int, str],
                    database: tuple[str, str] | None = None) -> pd.DataFrame:
    """``_rebuilt`` summed over the connectors that share a price source, as the curve values it:
    ``source``, ``asset``, ``moment``, ``balance`` and ``holders`` (how many of the connectors held
    a nonzero balance then), for every (source, asset) and moment some connector counts at (from
    its first move on). A (source, asset) has one price per moment, so the curve is the same; a
    year of days for 200 accounts is valued as 8,000 rows instead of 800,000. ``database``: see
    ``_grid``.

    Each (source, asset)'s keys are added row after row in key order (the j-th key of every group
    at once), a key before its first move adding an exact 0: per cell the running sum a bincount
    over every (key, moment) makes, bit for bit, without an index per key and moment (numpy's
    reductions down the rows may sum in pairs: not the same bits)."""
    index = history.index
    columns = ["source", "asset", "moment", "balance", "holders"]
    times = np.asarray(moments, dtype=np.int64)
    codes, balance, turnover = _grid(database, index, times, history.ids)
    if not len(codes):
        return pd.DataFrame({c: pd.Series(dtype=object if c in ("source", "asset") else float) for c in columns})
    key_source = pd.Series(index.connector).map(sources).fillna("").to_numpy(object)
    group, pairs = pd.MultiIndex.from_arrays([key_source, index.asset]).factorize()
    key_first = history.first.reindex(index.connector).to_numpy(float)  # NaN: not in scope
    counted = times[None, :] >= key_first[codes][:, None]
    balance = np.where(counted & (np.abs(balance) > DUST * turnover), balance, 0.0)
    order = np.argsort(group[codes], kind="stable")  # each group's keys together, in key order
    grouped = group[codes][order]
    starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])
    sizes = np.diff(np.r_[starts, len(order)])
    shape = (len(starts), len(times))
    sums, holders, present = np.zeros(shape), np.zeros(shape), np.zeros(shape, dtype=bool)
    for rank in range(int(sizes.max())):
        groups = np.flatnonzero(sizes > rank)
        rows = order[starts[groups] + rank]
        sums[groups] += balance[rows]
        holders[groups] += balance[rows] != 0
        present[groups] |= counted[rows]
    row, slot = np.nonzero(present)
    named = grouped[starts][row]
    return pd.DataFrame({
        "source": pairs.get_level_values(0).to_numpy(object)[named],
        "asset": pairs.get_level_values(1).to_numpy(object)[named],
        "moment": times[slot],
        "balance": sums[row, slot],
        "holders": holders[row, slot],
    })


def _pairs(held: pd.DataFrame) -> pd.DataFrame:
    """The distinct (source, asset) pairs of ``held``: what current marks are needed for."""
    return held[["source", "asset"]].drop_duplicates()


def _unpriced(valued: pd.DataFrame) -> pd.DataFrame:
    lacking = valued[(valued["holders"] > 0) & valued["price"].isna()]
    named = lacking.groupby("asset")["moment"].agg(["nunique", "min", "max"]).reset_index()
    return pd.DataFrame({"asset": named["asset"], "points": named["nunique"].astype(int),
                         "first": pd.to_datetime(named["min"], unit="ms", utc=True),
                         "last": pd.to_datetime(named["max"], unit="ms", utc=True)})


@dataclass(frozen=True)
class _Values:
    """The daily snapshot values (``_values_of``) of the connectors valued so far, and what each
    was valued from: its daily snapshots' revision, its price source and the revision of the
    candles that source was valued with (``series``: per source, the revision and the candles)."""

    values: pd.DataFrame
    made_from: dict[int, tuple[int, str | None, int]]
    series: dict[str | None, tuple[int, prices.Series]]


_VALUES: Recent[_Values] = Recent()  # per database and cash list


def _same_candles(one: prices.Series, other: prices.Series) -> bool:
    """Whether two sources' candle series hold the same closes at the same times, bit for bit."""
    return one is other or (one.keys() == other.keys() and all(
        a.dtype == b.dtype and a.tobytes() == b.tobytes()
        for symbol in one for a, b in zip(one[symbol], other[symbol], strict=True)))


def _values_of(rows: pd.DataFrame, series: dict[str, prices.Series], sources: dict[int, str]) -> pd.DataFrame:
    """Per (moment, connector) of ``rows`` (daily snapshot rows): the USD value of the snapshot, its
    assets (their account types summed) valued with the candles of the connector's price source."""
    summed = rows.groupby(["moment", "connector_id", "asset"], as_index=False)["total"].sum()  # account types
    held = _with_sources(summed, sources).assign(balance=summed["total"].astype(float))
    return _valued(held, series, None, {}).groupby(["moment", "connector_id"], as_index=False)["usd"].sum(min_count=1)


def _daily_values(database: tuple[str, str] | None, daily: daily_snapshots.DailySnapshots, ids: list[int] | None,
                  series: dict[str, prices.Series], sources: dict[int, str]) -> pd.DataFrame:
    """``_values_of`` every connector of ``ids`` (None: all) with daily snapshots, kept per database
    (``database``; None: nothing kept): valued again only for the connectors whose daily snapshots,
    price source or its candles changed (a sync's snapshots, a new day's candle); where only its
    daily snapshots grew (``DailySnapshots.grown``), only the days from the first one re-read (each
    snapshot is valued alone). A year of 200 accounts is 300,000 rows to sum and value, ~0.1 s."""
    rows = daily.rows if ids is None else daily.rows[daily.rows["connector_id"].isin(ids)]
    if rows.empty:
        return pd.DataFrame({"moment": pd.Series(dtype=np.int64), "connector_id": pd.Series(dtype=np.int64),
                             "usd": pd.Series(dtype=float)})
    if database is None:
        return _values_of(rows, series, sources)
    key = (*database, tuple(sorted(usd_like())))
    kept = _VALUES.get(key)
    candles = dict(kept.series) if kept is not None else {}
    connectors = rows["connector_id"].unique().tolist()
    for source in {sources.get(c) for c in connectors}:
        now = series.get(str(source), {})
        if source not in candles or not _same_candles(candles[source][1], now):
            candles[source] = (revision(), now)
    made = {c: (daily.revisions[c], sources.get(c), candles[sources.get(c)][0]) for c in connectors}
    held = kept.made_from if kept is not None else {}
    redo = [c for c in connectors if held.get(c) != made[c]]
    # a connector whose snapshots only grew, valued alike: its days from the first one re-read on
    since = {c: dict(daily.grown.get(c, ())).get(held[c][0]) for c in redo if c in held and held[c][1:] == made[c][1:]}
    since = {c: at for c, at in since.items() if at is not None}
    if kept is not None and not redo:
        values = kept.values
    else:
        def later(frame: pd.DataFrame) -> np.ndarray:
            """Rows of the connectors of ``redo``: all of those valued whole, the grown ones' from ``since``."""
            connector = frame["connector_id"]
            start = connector.map(since).fillna(-np.inf).to_numpy(float)
            return connector.isin(redo).to_numpy() & (frame["moment"].to_numpy(np.int64) >= start)

        fresh = _values_of(rows[later(rows)], series, sources)
        values = fresh if kept is None else pd.concat([kept.values[~later(kept.values)], fresh], ignore_index=True)
        _VALUES.put(key, _Values(values, held | made, candles))
    return values if set(held) <= set(connectors) else values[values["connector_id"].isin(connectors)]


def _snapshot_points(session: Session, viewer: Viewer, client_id: int | None, connector_id: int | None,
                     start: datetime, end: datetime, hourly: bool, series: dict[str, prices.Series],
                     sources: dict[int, str]) -> pd.DataFrame:
    """Per day (hour): the snapshots' value, each connector's last snapshot carried forward, valued
    with the same candles as the rebuilt line (time = the snapshot's bucket end). By day from the
    kept daily snapshots (``lib.daily_snapshots``) and their kept values (``_daily_values``)."""
    if hourly:
        history = queries.balance_history(session, viewer, client_id, connector_id, since=start, bucket="hour")
        history = history[history["taken_at"] <= pd.Timestamp(end)]
        if history.empty:
            return pd.DataFrame(columns=["time", "usd"])
        moments = ((history["taken_at"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)).astype("int64")
        held = _with_sources(history, sources).assign(moment=moments, balance=history["total"].astype(float))
        valued = _valued(held, series, None, {})
    else:
        ids = queries.connector_ids(session, viewer, client_id, connector_id)
        valued = _daily_values(_database(session), daily_snapshots.daily(session), ids, series, sources)
        valued = valued[valued["moment"].to_numpy(np.int64) >= int(start.timestamp() * 1000)]
        valued = valued.assign(taken_at=pd.to_datetime(valued["moment"], unit="ms", utc=True))
        valued = valued[valued["taken_at"] <= pd.Timestamp(end)]
        if valued.empty:
            return pd.DataFrame(columns=["time", "usd"])
    per = valued.groupby(["taken_at", "connector_id"])["usd"].sum(min_count=1).unstack("connector_id")
    per = per.groupby(per.index.floor("h" if hourly else "D")).last().ffill()
    return per.sum(axis=1, min_count=1).rename("usd").rename_axis("time").reset_index()


def _disagreements(points: pd.DataFrame, rows: pd.DataFrame | None) -> pd.DataFrame:
    """Snapshot points from the first divergence reconciliation finds on, with the assets it names
    (``rows``: reconciliation's; None where there are no snapshots to reconcile)."""
    if rows is not None:
        rows = rows[(rows["status"] == "unbalanced") & rows["first_divergence"].notna()]
    if points.empty or rows is None or rows.empty:
        return pd.DataFrame(columns=["time", "usd", "assets"])
    days = rows["first_divergence"].dt.floor("D").to_numpy("datetime64[ns]")  # UTC: compared as numbers
    order = np.argsort(days, kind="stable")
    named = list(accumulate(rows["asset"].astype(str).to_numpy()[order], lambda seen, asset: seen | {asset},
                            initial=frozenset()))  # the assets diverged by each row's day, in day order
    counts = np.searchsorted(days[order], points["time"].to_numpy("datetime64[ns]"), side="right")
    marked = [{"time": time, "usd": usd, "assets": ", ".join(sorted(named[count]))}
              for time, usd, count in zip(points["time"], points["usd"], counts, strict=True) if count]
    return pd.DataFrame(marked, columns=["time", "usd", "assets"])


def equity_curve(viewer: Viewer, client_id: int | None = None, connector_id: int | None = None,
                 start: datetime | None = None, end: datetime | None = None,
                 session_or_url: SessionOrUrl = None, reconciled: pd.DataFrame | None = None) -> EquityCurve:
    """The rebuilt equity from ``start`` (default and at the earliest: the first event) to ``end``
    (default now), snapshots over it and the transfers inside it.

    ``reconciled``: the scope's ``lib.reconcile`` rows when the caller already has them (the
    worker's), else the scope's ``reconcile.divergences`` (the same values of the columns read).
    """
    now = utcnow()
    end = end or now
    with _session(session_or_url) as session:
        history = _history(session, viewer, client_id, connector_id)
        sources = queries.price_sources(session, viewer, client_id, connector_id)
        first_at = None if history.first.empty else pd.Timestamp(int(history.first.min()), unit="ms", tz="UTC")
        if first_at is not None:  # nothing to draw before the first event
            start = max(start or first_at.to_pydatetime(), first_at.to_pydatetime())
        start = start or end
        moments = _moments(start, end, now) if start < end else np.array([], np.int64)
        held = _held_by_source(history, moments, sources, _database(session))
        marks = current_marks(session, viewer, _pairs(held), client_id, connector_id) if end >= now else {}
        # every candle up to the end: a point is valued "as of", like the P&L's marks at a window's edges
        candles = scope_candles(session, viewer, client_id, connector_id)  # the P&L's read, at this version
        before = candles["timestamp"].to_numpy(np.int64) < _ms(end)
        series = (scope_series(session, viewer, client_id, connector_id) if before.all()
                  else prices.source_series(candles[before]))
        valued = _valued(held, series, _ms(now) if end >= now else None, marks)
        hourly = end - start <= HOURLY_UP_TO
        snapshots = _snapshot_points(session, viewer, client_id, connector_id, start, end, hourly, series, sources)
        if reconciled is None and not snapshots.empty:
            reconciled = reconcile.divergences(viewer, client_id, connector_id, session=session)
        disagreements = _disagreements(snapshots, reconciled)
        transfers = equity_transfers(session, viewer, client_id, connector_id, start, end, marks, series)
    times = pd.to_datetime(valued["moment"], unit="ms", utc=True)
    by_asset = valued.assign(time=times).groupby(["time", "asset"], as_index=False)["usd"].sum(min_count=1)
    curve = (valued.assign(time=times).groupby("time")["usd"].sum(min_count=0).rename("usd").reset_index()
             if not valued.empty else pd.DataFrame(columns=["time", "usd"]))
    return EquityCurve(curve, by_asset, snapshots, disagreements, transfers, _unpriced(valued), first_at)


def change_share(change: float, value: float) -> float | None:
    """``change`` as a share of the earlier ``value``; None unless that value is positive: over a
    negative value (history that disposed of more than it holds) a loss would read as a rise."""
    return change / value if value > 0 else None


def value_changes(viewer: Viewer, client_id: int | None = None, session_or_url: SessionOrUrl = None,
                  now: datetime | None = None, connector_id: int | None = None) -> dict[str, dict[str, object]]:
    """Rebuilt value now and 24 h / 7 d / 30 d ago, and the change, for the same accounts at both ends.
    ``out["now"]["at"]`` is that now (ISO): kept for an hour, the windows end there, not at the clock.

    An account whose history starts after the earlier end is left out of that window
    (``left_out``) rather than counted as new value. A past value uses each asset's candle close
    then; an asset with no candle that old is valued at today's mark (the change then reflects
    its quantity only) and named in ``unpriced``. None when no history is that old.
    """
    now = now or utcnow()
    with _session(session_or_url) as session:
        history = _history(session, viewer, client_id, connector_id)
        sources = queries.price_sources(session, viewer, client_id)
        moments = np.array([_ms(now - delta) for delta in CHANGE_WINDOWS.values()] + [_ms(now)], np.int64)
        held = _rebuilt(history, moments, sources)
        marks = current_marks(session, viewer, _pairs(held), client_id)
        series = prices.source_series(queries.candles(
            session, viewer, client_id, start_ms=_ms(now - max(CHANGE_WINDOWS.values()) - 2 * DAY)))
    today, _ = prices.own_marks(marks, list(held["source"]), list(held["asset"]), usd_like=usd_like())
    then = prices.usd_at_sources(series, held["source"], held["asset"], held["moment"], usd_like=usd_like(),
                                 others=False)
    past = held["moment"].to_numpy() != _ms(now)
    price = np.where(past & np.isfinite(then), then, today)
    held = held.assign(usd=held["balance"].to_numpy(float) * price, fallback=past & ~np.isfinite(then))
    current = held[~past]
    first = history.first
    out: dict[str, dict[str, object]] = {}
    for (name, _), moment in zip(CHANGE_WINDOWS.items(), moments, strict=False):
        compared = first.index[first <= moment]
        if len(compared) == 0:
            out[name] = {"value": None, "change": None, "pct": None, "left_out": 0, "unpriced": []}
            continue
        rows = held[(held["moment"] == moment) & held["connector_id"].isin(compared)]
        value = float(rows["usd"].sum(skipna=True))
        change = float(current.loc[current["connector_id"].isin(compared), "usd"].sum(skipna=True)) - value
        lacking = rows[rows["fallback"] & (rows["balance"] != 0)]
        out[name] = {"value": value, "change": change, "pct": change_share(change, value),
                     "left_out": int(first.size - len(compared)), "unpriced": sorted(set(lacking["asset"]))}
    out["now"] = {"value": float(current["usd"].sum(skipna=True)), "change": None, "pct": None,
                  "at": now.isoformat()}
    return out


def balances_at(viewer: Viewer, client_id: int | None = None, at: datetime | None = None,
                session_or_url: SessionOrUrl = None) -> BalancesReport:
    """The balances the history implies at ``at`` (inclusive), exactly (``total`` as ``Decimal``),
    per connector and asset, valued with each source's candle close then (another source's
    median where its own has none, as for today's marks). ``free`` and ``used`` are unknown (NaN)."""
    at = at or utcnow()
    at_ms = _ms(at)
    with _session(session_or_url) as session:
        ids = queries.connector_ids(session, viewer, client_id)
        moves = rebuild.balance_moves(session, ids, exact=True)
        moves = moves[moves["timestamp"].to_numpy(np.int64) <= at_ms]
        connectors = queries.connectors(session, viewer, client_id).set_index("id")
        sources = queries.price_sources(session, viewer, client_id)
        series = prices.source_series(queries.candles(session, viewer, client_id, end_ms=at_ms + 1))
    with localcontext(prec=rebuild.EXACT_DIGITS):
        totals = moves.groupby(["connector_id", "asset"])["change"].agg(lambda c: sum(c, Decimal(0)))
    totals = totals[totals != 0].rename("total").reset_index()
    rows = totals.join(connectors[["client_id", "client", "exchange_id", "label"]], on="connector_id")
    rows = _with_sources(rows, sources)
    price = prices.usd_at_sources(series, rows["source"], rows["asset"], np.full(len(rows), at_ms, np.int64),
                                  usd_like=usd_like())
    rows = rows.assign(free=np.nan, used=np.nan, price=price, priced_from="",
                       usd=rows["total"].astype(float) * price, priced=np.isfinite(price), taken_at=pd.Timestamp(at))
    rows = rows.sort_values(["client", "exchange_id", "label", "asset"], kind="stable", ignore_index=True)
    rows = rows[BALANCE_REPORT_COLUMNS]
    unpriced = sorted(set(rows.loc[~rows["priced"], "asset"]))
    return BalancesReport(rows, unpriced, float(rows["usd"].sum(skipna=True)))


_MOMENTS = {"curve": ("time",), "by_asset": ("time",), "snapshots": ("time",), "disagreements": ("time",),
            "transfers": ("time",), "unpriced": ("first", "last")}


def _dump_curve(drawn: EquityCurve) -> str:
    data = {name: frame_to_json(getattr(drawn, name)) for name in _MOMENTS}
    return json.dumps(data | {"first_event": drawn.first_event}, default=json_default)


def _load_curve(text: str) -> EquityCurve:
    data = json.loads(text)
    first = data.pop("first_event")
    frames = {name: frame_from_json(data[name], moments) for name, moments in _MOMENTS.items()}
    return EquityCurve(**frames, first_event=None if first is None else pd.Timestamp(first))


def cached_equity_curve(viewer: Viewer, client_id: int | None, connector_id: int | None, start: datetime | None,
                        end: datetime | None, reconciled: Callable[[], pd.DataFrame] | None = None) -> EquityCurve:
    """``equity_curve`` kept on disk like the P&L summary (``reports.disk_cached``): rebuilding a
    million fills' balances takes seconds, a restart or cache clear should not redo it for the
    same data. ``reconciled`` gives the scope's reconciliation rows when it must be computed (the
    worker has them); without it ``equity_curve`` reads the divergences alone."""
    return disk_cached("equity", viewer, client_id, connector_id, [start, end], CODE_VERSION,
                       lambda: equity_curve(viewer, client_id, connector_id, start, end,
                                            reconciled=None if reconciled is None else reconciled()),
                       _dump_curve, _load_curve)


def cached_value_changes(viewer: Viewer, client_id: int | None = None,
                         connector_id: int | None = None) -> dict[str, dict[str, object]]:
    """``value_changes`` kept on disk (``reports.disk_cached``), per hour: "24 h ago" moves on."""
    hour = utcnow().replace(minute=0, second=0, microsecond=0)
    return disk_cached("changes", viewer, client_id, connector_id, [hour], CODE_VERSION,
                       lambda: value_changes(viewer, client_id, connector_id=connector_id), json.dumps, json.loads)


#: a transfer's sign in the value of the accounts
FLOW_SIGN = {"deposit": 1.0, "withdrawal": -1.0}


def net_flows(transfers: pd.DataFrame, since: datetime, until: datetime) -> tuple[float, list[str]] | None:
    """Deposits less withdrawals after ``since`` up to ``until`` included (USD, each valued when it
    happened: the equity curve's ``transfers``) and the currencies left out for want of a price;
    None when there are none. The bounds are those of a ``value_changes`` window, whose balances
    count a move at their moment: so a transfer at the window's start is in the earlier value and
    not a flow, and one at its end is in the later value and is."""
    inside = transfers[(transfers["time"] > since) & (transfers["time"] <= until)]
    if inside.empty:
        return None
    net = float((inside["usd"] * inside["type"].map(FLOW_SIGN)).sum(skipna=True))
    return net, sorted(set(inside.loc[inside["usd"].isna(), "currency"]))


def net_of_flows(change: float | None, flows: tuple[float, list[str]] | None) -> float | None:
    """A value change less the window's deposits less withdrawals (``net_flows``): what trading
    and prices did. None when not known: no change, or a flow without a price."""
    if change is None or (flows is not None and flows[1]):
        return None
    return change - (flows[0] if flows is not None else 0.0)
