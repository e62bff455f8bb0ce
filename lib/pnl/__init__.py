"""Realized and unrealized P&L, FIFO or average cost, following the team's P&L rules
(summarised in the README's "P&L rules" and docs/PNL-CHOICES.md).

Pure: pandas frames in, a ``PnlResult`` out; no Streamlit, database or ccxt. Vectorised
(numpy), so a million fills take about half a second (bench/bench_pnl.py).

Input frames
============
fills      connector_id:int, client_id:int, trade_id:str, timestamp:int64 (ms UTC), symbol:str,
           base:str, quote:str, side:'buy'|'sell', amount:float, price:float, cost:float,
           fee_cost:float (0 if none), fee_currency:str|None, quote_usd:float (USD price of
           the quote at the fill, NaN if unknown), fee_usd:float (USD price of the fee
           currency at the fill, NaN if unknown or no fee); optional realized_pnl:float (a
           contract fill's realised P&L in its settle currency as reported, NaN if not reported)
transfers  connector_id, client_id, transfer_id:str, timestamp:int64, type:'deposit'|'withdrawal',
           currency:str, amount:float, usd:float (price of currency at that time, NaN if unknown)
opening    connector_id, client_id, timestamp:int64, asset:str, amount:float, usd:float
marks      {asset: current USD price}; an asset missing here is unpriced
Text columns may be categorical (the fill store's ``symbol``, ``base``, ``quote``, ``side`` and
``fee_currency`` are): their codes are used as they are, with the same results as strings.
``lib.prices`` fills ``quote_usd``, ``fee_usd`` and ``usd`` from candles.

Choices where PNL.md is silent (for the README)
===============================================
- Cash. Whether a currency is cash is decided only by ``usd_like``; cash is worth exactly
  1.0, whatever ``quote_usd``/``fee_usd`` say.
- X, the value exchanged, is measured on the cash side when the fill has one (cash units
  x 1.0), else ``cost x quote_usd``. This keeps the invariant exact when the base is cash.
- V, the fee's value: a fee in the fill's base or quote is valued at the fill's own price
  (X / amount, X / cost: exact at the fill's timestamp); any other fee at ``fee_usd``, which
  is also the fallback when X cannot be valued. A fill whose X or V still cannot be
  valued counts those values as 0 and is named in the warnings.
- Contract fills (a ccxt symbol with a settle currency, ``BTC/USDT:USDT``) are not trades of
  the base for the quote: they acquire and dispose of nothing. Each is a realized row
  (``kind='contract'``, asset = its symbol) whose proceeds are ``realized_pnl`` x USD(settle)
  and whose basis is its fee's value V, so gain = realised P&L - fee. USD(settle) is 1.0 for
  cash, else the fill's ``quote_usd`` when it settles in its quote, else ``fee_usd`` when it
  settles in the fee currency (else unvalued, named). The settle currency moves by the P&L: cash
  flow for cash; for a non-cash settle currency (inverse contracts) a gain is a lot at its value
  then and a loss a disposal at its value then, before the fee, which leaves like a third-asset
  fee. A contract fill with no ``realized_pnl`` books only its fee and is named in the warnings
  (its P&L is unknown, not 0). Fees and cash flow are attributed to the symbol.
- Negative fees (rebates) follow the same table linearly; a rebate in a third non-cash
  asset is an acquisition of that asset at its value.
- Cash-to-cash fills (USDC/USDT): no lots, but the difference between the cash received
  and the cash given (fees included) is realized P&L in a ``kind='conversion'`` row whose
  asset is the cash given. Without it the invariant would not hold.
- Order of processing: by timestamp; within one timestamp deposits, then fills, then
  withdrawals; then by id: integer ids (exchange trade ids) numerically at any length,
  before any other id, which go as text. The three legs of one fill touch different assets.
- Opening lots stand for units held before a connector's synced history: each positive one
  is dated 1 ms before its own connector's first fill or transfer (``date_opening_lots``),
  so FIFO consumes it before that connector's later buys, but never before another
  connector's history, and a window that ends before the first sync still sees it.
- Transfers: ``amount`` is the units that arrived or left. Transfer fees are not modelled
  separately: a withdrawal fee inside ``amount`` only removes units (no P&L). Cash
  transfers are ignored (they are not trade cash flow). A deposit without a price gets
  zero basis and a warning.
- Opening rows with a negative amount (history explains more than is held) remove units
  like a withdrawal at the opening timestamp, with a warning.
- Unmatched disposals (more sold, or withdrawn, than the lots hold): the extra units get
  zero basis, the pool never goes negative (later buys open fresh lots), and the asset is
  flagged with the quantity (``unmatched``, ``per_asset.unmatched_quantity``, warnings).
  Withdrawals are flagged the same way. Round-off dust below 1e-10 of an asset's
  turnover is treated as zero.
- Unpriced: a non-cash asset with units held and no positive, finite mark. Its market
  value and unrealized are NaN; totals cover priced holdings only and say so in the
  warnings; ``Totals.unpriced_cost_basis`` keeps the books balanced. An asset held at 0
  units is priced (its value is 0 whatever the price).
- Fees: ``fees`` is the USD value V of every fee, attributed to the fill's base asset
  (per_asset) and location (flows). It is informational: fees are already inside
  proceeds and basis per PNL.md; never subtract them again.
- Invariant: ``realized + unrealized = market value + net cash flow`` when there are no
  transfers, opening lots or unpriced holdings. In general
  ``realized + unrealized = market_value + net_cash_flow - transfer_basis - unpriced_cost_basis``
  (``Totals.invariant_gap`` is the difference), where transfer_basis is the basis brought
  in by deposits and opening lots minus the basis withdrawn.
- Window: events after ``end`` are ignored (holdings are as at ``end``; pass marks for
  that time). Lots are built from all history up to ``end``; realized P&L, disposals,
  fees, cash flow and transfer_basis count only events at or after ``start``. So the
  invariant holds only when ``start`` is None. Unmatched quantities cover all history
  up to ``end`` (missing history matters whatever the window).
- Pooling: ``pool='scope'`` pools each asset across every connector (and client) in the
  frames; ``pool='connector'`` keeps one pool per connector and asset; ``pool='client'`` one
  per client and asset, which is each client's own scope pooling in a single run (the Clients
  page: realized and holdings per client equal one ``pool='scope'`` run per client's frames).
- Where things are: realized P&L belongs to the connector/client of the disposal (the
  fill or fee), fees and cash flow to the fill's. Holdings (``holdings``, and the
  unrealized of ``summarise``/``by_connector``/``by_client``) lie where the pool is under
  connector pooling; under scope pooling the pool has no location, so each asset's
  quantity, basis and market value are split pro rata over connectors by the units each
  connector holds on the ledger (net flows, negatives counted as 0); under client pooling the
  same, over the pool's own client's connectors.
- ``opening_quantity``: units still held that came from opening lots (FIFO: exact, the
  opening lots are the oldest; average cost: their pro rata share of the pool).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import pandas as pd

from lib.pnl.ledger import FILL_COLUMNS, OPENING_COLUMNS, TRANSFER_COLUMNS, build_ledger, date_opening_lots
from lib.pnl.matching import Method, affine_scan, match
from lib.pnl.result import (
    DISPOSAL_COLUMNS,
    FLOW_COLUMNS,
    HOLDING_COLUMNS,
    PER_ASSET_COLUMNS,
    PnlResult,
    Totals,
    assemble,
    by_client,
    by_connector,
    summarise,
)
from lib.prices import DEFAULT_USD_LIKE

Pool = Literal["scope", "connector", "client"]

__all__ = [
    "DISPOSAL_COLUMNS",
    "FILL_COLUMNS",
    "FLOW_COLUMNS",
    "HOLDING_COLUMNS",
    "OPENING_COLUMNS",
    "PER_ASSET_COLUMNS",
    "TRANSFER_COLUMNS",
    "Method",
    "PnlResult",
    "Pool",
    "Totals",
    "affine_scan",
    "by_client",
    "by_connector",
    "compute_pnl",
    "date_opening_lots",
    "summarise",
]


def compute_pnl(
    fills: pd.DataFrame,
    transfers: pd.DataFrame | None = None,
    opening: pd.DataFrame | None = None,
    marks: Mapping[str, float] | None = None,
    *,
    method: Method = "fifo",
    pool: Pool = "scope",
    start: int | None = None,
    end: int | None = None,
    usd_like: frozenset[str] = DEFAULT_USD_LIKE,
) -> PnlResult:
    """P&L of the given fills, transfers and opening lots, valued with ``marks`` (USD)."""
    if pool not in ("scope", "connector", "client"):
        raise ValueError(f"pool must be 'scope', 'connector' or 'client', got {pool!r}")
    ledger = build_ledger(fills, transfers, opening, pool=pool, usd_like=usd_like, end=end)
    run = [ledger, match(ledger.events, method)]
    del ledger  # ``assemble`` then holds the only references and lets the events go as it gathers them
    return assemble(run, marks or {}, method=method, pool=pool, start=start, usd_like=usd_like)
