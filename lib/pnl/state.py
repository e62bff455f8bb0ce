"""Resumable P&L: the engine's state after the last processed event, continued by later fills.

A full run over a million fills takes about half a second; a sync adds a few fills at a time, all
later than everything before. ``start`` runs the engine once and keeps, per pool and asset, what
the rest of history needs: the lots still open (FIFO: in queue order, the first one partly
consumed; average cost: the pool as one lot, or two when part of it came from opening lots), the
turnover so far (dust is relative to it), each connector's net units (where scope pools lie) and
the result so far. ``resume`` feeds the lots of the pools the new fills touch back as acquisitions
ahead of their events and runs the same matching over those few; every other pool keeps its
figures as they are (so one new fill costs milliseconds, not a pass over every open lot), and the
figures are a full run's up to float round-off (tests/test_pnl_incremental.py). Pure: frames in,
frames out; no database.

``resume`` declines (returns None; the caller runs ``start`` again) when it could not give a
full run's figures:
- a new fill at or before the watermark (a back-dated fill or an import): the order of events
  would change. Equal timestamps decline too: within one timestamp a withdrawal goes after a fill;
- the new fills' ledger has notes (unvalued fills, contract fills without P&L, empty events):
  a full run words them once for all history;
- a new fill of a connector whose opening lots still wait for its first event (they would be
  dated just before that fill);
- a window start or end, transfers or opening lots changed: the caller keys the state on those.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from lib.pnl.ledger import ACQUIRE, LABELS, OPENING, TRADE, Events, Ledger, Sources, build_ledger
from lib.pnl.matching import Matched, Method, match
from lib.pnl.result import (
    DISPOSAL_COLUMNS,
    PnlResult,
    Totals,
    _client_of,
    _disposals,
    _flows,
    _holdings,
    _warnings,
    build_result,
    connector_nets,
    event_columns,
    mark,
    per_asset_frame,
)
from lib.prices import DEFAULT_USD_LIKE


@dataclass(frozen=True)
class Pools:
    """Per segment (one pool of one asset), sorted by (pool, asset): where its matching stands. Only
    the segments new fills touch are matched again; the others keep these figures as they are."""

    pool: np.ndarray  # int64: connector id, client id (client pooling) or SCOPE_POOL
    asset: np.ndarray  # int64: code into PnlState.assets
    quantity: np.ndarray  # units held (Matched.quantity)
    cost: np.ndarray  # their cost basis (Matched.cost)
    opening: np.ndarray  # of which units from opening lots (Matched.opening)
    turnover: np.ndarray  # units acquired + disposed so far (dust is relative to it)
    ghost: np.ndarray  # Matched.ghost
    lot_start: np.ndarray  # int64, one more than segments: segment i's lots are [lot_start[i], lot_start[i + 1])
    lot_units: np.ndarray  # lots still open in queue order (FIFO: the first one partly consumed; average
    lot_cost: np.ndarray  # cost: the pool as one lot, or two when part of it came from opening lots)
    lot_opening: np.ndarray  # bool: the lot came from opening lots

    def keys(self, width: int) -> np.ndarray:
        """One sortable integer per segment: (pool, asset) with ``width`` assets."""
        return self.pool * width + self.asset


@dataclass(frozen=True)
class PnlState:
    """Where a P&L run stands after its last event (see the module docstring)."""

    method: str
    pool: str
    usd_like: frozenset[str]
    watermark: int  # timestamp (ms) of the last event processed
    assets: list[str]  # sorted: every asset seen so far (the codes of ``pools`` and ``nets``)
    pools: Pools
    nets: tuple[np.ndarray, np.ndarray]  # (sorted connector ids, net units each holds per asset code so far)
    client_of: dict[int, int]
    notes: list[str]  # the ledger's notes about the history so far
    result: PnlResult  # the figures so far (at the marks of the last run)
    fills: int  # fills processed
    unanchored: frozenset[int]  # connectors with opening lots and no event yet: their first fill dates them
    rows: DisposalRows  # where ``result.disposals``' number columns lie, with room for later rows


#: the disposals' number columns (the rest are Arrow text, which joins without a copy)
NUMBERS = ("timestamp", "connector_id", "client_id", "units", "proceeds", "basis", "gain", "unmatched_units")


class DisposalRows:
    """The disposals' number columns with room after their last row, shared by a state and the states
    resumed from it: a resume writes its new rows after the last ones and its frame views the first
    rows, so one new disposal does not copy a million. The views are read-only, so no frame handed out
    can change another's rows; only a state ending at the last row written appends in place (resuming
    an older state again moves to fresh room)."""

    def __init__(self, frame: pd.DataFrame, more: int) -> None:
        """Room for ``frame``'s rows, ``more`` and an eighth again (so moves are rare)."""
        self._lock = threading.Lock()
        self.rows = len(frame)
        size = self.rows + more + max((self.rows + more) // 8, 1024)
        self.columns: dict[str, np.ndarray] = {}
        for name in NUMBERS:
            self.columns[name] = np.empty(size, frame[name].dtype)
            self.columns[name][: self.rows] = frame[name].to_numpy()

    def claim(self, rows: int, more: int) -> bool:
        """Whether ``more`` rows fit after ``rows`` and those are the last rows written: then they are
        the caller's to write (and the last rows written)."""
        with self._lock:
            if rows != self.rows or rows + more > len(self.columns[NUMBERS[0]]):
                return False
            self.rows = rows + more
            return True

    def frame(self, text: Mapping[str, object], rows: int) -> pd.DataFrame:
        """DISPOSAL_COLUMNS: the first ``rows`` number rows (read-only views) and ``text``'s columns."""
        columns = {}
        for name in DISPOSAL_COLUMNS:
            if name in self.columns:
                columns[name] = self.columns[name][:rows]
                columns[name].flags.writeable = False
            else:
                columns[name] = pd.array(text[name])
        return pd.DataFrame(columns, copy=False)


def _with_disposals(prior: pd.DataFrame, rows: DisposalRows, new: pd.DataFrame) -> tuple[pd.DataFrame, DisposalRows]:
    """``prior``'s disposals followed by ``new``'s, written in ``rows``' room (or fresh room)."""
    n, more = len(prior), len(new)
    if not rows.claim(n, more):
        rows = DisposalRows(prior, more)
        rows.claim(n, more)
    for name in NUMBERS:
        rows.columns[name][n : n + more] = new[name].to_numpy()
    text = {name: prior[name].array._concat_same_type([prior[name].array, new[name].array])  # Arrow: no copy
            for name in DISPOSAL_COLUMNS if name not in rows.columns}
    return rows.frame(text, n + more), rows


def _carry(ev: Events, matched: Matched, method: str) -> tuple[np.ndarray, ...]:
    """The lots each segment still holds after its last event: per segment how many, then per lot
    units, cost and whether it came from opening lots (segment by segment, in queue order)."""
    n, segments = len(ev.kind), len(ev.starts)
    if n == 0:
        return np.zeros(segments, np.int64), np.zeros(0), np.zeros(0), np.zeros(0, bool)
    if method == "average":  # one pool per segment: its opening part and the rest, as two lots
        quantity, cost, opening = matched.quantity, matched.cost, matched.opening
        with np.errstate(divide="ignore", invalid="ignore"):
            opening_cost = np.where(quantity > 0, cost * opening / quantity, 0.0)
        units = np.column_stack([opening, quantity - opening]).ravel()
        keep = units > 0
        costs = np.column_stack([opening_cost, cost - opening_cost]).ravel()
        return (keep.reshape(-1, 2).sum(axis=1).astype(np.int64), units[keep], costs[keep],
                np.tile([True, False], segments)[keep])
    lengths = np.diff(np.append(ev.starts, n))
    seg_of = np.repeat(np.arange(segments), lengths)
    acq = ev.kind == ACQUIRE
    units = np.where(acq, ev.units, 0.0)
    ends = np.empty(n)
    for lo, hi in zip(ev.starts.tolist(), np.append(ev.starts[1:], n).tolist(), strict=True):
        np.cumsum(units[lo:hi], out=ends[lo:hi])
    last = np.append(ev.starts[1:], n) - 1
    consumed = (ends[last] - matched.quantity)[seg_of]  # queue position disposals have eaten to
    left = np.minimum(units, np.clip(ends - consumed, 0.0, None))
    keep = np.flatnonzero(acq & (left > 0))
    left, units, value = left[keep], units[keep], ev.value[keep]
    with np.errstate(divide="ignore", invalid="ignore"):
        cost = np.where(left == units, value, left * value / units)
    return (np.bincount(seg_of[keep], minlength=segments).astype(np.int64), left, cost,
            ev.label[keep] == OPENING)


def _ranges(first: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The positions [first[i], first[i] + counts[i]) for every i, end to end."""
    ends = np.cumsum(counts)
    return np.arange(int(ends[-1]) if len(ends) else 0) + np.repeat(first - (ends - counts), counts)


def _sorted_pools(pool: np.ndarray, asset: np.ndarray, figures: list[np.ndarray], counts: np.ndarray,
                  lots: list[np.ndarray], width: int) -> Pools:
    """``Pools`` from segments in any order (``figures``: quantity, cost, opening, turnover, ghost) and
    their lots segment by segment (``counts`` per segment; ``lots``: units, cost, opening)."""
    order = np.argsort(pool * width + asset, kind="stable")
    take = _ranges((np.cumsum(counts) - counts)[order], counts[order])
    return Pools(pool[order], asset[order], *(f[order] for f in figures),
                 np.concatenate([[0], np.cumsum(counts[order])]).astype(np.int64), *(column[take] for column in lots))


def start(
    fills: pd.DataFrame,
    transfers: pd.DataFrame | None = None,
    opening: pd.DataFrame | None = None,
    marks: Mapping[str, float] | None = None,
    *,
    method: Method = "fifo",
    pool: str = "scope",
    usd_like: frozenset[str] = DEFAULT_USD_LIKE,
) -> tuple[PnlResult, PnlState]:
    """``compute_pnl`` over all history (no window), and the state to resume it from."""
    if pool not in ("scope", "connector", "client"):
        raise ValueError(f"pool must be 'scope', 'connector' or 'client', got {pool!r}")
    ledger = build_ledger(fills, transfers, opening, pool=pool, usd_like=usd_like, end=None)
    matched = match(ledger.events, method)
    result = build_result(ledger, matched, marks or {}, method=method, pool=pool, start=None, usd_like=usd_like)
    ev, stamps = ledger.events, ledger.sources.timestamp
    n = len(ev.kind)
    counts, *lots = _carry(ev, matched, method)
    figures = [matched.quantity, matched.cost, matched.opening, np.add.reduceat(ev.units, ev.starts) if n else
               np.zeros(0), matched.ghost if n else np.zeros(0)]
    rows = DisposalRows(result.disposals, 0)
    result = replace(result, disposals=rows.frame(result.disposals, rows.rows))  # its rows in ``rows``' room
    state = PnlState(
        method=method, pool=pool, usd_like=usd_like, watermark=int(stamps.max()) if len(stamps) else -(2**62),
        assets=list(ledger.assets),
        pools=_sorted_pools(ev.seg_pool.astype(np.int64), ev.seg_asset.astype(np.int64), figures, counts, lots,
                            len(ledger.assets)),
        nets=_sorted_nets(*connector_nets(ledger)), client_of=_client_of(ledger), notes=list(ledger.notes),
        result=result, fills=len(fills), unanchored=_unanchored(fills, transfers, opening), rows=rows,
    )
    return result, state


def _unanchored(fills: pd.DataFrame, transfers: pd.DataFrame | None, opening: pd.DataFrame | None) -> frozenset[int]:
    """Connectors whose opening lots wait for a first fill or transfer (``date_opening_lots`` dates
    them 1 ms before it): a resumed run cannot move a lot already placed, so their fills decline."""
    if opening is None or opening.empty:
        return frozenset()
    lots = set(opening.loc[opening["amount"].astype(float) > 0, "connector_id"].astype(int))
    seen = set(fills["connector_id"].astype(int)) | (set() if transfers is None else
                                                     set(transfers["connector_id"].astype(int)))
    return frozenset(lots - seen)


def resume(state: PnlState, fills: pd.DataFrame, marks: Mapping[str, float] | None = None
           ) -> tuple[PnlResult, PnlState] | None:
    """The state continued by ``fills`` (only fills new since it, any order), valued at ``marks``;
    None when only a full run can give its figures (see the module docstring).

    Only the segments the new fills touch are matched again (their open lots carried in ahead of
    the new events); the rest of the state is kept as it is, so a few new fills cost milliseconds."""
    timestamps = fills["timestamp"].to_numpy(np.int64)
    if len(fills) and timestamps.min() <= state.watermark:
        return None
    if state.unanchored and fills["connector_id"].isin(list(state.unanchored)).any():
        return None
    new = build_ledger(fills, None, None, pool=state.pool, usd_like=state.usd_like, end=None)
    if new.notes:
        return None
    assets, pools, nets = state.assets, state.pools, state.nets
    if not set(new.assets) <= set(assets):  # assets never seen before: the state's codes move
        assets = sorted(set(assets) | set(new.assets))
        moved = np.searchsorted(np.asarray(assets, dtype=object), np.asarray(state.assets, dtype=object))
        pools = replace(pools, asset=moved[pools.asset])
        nets = (nets[0], _widened(nets[1], moved, len(assets)))
    remap = np.array([assets.index(a) for a in new.assets] + [-1], np.int64)
    ledger, touched, before, ghost = _merged(new, pools, assets, remap, state.watermark)
    carried = ledger.events.source == len(ledger.sources.rank) - 1
    matched = match(ledger.events, state.method, before, ghost, carried)
    pools = _updated(pools, ledger.events, matched, touched, before, state.method, len(assets))
    client_of = state.client_of | _client_of(new)
    everything = np.ones(len(ledger.sources.rank), bool)
    disposals, disposal_codes = _disposals(event_columns(ledger, matched), ledger.sources, ledger.conversions, assets,
                                           everything)
    flows = _flows(ledger, everything, client_of)
    segments = pd.DataFrame({"pool": pools.pool, "asset": pools.asset, "quantity": pools.quantity,
                             "cost_basis": pools.cost, "opening_quantity": pools.opening})
    nets = _add_nets(nets, connector_nets(new), remap)
    mark_of = np.array([mark(marks or {}, a, state.usd_like) for a in assets] + [math.nan])
    holdings = _holdings(ledger, segments, state.pool, mark_of, client_of, nets)
    prior = state.result
    all_disposals, rows = (_with_disposals(prior.disposals, state.rows, disposals) if len(disposals) else
                           (prior.disposals, state.rows))
    all_flows = _sum_flows(prior.flows, flows, assets)
    unmatched_new = np.bincount(ledger.events.asset, weights=matched.unmatched, minlength=len(assets))
    per_asset = _per_asset(segments, assets, mark_of, prior.per_asset, disposal_codes,
                           disposals["gain"].to_numpy(np.float64), flows, unmatched_new)
    unpriced = sorted(per_asset.loc[~per_asset["priced"], "asset"])
    unmatched = {a: float(q) for a, q in zip(per_asset["asset"], per_asset["unmatched_quantity"], strict=True) if q > 0}
    priced = per_asset["priced"].to_numpy(bool)
    realized = prior.totals.realized + float(disposals["gain"].sum())
    unrealized = float(per_asset.loc[priced, "unrealized"].sum())
    totals = Totals(
        realized=realized, unrealized=unrealized, fees=float(all_flows["fees"].sum()), net=realized + unrealized,
        market_value=float(per_asset.loc[priced, "market_value"].sum()),
        net_cash_flow=float(all_flows["net_cash_flow"].sum()), transfer_basis=prior.totals.transfer_basis,
        unpriced_cost_basis=float(per_asset.loc[~priced, "cost_basis"].sum()),
        withdrawn_basis=prior.totals.withdrawn_basis,
    )
    result = PnlResult(
        method=state.method, pool=state.pool, per_asset=per_asset, holdings=holdings, disposals=all_disposals,
        flows=all_flows, totals=totals, unpriced_assets=unpriced, unmatched=unmatched,
        warnings=_warnings(state.notes, unpriced, unmatched),
    )
    later = replace(
        state, watermark=int(timestamps.max()) if len(fills) else state.watermark, assets=assets, pools=pools,
        nets=nets, client_of=client_of, result=result, fills=state.fills + len(fills), rows=rows,
        unanchored=state.unanchored - set(fills["connector_id"].astype(int)),
    )
    return result, later


def _merged(new: Ledger, pools: Pools, assets: list[str], remap: np.ndarray, watermark: int
            ) -> tuple[Ledger, np.ndarray, np.ndarray, np.ndarray]:
    """The new fills' ledger (asset codes remapped to ``assets``), each segment's open lots from
    ``pools`` carried in as acquisitions ahead of its events, segments in (pool, asset) order. With
    it: the places in ``pools`` of the segments it touches, and per segment its turnover before these
    events less the units carried in (which the matching counts again) and its ghost units."""
    ev = new.events
    n_new, width = len(ev.kind), len(assets)
    seg_asset = remap[ev.seg_asset]
    keys = ev.seg_pool.astype(np.int64) * width + seg_asset
    rank = np.argsort(keys, kind="stable")  # each new segment's place in the merged order
    keys = keys[rank]
    old = pools.keys(width)
    at = np.searchsorted(old, keys)
    found = at < len(old)
    found[found] = old[at[found]] == keys[found]
    at = at[found]  # the touched segments' places in ``pools``
    first, counts = np.zeros(len(keys), np.int64), np.zeros(len(keys), np.int64)
    first[found] = pools.lot_start[at]
    counts[found] = pools.lot_start[at + 1] - first[found]
    lots = _ranges(first, counts)
    lengths = np.diff(np.append(ev.starts, n_new))
    place = np.empty(len(rank), np.int64)
    place[rank] = np.arange(len(rank))
    # carried lots first in each segment (they come first here), then its events in their order
    order = np.argsort(np.concatenate([np.repeat(np.arange(len(keys)), counts), np.repeat(place, lengths)]),
                       kind="stable")
    sizes = counts + lengths[rank]
    starts = (np.cumsum(sizes) - sizes).astype(np.int64)
    sentinel = len(new.sources.rank)  # the carried lots' source: no fill

    def joined(carried: np.ndarray | int, fresh: np.ndarray, dtype: type) -> np.ndarray:
        carried = np.broadcast_to(np.asarray(carried, dtype), len(lots))
        return np.concatenate([carried, fresh.astype(dtype)])[order]

    events = Events(
        starts=starts, seg_pool=ev.seg_pool.astype(np.int64)[rank], seg_asset=seg_asset[rank],
        asset=np.repeat(seg_asset[rank], sizes), kind=joined(ACQUIRE, ev.kind, np.int8),
        label=joined(np.where(pools.lot_opening[lots], OPENING, TRADE), ev.label, np.int8),
        units=joined(pools.lot_units[lots], ev.units, np.float64), value=joined(pools.lot_cost[lots], ev.value,
                                                                                np.float64),
        source=joined(sentinel, ev.source, np.int64),
    )
    src = new.sources
    sources = Sources(
        timestamp=np.append(src.timestamp, watermark), connector=np.append(src.connector, -1),
        client=np.append(src.client, -1),
        source_id=pd.concat([src.source_id, pd.Series(["carried"], dtype="str")], ignore_index=True),
        rank=np.append(src.rank, -1),
    )
    fills = replace(new.fills, base=remap[new.fills.base])
    conversions = replace(new.conversions, asset=remap[new.conversions.asset])
    ledger = Ledger(assets, sources, events, fills, conversions, [])
    carried_units = np.bincount(np.repeat(np.arange(len(keys)), counts), weights=pools.lot_units[lots],
                                minlength=len(keys))
    before, ghost = np.zeros(len(keys)), np.zeros(len(keys))
    before[found] = pools.turnover[at] - carried_units[found]
    ghost[found] = pools.ghost[at]
    return ledger, at, before, ghost


def _updated(pools: Pools, ev: Events, matched: Matched, touched: np.ndarray, before: np.ndarray, method: str,
             width: int) -> Pools:
    """``pools`` with the segments these events matched again (``touched``: their places in ``pools``)
    replaced, and the new ones added."""
    if len(ev.starts) == 0:
        return pools
    keep = np.ones(len(pools.pool), bool)
    keep[touched] = False
    counts, *lots = _carry(ev, matched, method)
    old_counts = np.diff(pools.lot_start)[keep]
    figures = [np.concatenate([old[keep], fresh]) for old, fresh in (
        (pools.quantity, matched.quantity), (pools.cost, matched.cost), (pools.opening, matched.opening),
        (pools.turnover, np.add.reduceat(ev.units, ev.starts) + before), (pools.ghost, matched.ghost))]
    spans = np.concatenate([pools.lot_start[:-1][keep], len(pools.lot_units) + np.cumsum(counts) - counts])
    all_counts = np.concatenate([old_counts, counts])
    pool = np.concatenate([pools.pool[keep], ev.seg_pool.astype(np.int64)])
    asset = np.concatenate([pools.asset[keep], ev.seg_asset.astype(np.int64)])
    order = np.argsort(pool * width + asset, kind="stable")
    first, size, split = spans[order], all_counts[order], len(pools.lot_units)
    # runs of segments whose lots lie end to end in one of the two arrays: a few slices, not a gather
    breaks = np.flatnonzero((first[1:] != first[:-1] + size[:-1]) | (first[1:] == split)) + 1
    bounds = np.concatenate([[0], breaks, [len(first)]]).tolist()
    pieces = [(int(first[lo]), int(first[hi - 1] + size[hi - 1])) for lo, hi in zip(bounds[:-1], bounds[1:],
                                                                                    strict=True)]
    columns = [np.concatenate([old[0:0], *(old[lo:hi] if lo < split else fresh[lo - split:hi - split]
                                           for lo, hi in pieces)])
               for old, fresh in zip((pools.lot_units, pools.lot_cost, pools.lot_opening), lots, strict=True)]
    return Pools(pool[order], asset[order], *(f[order] for f in figures),
                 np.concatenate([[0], np.cumsum(all_counts[order])]).astype(np.int64), *columns)


def _sorted_nets(connectors: np.ndarray, net: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(connectors)
    return connectors[order], net[order]


def _widened(net: np.ndarray, moved: np.ndarray, width: int) -> np.ndarray:
    """Net units per connector with the asset codes ``moved`` to a list of ``width`` assets."""
    wide = np.zeros((len(net), width))
    wide[:, moved] = net
    return wide


def _add_nets(before: tuple[np.ndarray, np.ndarray], new: tuple[np.ndarray, np.ndarray], remap: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """Net units per connector and asset so far: ``before`` plus the new ledger's (``remap``ped codes)."""
    connectors, net = before
    ids, more = new
    if len(ids) == 0:
        return before
    every = np.union1d(connectors, ids)
    total = np.zeros((len(every), net.shape[1]))
    total[np.searchsorted(every, connectors)] = net
    total[np.ix_(np.searchsorted(every, ids), remap[: more.shape[1]])] += more
    return every, total


def _sum_flows(before: pd.DataFrame, after: pd.DataFrame, assets: list[str]) -> pd.DataFrame:
    """Fees and cash flow so far per (connector, asset): ``before``'s rows with ``after``'s added, and
    ``after``'s new pairs appended (both have one row per pair)."""
    if after.empty:
        return before
    names = pd.Index(assets)
    width = len(assets)
    old = before["connector_id"].to_numpy(np.int64) * width + names.get_indexer(before["asset"])
    new = after["connector_id"].to_numpy(np.int64) * width + names.get_indexer(after["asset"])
    order = np.argsort(old)
    at = np.minimum(np.searchsorted(old, new, sorter=order), max(len(old) - 1, 0))
    at = order[at] if len(old) else at
    known = (old[at] == new) if len(old) else np.zeros(len(new), bool)
    summed = {}
    for column in ("fees", "net_cash_flow"):
        total = before[column].to_numpy(np.float64).copy()
        total[at[known]] += after[column].to_numpy(np.float64)[known]
        summed[column] = total
    frame = before.assign(**summed)
    return pd.concat([frame, after[~known]], ignore_index=True) if not known.all() else frame


def _held(segments: pd.DataFrame) -> pd.DataFrame:
    """Quantity, cost basis and opening units per asset code: the pools' sums as pandas' groupby gives
    them (one pool per asset, as under scope pooling: its figures, -0.0 and NaN as a sum gives 0.0)."""
    figures = ["quantity", "cost_basis", "opening_quantity"]
    asset = segments["asset"].to_numpy(np.int64)
    if len(asset) and not (np.diff(asset) > 0).all():  # several pools of one asset, or out of order
        return segments.groupby("asset")[figures].sum()
    columns = {}
    for name in figures:
        value = segments[name].to_numpy(np.float64) + 0.0
        value[np.isnan(value)] = 0.0
        columns[name] = value
    return pd.DataFrame(columns, index=pd.Index(asset, name="asset"))


def _per_asset(segments: pd.DataFrame, assets: list[str], mark_of: np.ndarray, prior: pd.DataFrame,
               disposal_codes: np.ndarray, gains: np.ndarray, flows: pd.DataFrame, unmatched: np.ndarray
               ) -> pd.DataFrame:
    """``result._per_asset`` for all history: holdings now; realized (the new gains added one by one in
    disposal order, as a full run's sum goes), fees and unmatched so far."""
    width = len(assets)
    names = pd.Index(assets)
    held = _held(segments)
    before = names.get_indexer(prior["asset"])
    flow_codes = names.get_indexer(flows["asset"])
    totals = {}
    for column in ("realized", "fees", "unmatched_quantity"):
        totals[column] = np.zeros(width)
        totals[column][before] = prior[column].to_numpy(np.float64)
    np.add.at(totals["realized"], disposal_codes, gains)
    totals["fees"] += np.bincount(flow_codes, weights=flows["fees"].to_numpy(np.float64), minlength=width)
    totals["unmatched_quantity"] += unmatched
    named = unmatched > 0
    for codes in (held.index.to_numpy(np.int64), before, disposal_codes, flow_codes):
        named[codes] = True
    codes = np.flatnonzero(named)
    return per_asset_frame(codes, held.reindex(codes, fill_value=0.0), *(total[codes] for total in totals.values()),
                           assets, mark_of)


__all__ = ["LABELS", "DisposalRows", "PnlState", "Pools", "resume", "start"]
