"""Resumable P&L: the engine's state after the last processed event, continued by later fills.

A full run over a million fills takes about a second; a sync adds a few fills at a time, all
later than everything before. ``start`` runs the engine once and keeps, per pool and asset, what
the rest of history needs: the lots still open (FIFO: in queue order, the first one partly
consumed; average cost: the pool as one lot, or two when part of it came from opening lots), the
turnover so far (dust is relative to it), each connector's net units (where scope pools lie) and
the result so far. ``resume`` feeds the state's lots back as acquisitions ahead of the new fills'
events and runs the same matching over those few, so its figures are a full run's up to float
round-off (tests/test_pnl_incremental.py). Pure: frames in, frames out; no database.

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
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from lib.pnl.ledger import ACQUIRE, LABELS, OPENING, TRADE, Events, Ledger, Sources, build_ledger
from lib.pnl.matching import Matched, Method, match
from lib.pnl.result import (
    PER_ASSET_COLUMNS,
    PnlResult,
    Totals,
    _client_of,
    _disposals,
    _flows,
    _holdings,
    _segments,
    _valued,
    _warnings,
    build_result,
    connector_nets,
    mark,
)
from lib.prices import DEFAULT_USD_LIKE

LOT_COLUMNS = ("pool", "asset", "units", "cost", "opening")


@dataclass(frozen=True)
class PnlState:
    """Where a P&L run stands after its last event (see the module docstring)."""

    method: str
    pool: str
    usd_like: frozenset[str]
    watermark: int  # timestamp (ms) of the last event processed
    lots: pd.DataFrame  # LOT_COLUMNS, per (pool, asset) in queue order
    turnover: pd.DataFrame  # pool, asset, units (acquired + disposed so far, for dust), ghost (Matched.ghost)
    nets: pd.DataFrame  # connector_id, asset, units: net units on the ledger so far
    client_of: dict[int, int]
    notes: list[str]  # the ledger's notes about the history so far
    result: PnlResult  # the figures so far (at the marks of the last run)
    fills: int  # fills processed
    unanchored: frozenset[int]  # connectors with opening lots and no event yet: their first fill dates them


def _carry(ev: Events, matched: Matched, assets: list[str], method: str) -> pd.DataFrame:
    """The lots each segment still holds after its last event (LOT_COLUMNS)."""
    n = len(ev.kind)
    if n == 0:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(LOT_COLUMNS, (np.int64, object, float, float, bool),
                                                                   strict=True)})
    lengths = np.diff(np.append(ev.starts, n))
    seg_of = np.repeat(np.arange(len(ev.starts)), lengths)
    if method == "average":  # one pool per segment: its opening part and the rest, as two lots
        quantity, cost, opening = matched.quantity, matched.cost, matched.opening
        with np.errstate(divide="ignore", invalid="ignore"):
            opening_cost = np.where(quantity > 0, cost * opening / quantity, 0.0)
        pool = np.concatenate([ev.seg_pool, ev.seg_pool])
        frame = pd.DataFrame({
            "pool": pool.astype(np.int64),
            "asset": np.concatenate([ev.seg_asset, ev.seg_asset]),
            "units": np.concatenate([opening, quantity - opening]),
            "cost": np.concatenate([opening_cost, cost - opening_cost]),
            "opening": np.repeat([True, False], len(quantity)),
            "order": np.concatenate([np.arange(len(quantity)) * 2, np.arange(len(quantity)) * 2 + 1]),
        })
        frame = frame[frame["units"] > 0].sort_values("order", kind="stable").drop(columns="order")
    else:
        acq = ev.kind == ACQUIRE
        units = np.where(acq, ev.units, 0.0)
        ends = np.empty(n)
        for lo, hi in zip(ev.starts.tolist(), np.append(ev.starts[1:], n).tolist(), strict=True):
            np.cumsum(units[lo:hi], out=ends[lo:hi])
        last = np.append(ev.starts[1:], n) - 1
        consumed = (ends[last] - matched.quantity)[seg_of]  # queue position disposals have eaten to
        left = np.minimum(units, np.clip(ends - consumed, 0.0, None))
        keep = acq & (left > 0)
        whole = left == units
        with np.errstate(divide="ignore", invalid="ignore"):
            cost = np.where(whole, ev.value, left * ev.value / units)
        frame = pd.DataFrame({
            "pool": ev.seg_pool[seg_of][keep].astype(np.int64),
            "asset": ev.seg_asset[seg_of][keep],
            "units": left[keep],
            "cost": cost[keep],
            "opening": ev.label[keep] == OPENING,
        })
    frame["asset"] = np.asarray(assets, dtype=object)[frame["asset"].to_numpy(np.int64)] if len(frame) else []
    return frame.reset_index(drop=True)[list(LOT_COLUMNS)]


def _turnover(ev: Events, matched: Matched, assets: list[str], before: np.ndarray | None,
              earlier: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per segment: units acquired and disposed so far and the dust rule's ghost units; segments
    these events did not touch keep their rows from ``earlier``."""
    n = len(ev.kind)
    total = np.add.reduceat(ev.units, ev.starts) if n else np.zeros(0)
    if before is not None:
        total = total + before
    frame = pd.DataFrame({"pool": ev.seg_pool.astype(np.int64),
                          "asset": np.asarray(assets, dtype=object)[ev.seg_asset] if n else [],
                          "units": total, "ghost": matched.ghost if n else np.zeros(0)})
    if earlier is None or earlier.empty:
        return frame
    touched = pd.MultiIndex.from_frame(frame[["pool", "asset"]])
    rest = earlier[~pd.MultiIndex.from_frame(earlier[["pool", "asset"]]).isin(touched)]
    return pd.concat([rest, frame], ignore_index=True)


