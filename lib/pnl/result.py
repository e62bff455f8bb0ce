"""Assemble matched events into the frames and totals the pages draw, and summarise them."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lib.pnl.arrays import negated
from lib.pnl.ledger import (
    ACQUIRE,
    CONTRACT,
    DEPOSIT,
    DISPOSE,
    LABELS,
    OPENING,
    WITHDRAW,
    Conversions,
    Ledger,
    Sources,
    factorize_rows,
    first_seen,
)
from lib.pnl.matching import Matched

DISPOSAL_COLUMNS = (
    "timestamp",
    "connector_id",
    "client_id",
    "asset",
    "units",
    "proceeds",
    "basis",
    "gain",
    "unmatched_units",
    "kind",
    "source_id",
)
HOLDING_COLUMNS = (
    "connector_id",
    "client_id",
    "asset",
    "quantity",
    "cost_basis",
    "market_value",
    "unrealized",
    "priced",
    "opening_quantity",
)
PER_ASSET_COLUMNS = (
    "asset",
    "quantity",
    "cost_basis",
    "market_value",
    "realized",
    "unrealized",
    "fees",
    "unmatched_quantity",
    "priced",
    "opening_quantity",
)
FLOW_COLUMNS = ("connector_id", "client_id", "asset", "fees", "net_cash_flow")


@dataclass(frozen=True)
class Totals:
    """Headline figures in USD. Unrealized and market value cover priced holdings only."""

    realized: float
    unrealized: float
    fees: float  # informational: already inside proceeds and basis, never subtract it again
    net: float  # realized + unrealized
    market_value: float
    net_cash_flow: float  # USD-like cash in minus cash out from trades, at 1.0 per unit
    transfer_basis: float  # basis brought in by deposits and opening lots, minus basis withdrawn
    unpriced_cost_basis: float  # remaining basis of holdings that have no mark
    withdrawn_basis: float  # basis that withdrawals (and negative opening rows) took out, no P&L

    @property
    def invariant_gap(self) -> float:
        """realized + unrealized - (market value + net cash flow - transfer basis - unpriced basis).

        Zero up to round-off when the window starts at the beginning of history.
        """
        rhs = self.market_value + self.net_cash_flow - self.transfer_basis - self.unpriced_cost_basis
        return self.realized + self.unrealized - rhs


@dataclass(frozen=True)
class PnlResult:
    """Everything one P&L computation produced; see the package docstring for the rules."""

    method: str
    pool: str
    per_asset: pd.DataFrame  # PER_ASSET_COLUMNS, one row per asset
    holdings: pd.DataFrame  # HOLDING_COLUMNS, where the units lie (connector, client, asset)
    disposals: pd.DataFrame  # DISPOSAL_COLUMNS, in processing order, inside the window
    flows: pd.DataFrame  # FLOW_COLUMNS: fees and cash flow of the window's fills, by base asset
    totals: Totals
    unpriced_assets: list[str]
    unmatched: dict[str, float]  # asset -> units disposed or withdrawn with no lot behind them
    warnings: list[str]


@functools.lru_cache(maxsize=64)
def _names(names: tuple[str, ...]) -> pd.api.extensions.ExtensionArray:
    """The names as a ``str`` array, made once per list (a resumed run names its few rows five times)."""
    return pd.array(list(names), dtype="str")


def _taken(text: pd.api.extensions.ExtensionArray, rows: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """``text.take(rows)`` for a ``str`` array and rows in range, its Arrow buffers from the C allocator
    (``malloc``), which reuses the pages the engine's freed arrays leave: pyarrow's own pool takes fresh
    pages (a million disposals' three text columns: ~35 MB more at the peak)."""
    if not isinstance(text, pd.arrays.ArrowStringArray):
        return text.take(rows)
    taken = pc.take(pa.array(text), pa.array(rows), memory_pool=pa.system_memory_pool())
    return pd.arrays.ArrowStringArray(taken, dtype=text.dtype)


def _str_array(names: list[str] | tuple[str, ...], codes: np.ndarray) -> pd.api.extensions.ExtensionArray:
    return _taken(_names(tuple(names)), codes)


def mark(marks: Mapping[str, float], asset: str, usd_like: frozenset[str]) -> float:
    """USD-like is 1.0; a missing, non-finite or non-positive mark is NaN (unpriced)."""
    if asset in usd_like:
        return 1.0
    mark = marks.get(asset)
    return float(mark) if mark is not None and math.isfinite(mark) and mark > 0 else math.nan


def _client_of(ledger: Ledger) -> dict[int, int]:
    """Each connector's client (a connector belongs to one client), in order of first appearance."""
    connector, client = ledger.sources.connector, ledger.sources.client
    first = first_seen(connector, len(ledger.sources.connector_codes[1]))  # no hash table sized for every row
    return dict(zip(connector[first].tolist(), client[first].tolist(), strict=True))


def event_columns(ledger: Ledger, matched: Matched) -> dict[str, np.ndarray | None]:
    """What ``_disposals`` reads of the events and their matching, by name (it lets each go once used)."""
    ev = ledger.events
    return {"kind": ev.kind, "label": ev.label, "processing": ev.processing, "source": ev.source, "value": ev.value,
            "units": ev.units, "asset": ev.asset, "basis": matched.basis, "unmatched": matched.unmatched}


def _disposals(columns: dict[str, np.ndarray | None], src: Sources, conv: Conversions, assets: list[str],
               in_window: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """Realized rows (trades, third-asset fees, cash conversions) inside the window, in processing
    order, and each row's asset code (sums by asset without grouping a million strings).

    ``columns`` (``event_columns``) is emptied: each event column is let go once its rows are
    gathered, so when nothing else holds them the events and the disposals are never all in memory."""
    kind, label, processing, event_source = (columns.pop(name) for name in ("kind", "label", "processing", "source"))
    dispose = kind == DISPOSE
    del kind
    conv_rows = np.flatnonzero(in_window[conv.source])
    everything = bool(in_window.all())
    order: np.ndarray | None = None
    if processing is not None and len(conv_rows) == 0 and not (dispose & (label == CONTRACT)).any():
        # events only (usual), and no contract row that label order would put after its fill's fee row:
        # each fill's rows as the ledger made them (trade, then fee) are in label order, so the
        # ledger's processing order is the order wanted, with no sort
        rows = np.compress(dispose[processing], processing)  # boolean indexing takes several times longer
        del dispose, processing
        if not everything:
            rows = rows[in_window[event_source[rows]]]
        source, labels = event_source[rows], label[rows]
    else:
        del processing
        rows = np.flatnonzero(dispose & in_window[event_source])
        del dispose
        source = np.concatenate([event_source[rows], conv.source[conv_rows]])
        labels = np.concatenate([label[rows], conv.label[conv_rows]])
        # processing order; within one fill a trade row before its fee row (labels), and an event before
        # a realized row of the same label: one unique key, one sort
        key = src.rank[source].astype(np.int64)
        key *= len(LABELS)
        key += labels
        key *= 2
        key[len(rows):] += 1
        order = np.argsort(key, kind="stable")
        del key
        source, labels = source[order], labels[order]
        if len(conv_rows) == 0:  # events only: one gather per column, and the sort's arrays let go
            rows, order = rows[order], None
    del event_source, label

    def column(name: str, conversions: np.ndarray) -> np.ndarray:
        events = columns.pop(name)
        if order is None:
            return events[rows]
        return np.concatenate([events[rows], conversions[conv_rows]])[order]

    proceeds = column("value", conv.proceeds)
    basis = column("basis", conv.basis)
    codes = column("asset", conv.asset)
    gathered = {
        "timestamp": src.timestamp[source],
        "connector_id": src.connector[source],
        "client_id": src.client[source],
        "asset": _str_array(assets, codes),
        "units": column("units", conv.units),
        "proceeds": proceeds,
        "basis": basis,
        "gain": proceeds - basis,
        "unmatched_units": column("unmatched", np.zeros(len(conv.source))),
        "kind": _str_array(LABELS, labels),
        "source_id": _taken(src.source_id.array, source),
    }
    # copy=False: the fresh columns become the frame's own (no second copy stacked into blocks)
    return pd.DataFrame(gathered, copy=False), codes


def _flows(ledger: Ledger, in_window: np.ndarray, client_of: dict[int, int]) -> pd.DataFrame:
    """Fees and cash flow of the window's fills, summed by (connector, base asset)."""
    fills = ledger.fills
    keep = in_window[fills.source]
    everything = bool(keep.all())  # (usual) no copies of the fills' columns then

    def window(column: np.ndarray) -> np.ndarray:
        return column if everything else column[keep]

    codes, connectors = factorize_rows(ledger.sources.connector_codes, window(fills.source))
    key = codes  # in place: each of these arrays is fill-length
    key *= len(ledger.assets)
    key += window(fills.base)
    size = len(connectors) * len(ledger.assets)
    used = np.flatnonzero(np.bincount(key, minlength=size))
    frame = pd.DataFrame(
        {
            "connector_id": np.asarray(connectors)[used // len(ledger.assets)].astype(np.int64),
            "asset": _str_array(ledger.assets, used % len(ledger.assets)),
            "fees": np.bincount(key, weights=window(fills.fee_usd), minlength=size)[used],
            "net_cash_flow": np.bincount(key, weights=window(fills.cash_flow), minlength=size)[used],
        }
    )
    frame.insert(1, "client_id", frame["connector_id"].map(client_of).astype(np.int64))
    return frame


def _segments(ledger: Ledger, matched: Matched) -> pd.DataFrame:
    ev = ledger.events
    return pd.DataFrame(
        {
            "pool": ev.seg_pool,
            "asset": ev.seg_asset,
            "quantity": matched.quantity,
            "cost_basis": matched.cost,
            "opening_quantity": matched.opening,
        }
    )


def connector_nets(ledger: Ledger) -> tuple[np.ndarray, np.ndarray]:
    """(connector ids, units each connector holds per asset code on the ledger: net flows)."""
    ev = ledger.events
    key, connectors = factorize_rows(ledger.sources.connector_codes, ev.source)
    n_assets = len(ledger.assets)
    key *= n_assets  # in place: a million fills' events make each of these arrays ~13 MB
    key += ev.asset
    signed = negated(ev.kind != ACQUIRE, ev.units)
    net = np.bincount(key, weights=signed, minlength=len(connectors) * n_assets)
    return np.asarray(connectors, np.int64), net.reshape(len(connectors), n_assets)


def _scope_locations(ledger: Ledger, segments: pd.DataFrame, pool: str, client_of: dict[int, int],
                     nets: tuple[np.ndarray, np.ndarray] | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split each scope-pooled (or client-pooled) asset over connectors pro rata to the units each holds.

    A connector's units are its net flows (acquired minus disposed, from trades, fees,
    transfers and opening lots); negative nets count as 0. Quantity, basis and opening units
    are split by the same shares; when no connector holds a positive net the pool gets one
    row with no connector. Under client pooling only the pool's client's connectors share it.
    ``nets`` (``connector_nets``) may be given when they were kept from earlier events.
    Returns per row its segment, its share, its connector and whether it has none, by segment.
    """
    connectors, net = connector_nets(ledger) if nets is None else nets
    held = np.clip(net, 0.0, None)
    asset = segments["asset"].to_numpy(np.int64)
    pools = segments["pool"].to_numpy(np.int64)
    column = held[:, asset].T if len(connectors) else np.zeros((len(segments), 0))  # segment x connector
    if pool == "client":
        owner = np.array([client_of.get(int(c), -1) for c in connectors], np.int64)
        column = np.where(owner[None, :] == pools[:, None], column, 0.0)
    total = column.sum(axis=1)
    seg, where = np.nonzero(column > 0)  # by segment, then connector: one row per share
    share = column[seg, where] / total[seg]
    alone = np.flatnonzero(~(total > 0))  # no connector holds it: one row, no connector
    seg = np.concatenate([seg, alone])
    share = np.concatenate([share, np.ones(len(alone))])
    ids = np.concatenate([np.asarray(connectors, np.int64)[where], np.zeros(len(alone), np.int64)])
    none = np.arange(len(ids)) >= len(where)
    order = np.argsort(seg, kind="stable")
    return seg[order], share[order], ids[order], none[order]


def _valued(asset: np.ndarray, quantity: np.ndarray, cost: np.ndarray, assets: list[str], mark_of: np.ndarray
            ) -> dict[str, object]:
    """Name, market value and unrealized of rows of asset codes, quantities and cost bases (a frame's
    columns); an asset with units and no mark gets NaN, never 0."""
    mark = mark_of[asset]
    market_value = np.where(quantity == 0, 0.0, quantity * mark)
    return {"asset": _str_array(assets, asset), "quantity": quantity, "cost_basis": cost, "market_value": market_value,
            "unrealized": market_value - cost, "priced": (quantity == 0) | ~np.isnan(mark)}


def _clients(connector: np.ndarray, none: np.ndarray, client_of: dict[int, int]) -> pd.arrays.IntegerArray:
    """Each row's client by its connector (missing where it has no connector or an unknown one)."""
    ids = np.fromiter(client_of.keys(), np.int64, len(client_of))
    owners = np.fromiter(client_of.values(), np.int64, len(client_of))
    order = np.argsort(ids)
    at = np.minimum(np.searchsorted(ids, connector, sorter=order), max(len(ids) - 1, 0))
    at = order[at] if len(ids) else at
    known = ~none & (ids[at] == connector) if len(ids) else np.zeros(len(connector), bool)
    return pd.arrays.IntegerArray(np.where(known, owners[at] if len(ids) else 0, 0), ~known)


def _holdings(
    ledger: Ledger, segments: pd.DataFrame, pool: str, mark_of: np.ndarray, client_of: dict[int, int],
    nets: tuple[np.ndarray, np.ndarray] | None = None,
) -> pd.DataFrame:
    """HOLDING_COLUMNS: each pool's holding where its units lie, one frame made from arrays."""
    figures = ("quantity", "cost_basis", "opening_quantity")
    if pool == "connector":
        seg = np.arange(len(segments))
        connector, none = segments["pool"].to_numpy(np.int64), np.zeros(len(segments), bool)
        located = {name: segments[name].to_numpy(np.float64) for name in figures}
    else:
        seg, share, connector, none = _scope_locations(ledger, segments, pool, client_of, nets)
        located = {name: segments[name].to_numpy(np.float64)[seg] * share for name in figures}
    keep = np.flatnonzero((located["quantity"] != 0) | (located["cost_basis"] != 0))
    seg, connector, none = seg[keep], connector[keep], none[keep]
    located = {name: column[keep] for name, column in located.items()}
    if pool == "client":  # a client's pool with no connector holding it still is that client's
        client = pd.arrays.IntegerArray(segments["pool"].to_numpy(np.int64)[seg], np.zeros(len(seg), bool))
    else:
        client = _clients(connector, none, client_of)
    return pd.DataFrame({
        "connector_id": pd.arrays.IntegerArray(np.where(none, 0, connector), none), "client_id": client,
        **_valued(segments["asset"].to_numpy(np.int64)[seg], located["quantity"], located["cost_basis"],
                  ledger.assets, mark_of),
        "opening_quantity": located["opening_quantity"],
    })


def _unmatched(ledger: Ledger, matched: Matched) -> np.ndarray:
    """Units disposed or withdrawn with no lot behind them, per asset code."""
    short = np.flatnonzero(matched.unmatched)  # few: the same sums as over every event (the rest add 0)
    return np.bincount(ledger.events.asset[short], weights=matched.unmatched[short],
                       minlength=len(ledger.assets)).astype(np.float64, copy=False)  # no rows: bincount gives ints


def _per_asset(
    assets: list[str],
    segments: pd.DataFrame,
    unmatched: np.ndarray,
    mark_of: np.ndarray,
    disposals: pd.DataFrame,
    flows: pd.DataFrame,
    disposal_codes: np.ndarray,
) -> pd.DataFrame:
    """One row per asset with holdings, realized P&L or fees (cash assets: quantity 0)."""
    held = segments.groupby("asset")[["quantity", "cost_basis", "opening_quantity"]].sum()
    width = len(assets)
    names = pd.Index(assets)
    realized = np.bincount(disposal_codes, weights=disposals["gain"].to_numpy(float), minlength=width)
    named = np.zeros(width, bool)
    named[disposal_codes] = True
    named[held.index.to_numpy(np.int64)] = True
    fees = flows.groupby("asset")["fees"].sum()
    named[names.get_indexer(fees.index)] = True
    codes = np.flatnonzero(named)
    held = held.reindex(codes, fill_value=0.0)
    return per_asset_frame(codes, held, realized[codes], fees.reindex(names[codes]).to_numpy(np.float64),
                           unmatched[codes], assets, mark_of)


def per_asset_frame(codes: np.ndarray, held: pd.DataFrame, realized: np.ndarray, fees: np.ndarray,
                    unmatched: np.ndarray, assets: list[str], mark_of: np.ndarray) -> pd.DataFrame:
    """PER_ASSET_COLUMNS from per-asset figures (``held``: quantity, cost basis and opening units);
    a missing (NaN) realized, fee or unmatched figure counts 0."""
    quantity = held["quantity"].to_numpy(np.float64)
    frame = _valued(codes, quantity, held["cost_basis"].to_numpy(np.float64), assets, mark_of)
    frame.update(realized=np.nan_to_num(realized, nan=0.0, posinf=np.inf, neginf=-np.inf),
                 fees=np.nan_to_num(fees, nan=0.0, posinf=np.inf, neginf=-np.inf),
                 unmatched_quantity=np.nan_to_num(unmatched, nan=0.0, posinf=np.inf, neginf=-np.inf),
                 opening_quantity=held["opening_quantity"].to_numpy(np.float64))
    return pd.DataFrame({name: frame[name] for name in PER_ASSET_COLUMNS})


def _moved(ledger: Ledger, matched: Matched, in_window: np.ndarray) -> tuple[float, float]:
    """Basis the window's deposits and opening lots brought in, and the basis its withdrawals took out."""
    ev = ledger.events
    kind, label = ev.kind, ev.label
    rows = np.flatnonzero((label == DEPOSIT) | (label == OPENING) | (kind == WITHDRAW))  # few: the rest add 0
    kind, label = kind[rows], label[rows]
    window = True if in_window.all() else in_window[ev.source[rows]]
    brought_in = (kind == ACQUIRE) & ((label == DEPOSIT) | (label == OPENING)) & window
    taken_out = (kind == WITHDRAW) & window
    return float(ev.value[rows[brought_in]].sum()), float(matched.basis[rows[taken_out]].sum())


def _totals(moved: tuple[float, float], per_asset: pd.DataFrame, disposals: pd.DataFrame, flows: pd.DataFrame
            ) -> Totals:
    brought_in, withdrawn = moved
    priced = per_asset["priced"].to_numpy(bool)
    realized, unrealized = float(disposals["gain"].sum()), float(per_asset.loc[priced, "unrealized"].sum())
    return Totals(
        realized=realized,
        unrealized=unrealized,
        fees=float(flows["fees"].sum()),
        net=realized + unrealized,
        market_value=float(per_asset.loc[priced, "market_value"].sum()),
        net_cash_flow=float(flows["net_cash_flow"].sum()),
        transfer_basis=brought_in - withdrawn,
        unpriced_cost_basis=float(per_asset.loc[~priced, "cost_basis"].sum()),
        withdrawn_basis=withdrawn,
    )


def _warnings(notes: list[str], unpriced: list[str], unmatched: dict[str, float]) -> list[str]:
    return list(notes) + shortfall_warnings(unpriced, unmatched)


def shortfall_warnings(unpriced: list[str], unmatched: Mapping[str, float]) -> list[str]:
    """The sentences for holdings without a price and for disposals beyond the lots held: the
    last of a result's ``warnings`` (a page that states these on its own leaves them out)."""
    words = []
    if unpriced:
        words.append(
            f"No current price for {', '.join(unpriced)}: these holdings have no market value "
            "and are left out of the unrealized and market value totals."
        )
    return words + [
        f"More {asset} was sold or withdrawn than the synced history holds: {qty:.10g} {asset} had no "
        "matching acquisition and was given zero cost basis (history is probably incomplete)."
        for asset, qty in unmatched.items()
    ]


def build_result(
    ledger: Ledger,
    matched: Matched,
    marks: Mapping[str, float],
    *,
    method: str,
    pool: str,
    start: int | None,
    usd_like: frozenset[str],
) -> PnlResult:
    """Frames, totals and warnings from matched events; ``start`` limits realized, fees and cash flow."""
    return assemble([ledger, matched], marks, method=method, pool=pool, start=start, usd_like=usd_like)


def assemble(
    run: list,
    marks: Mapping[str, float],
    *,
    method: str,
    pool: str,
    start: int | None,
    usd_like: frozenset[str],
) -> PnlResult:
    """``build_result`` of ``run`` (``[ledger, matched]``), which it empties and spends: once holdings,
    flows and the events' sums are made it keeps only the event columns the disposals need, each let go
    once gathered. A caller that keeps no other reference (``compute_pnl``) then never holds the events
    and the disposals' million rows at once."""
    ledger, matched = run
    run.clear()
    in_window = ledger.sources.timestamp >= start if start is not None else np.ones(len(ledger.sources.rank), bool)
    mark_of = np.array([mark(marks, a, usd_like) for a in ledger.assets] + [math.nan])
    client_of = _client_of(ledger)
    segments = _segments(ledger, matched)
    # holdings and flows before the disposals: their event- and fill-length temporaries are let go
    # before the disposals' million rows are made, so the two never add up in peak memory
    holdings = _holdings(ledger, segments, pool, mark_of, client_of)
    flows = _flows(ledger, in_window, client_of)
    unmatched_by_asset, moved = _unmatched(ledger, matched), _moved(ledger, matched, in_window)
    assets, notes, sources, conversions = ledger.assets, ledger.notes, ledger.sources, ledger.conversions
    columns = event_columns(ledger, matched)
    del ledger, matched
    disposals, disposal_codes = _disposals(columns, sources, conversions, assets, in_window)
    per_asset = _per_asset(assets, segments, unmatched_by_asset, mark_of, disposals, flows, disposal_codes)
    unpriced = sorted(per_asset.loc[~per_asset["priced"], "asset"])
    unmatched = {a: float(q) for a, q in zip(per_asset["asset"], per_asset["unmatched_quantity"], strict=True) if q > 0}
    return PnlResult(
        method=method,
        pool=pool,
        per_asset=per_asset,
        holdings=holdings,
        disposals=disposals,
        flows=flows,
        totals=_totals(moved, per_asset, disposals, flows),
        unpriced_assets=unpriced,
        unmatched=unmatched,
        warnings=_warnings(notes, unpriced, unmatched),
    )


def summarise(result: PnlResult, by: Literal["connector_id", "client_id"]) -> pd.DataFrame:
    """Realized, fees and cash flow where the fills happened; holdings where the units lie.

    Unrealized, market value and cost basis come from ``result.holdings`` (split pro rata
    over connectors under scope pooling); as in the totals, unpriced holdings are left out
    of unrealized and market value and flagged in ``has_unpriced``.
    """
    held = result.holdings
    priced = held[held["priced"]]
    frame = pd.concat(
        [
            result.disposals.groupby(by)["gain"].sum().rename("realized"),
            priced.groupby(by, dropna=False)[["unrealized", "market_value"]].sum(),
            held.groupby(by, dropna=False)["cost_basis"].sum(),
            result.flows.groupby(by)[["fees", "net_cash_flow"]].sum(),
            (~held["priced"]).groupby(held[by], dropna=False).any().rename("has_unpriced"),
        ],
        axis=1,
    )
    numbers = ["realized", "unrealized", "market_value", "cost_basis", "fees", "net_cash_flow"]
    frame[numbers] = frame[numbers].fillna(0.0)
    frame["has_unpriced"] = frame["has_unpriced"].fillna(False).astype(bool)
    frame["net"] = frame["realized"] + frame["unrealized"]
    return frame.rename_axis(by).reset_index()[
        [by, "realized", "unrealized", "net", "fees", "market_value", "cost_basis", "net_cash_flow", "has_unpriced"]
    ]


def by_connector(result: PnlResult) -> pd.DataFrame:
    """``summarise`` by connector."""
    return summarise(result, "connector_id")


def by_client(result: PnlResult) -> pd.DataFrame:
    """``summarise`` by client."""
    return summarise(result, "client_id")