def _nets_frame(connectors: np.ndarray, net: np.ndarray, assets: list[str]) -> pd.DataFrame:
    rows, cols = np.nonzero(net)
    return pd.DataFrame({"connector_id": connectors[rows].astype(np.int64),
                         "asset": np.asarray(assets, dtype=object)[cols], "units": net[rows, cols]})


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
    stamps = ledger.sources.timestamp
    state = PnlState(
        method=method, pool=pool, usd_like=usd_like, watermark=int(stamps.max()) if len(stamps) else -(2**62),
        lots=_carry(ledger.events, matched, ledger.assets, method),
        turnover=_turnover(ledger.events, matched, ledger.assets, None),
        nets=_nets_frame(*connector_nets(ledger), ledger.assets),
        client_of=_client_of(ledger), notes=list(ledger.notes), result=result, fills=len(fills),
        unanchored=_unanchored(fills, transfers, opening),
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
    None when only a full run can give its figures (see the module docstring)."""
    timestamps = fills["timestamp"].to_numpy(np.int64)
    if len(fills) and timestamps.min() <= state.watermark:
        return None
    if state.unanchored and fills["connector_id"].isin(list(state.unanchored)).any():
        return None
    new = build_ledger(fills, None, None, pool=state.pool, usd_like=state.usd_like, end=None)
    if new.notes:
        return None
    lots = state.lots
    assets = sorted(set(new.assets) | set(lots["asset"]) | set(state.turnover["asset"]) | set(state.nets["asset"])
                    | set(state.result.per_asset["asset"].astype(str)))
    code = {a: i for i, a in enumerate(assets)}
    remap = np.array([code[a] for a in new.assets] + [-1], np.int64)
    ledger, turnover, ghost = _merged(state, new, assets, remap)
    carried = ledger.events.source == len(ledger.sources.rank) - 1
    matched = match(ledger.events, state.method, turnover, ghost, carried)
    client_of = state.client_of | _client_of(new)
    everything = np.ones(len(ledger.sources.rank), bool)
    disposals, _ = _disposals(ledger, matched, everything)
    flows = _flows(ledger, everything, client_of)
    segments = _segments(ledger, matched)
    nets = _add_nets(state.nets, _nets_frame(*connector_nets(ledger), assets))
    mark_of = np.array([mark(marks or {}, a, state.usd_like) for a in assets] + [math.nan])
    connectors = np.sort(nets["connector_id"].unique())
    matrix = np.zeros((len(connectors), len(assets)))
    matrix[np.searchsorted(connectors, nets["connector_id"].to_numpy()), _codes(assets, nets["asset"])] = (
        nets["units"].to_numpy(float))
    holdings = _holdings(ledger, segments, state.pool, mark_of, client_of, (connectors, matrix))
    prior = state.result
    all_disposals = pd.concat([prior.disposals, disposals], ignore_index=True) if len(disposals) else prior.disposals
    all_flows = _sum_flows(prior.flows, flows)
    unmatched_new = pd.Series(np.bincount(ledger.events.asset, weights=matched.unmatched, minlength=len(assets)),
                              index=assets)
    per_asset = _per_asset(segments, assets, mark_of, prior.per_asset, disposals, flows, unmatched_new)
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
        warnings=_warnings(replace(ledger, notes=state.notes), unpriced, unmatched),
    )
    later = PnlState(
        method=state.method, pool=state.pool, usd_like=state.usd_like,
        watermark=int(timestamps.max()) if len(fills) else state.watermark,
        lots=_carry(ledger.events, matched, assets, state.method),
        turnover=_turnover(ledger.events, matched, assets, turnover, state.turnover), nets=nets,
        client_of=client_of, notes=state.notes,
        result=result, fills=state.fills + len(fills),
        unanchored=state.unanchored - set(fills["connector_id"].astype(int)),
    )
    return result, later


def _merged(state: PnlState, new: Ledger, assets: list[str], remap: np.ndarray
            ) -> tuple[Ledger, np.ndarray, np.ndarray]:
    """The new fills' ledger with the state's lots as acquisitions ahead of each segment's events;
    per segment, its turnover before these events (less the carried units, counted again) and ghost."""
    ev, lots = new.events, state.lots
    n_new = len(ev.kind)
    sentinel = len(new.sources.rank)  # the carried lots' source: no fill
    pool_new = np.repeat(ev.seg_pool, np.diff(np.append(ev.starts, n_new))).astype(np.int64)
    lot_asset = _codes(assets, lots["asset"])
    pool = np.concatenate([lots["pool"].to_numpy(np.int64), pool_new])
    asset = np.concatenate([lot_asset, remap[ev.asset]])
    pool_code, _ = pd.factorize(pool)
    seg = pool_code.astype(np.int64) * len(assets) + asset
    order = np.argsort(seg, kind="stable")  # carried lots first (they come first), each part in its own order
    seg = seg[order]
    starts = np.flatnonzero(np.r_[True, seg[1:] != seg[:-1]]) if len(seg) else np.zeros(0, np.int64)
    n_lots = len(lots)

    def joined(carried: np.ndarray, fresh: np.ndarray, dtype: type) -> np.ndarray:
        return np.concatenate([carried.astype(dtype), fresh.astype(dtype)])[order]

    label = np.where(lots["opening"].to_numpy(bool), OPENING, TRADE)
    events = Events(
        starts=starts, seg_pool=pool[order][starts] if len(seg) else np.zeros(0, np.int64),
        seg_asset=asset[order][starts] if len(seg) else np.zeros(0, np.int64),
        asset=asset[order], kind=joined(np.full(n_lots, ACQUIRE), ev.kind, np.int8),
        label=joined(label, ev.label, np.int8), units=joined(lots["units"].to_numpy(float), ev.units, np.float64),
        value=joined(lots["cost"].to_numpy(float), ev.value, np.float64),
        source=joined(np.full(n_lots, sentinel), ev.source, np.int64),
    )
    src = new.sources
    sources = Sources(
        timestamp=np.append(src.timestamp, state.watermark), connector=np.append(src.connector, -1),
        client=np.append(src.client, -1),
        source_id=pd.concat([src.source_id, pd.Series(["carried"], dtype="str")], ignore_index=True),
        rank=np.append(src.rank, -1),
    )
    fills = replace(new.fills, base=remap[new.fills.base])
    conversions = replace(new.conversions, asset=remap[new.conversions.asset])
    ledger = Ledger(assets, sources, events, fills, conversions, [])
    # turnover before these events, per merged segment, less the units carried in (counted again)
    before = state.turnover.set_index(["pool", "asset"])
    carried = lots.groupby(["pool", "asset"])["units"].sum()
    keys = pd.MultiIndex.from_arrays([events.seg_pool.astype(np.int64),
                                      np.asarray(assets, dtype=object)[events.seg_asset] if len(seg) else []])
    turnover = (before["units"].reindex(keys, fill_value=0.0).to_numpy()
                - carried.reindex(keys, fill_value=0.0).to_numpy())
    return ledger, turnover, before["ghost"].reindex(keys, fill_value=0.0).to_numpy()


def _codes(assets: list[str], names: pd.Series) -> np.ndarray:
    """Positions of ``names`` in the sorted ``assets`` (one lookup per distinct name, not per row)."""
    return pd.Index(assets).get_indexer(names.astype(object)).astype(np.int64)


def _add_nets(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Net units per connector and asset, the carried lots (connector -1) left out."""
    after = after[after["connector_id"] != -1]
    both = pd.concat([before, after], ignore_index=True)
    return both.groupby(["connector_id", "asset"], as_index=False, sort=True)["units"].sum()


def _sum_flows(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    if after.empty:
        return before
    both = pd.concat([before, after], ignore_index=True)
    return both.groupby(["connector_id", "client_id", "asset"], as_index=False, sort=False)[
        ["fees", "net_cash_flow"]].sum()


def _per_asset(segments: pd.DataFrame, assets: list[str], mark_of: np.ndarray, prior: pd.DataFrame,
               disposals: pd.DataFrame, flows: pd.DataFrame, unmatched: pd.Series) -> pd.DataFrame:
    """``result._per_asset`` for all history: holdings now, realized, fees and unmatched so far."""
    held = segments.groupby("asset")[["quantity", "cost_basis", "opening_quantity"]].sum()
    prior = prior.set_index(prior["asset"].astype(str))
    named = set(prior.index) | set(disposals["asset"].astype(str)) | set(flows["asset"].astype(str))
    code = {a: i for i, a in enumerate(assets)}
    codes = sorted(set(held.index) | {code[a] for a in named} | set(np.flatnonzero(unmatched.to_numpy() > 0)))
    frame = _valued(held.reindex(codes, fill_value=0.0).rename_axis("asset").reset_index(), assets, mark_of)
    frame = frame.set_index("asset")
    index = frame.index.astype(str)

    def summed(before: str, new: pd.Series) -> np.ndarray:
        old = prior[before].reindex(index).fillna(0.0).to_numpy(float) if before in prior else 0.0
        return old + new.reindex(index).fillna(0.0).to_numpy(float)

    frame["realized"] = summed("realized", disposals.groupby(disposals["asset"].astype(str))["gain"].sum())
    frame["fees"] = summed("fees", flows.groupby(flows["asset"].astype(str))["fees"].sum())
    frame["unmatched_quantity"] = summed("unmatched_quantity", unmatched)
    return frame.reset_index()[list(PER_ASSET_COLUMNS)]


__all__ = ["LABELS", "LOT_COLUMNS", "PnlState", "resume", "start"]
