"""A client statement's figures for one window [start, end): what a statement says, before any layout.

Every P&L figure is the period P&L's (``lib.reports.pnl_report``, ``lib.pnl.period``) for the
same client and window, so a statement and ``python -m lib.cli pnl`` never disagree. What a
statement adds:

- inventory per asset at both edges: units exactly as the synced history implies them
  (``lib.equity.balances_at``, Decimal), valued at the marks the period P&L values the
  holdings with at that edge (USD-like cash at 1);
- the split of the change in value net of flows (``closing - opening - net flows``) into
  **inventory revaluation** = sum over non-cash assets of opening units x (closing mark -
  opening mark): what the holdings at the start gained or lost from prices alone, as if
  nothing had been traded; and **trading P&L** = the rest (change in value net of flows
  minus revaluation): what buying, selling and fees added beyond that. An asset without a
  mark at either edge is left out of revaluation (so its effect lands in trading) and named;
- traded volume in USD as the Activity page counts it (``lib.activity``) and fees;
- the data's freshness: last successful sync and recorded reconciliation per account,
  coverage gaps (failed fetch windows), unpriced assets.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lib import activity, equity, reports
from lib.access import AccessDenied, Viewer
from lib.clients import get_client
from lib.db import session_scope
from lib.models import Connector, OpeningBalance, Trade, Transfer, utcnow
from lib.pnl.period import PeriodTotals
from lib.settings import get_settings
from lib.sync.status import connector_freshness

ONE_MS = timedelta(milliseconds=1)


@dataclass(frozen=True)
class InventoryLine:
    """One asset at the window's edges; a price or value is None when there was no mark."""

    asset: str
    opening_units: Decimal
    closing_units: Decimal
    opening_price: float | None
    closing_price: float | None
    opening_usd: float | None
    closing_usd: float | None
    revaluation: float | None  # opening units x (closing - opening price); 0 for cash; None: unpriced


@dataclass(frozen=True)
class AccountState:
    """One account's data freshness as the statement was made."""

    account: str
    last_success: datetime | None
    reconciliation: str | None  # balanced / unbalanced / unknown; None: never checked
    unbalanced: int
    gaps: list[str]  # failed fetch windows, as the Sync page words them


@dataclass(frozen=True)
class StatementData:
    client_id: int
    client: str
    period: str  # "YYYY-MM" for a month, else "YYYY-MM-DD to YYYY-MM-DD"
    start: datetime
    end: datetime  # exclusive
    method: str
    pool: str
    totals: PeriodTotals
    inventory: list[InventoryLine]
    revaluation: float
    trading: float
    volume_usd: Decimal
    fills: int
    unpriced_fills: int  # fills whose quote had no USD price: not in volume
    accounts: list[AccountState]
    unpriced: list[str]
    warnings: list[str]  # the P&L engine's, then history the sync could not read (reports.history_notes)
    generated_at: datetime

    @property
    def change_net_of_flows(self) -> float:
        return self.totals.closing_value - self.totals.opening_value - self.totals.net_flows


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def month_window(period: str) -> tuple[datetime, datetime]:
    """[first moment, first moment of the next month) of "YYYY-MM" in UTC; ValueError when malformed."""
    year, _, month = period.partition("-")
    if len(period) != 7 or not (year.isdigit() and month.isdigit()) or not 1 <= int(month) <= 12 or int(year) < 1970:
        raise ValueError(f"A month is written YYYY-MM, not {period[:40]!r}.")
    start = datetime(int(year), int(month), 1, tzinfo=UTC)
    return start, datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=UTC)


def month_of(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def _units(rows: pd.DataFrame) -> dict[str, Decimal]:
    return {str(asset): sum(group, Decimal(0)) for asset, group in rows.groupby("asset")["total"]}


def _inventory(opening: dict[str, Decimal], closing: dict[str, Decimal], marks_start: dict[str, float],
               marks_end: dict[str, float], cash: frozenset[str]) -> list[InventoryLine]:
    lines = []
    for asset in sorted(set(opening) | set(closing)):
        first, last = opening.get(asset, Decimal(0)), closing.get(asset, Decimal(0))
        p0 = 1.0 if asset in cash else marks_start.get(asset)
        p1 = 1.0 if asset in cash else marks_end.get(asset)
        v0 = None if p0 is None else float(first) * p0
        v1 = None if p1 is None else float(last) * p1
        if asset in cash:
            reval: float | None = 0.0
        elif first == 0:
            reval = 0.0
        else:
            reval = None if p0 is None or p1 is None else float(first) * (p1 - p0)
        lines.append(InventoryLine(asset, first, last, p0, p1, v0, v1, reval))
    return lines


def _volume(session: Session, viewer: Viewer, client_id: int, start: datetime,
            end: datetime) -> tuple[Decimal, int, int]:
    """USD volume (as the Activity page counts it, to the same cent: ``lib.activity``), fill count and
    unpriced fill count."""
    fills = activity.load_priced_fills(session, viewer, start, end, client_id)
    if fills.empty:
        return Decimal(0), 0, 0
    volume = activity.cents_total(activity.cents_cells(fills)["usd_cents"])  # the Activity page's cents
    return volume, len(fills), int(fills["usd"].isna().sum())


def _accounts(session: Session, viewer: Viewer, client_id: int) -> list[AccountState]:
    gaps: dict[int, list[str]] = {}
    for connector in reports.coverage_report(viewer, client_id, session_or_url=session):
        gaps[connector.connector_id] = [f"{line.data}: {line.failed}" for line in connector.lines if line.failed]
    return [AccountState(f"{row.exchange} / {row.label}", row.last_success_at, row.reconciliation, row.unbalanced,
                         gaps.get(row.connector_id, []))
            for row in connector_freshness(session, viewer, get_settings().sync_interval_seconds, client_id)]


def gather(viewer: Viewer, client_id: int, start: datetime, end: datetime, period: str | None = None,
           method: reports.Method = "fifo", pool: reports.Pool = "scope") -> StatementData:
    """The statement of ``client_id`` for [start, end); AccessDenied when the viewer may not see it."""
    if not viewer.can_see_client(client_id):
        raise AccessDenied("You may not see this client's statements.")
    if start >= end:
        raise ValueError("The statement's start must be before its end.")
    cash = reports.usd_like()
    report = reports.pnl_report(None, viewer, client_id, None, method, start, end, pool)
    before = reports.pnl_report(None, viewer, client_id, None, method, None, start, pool)
    opening = _units(equity.balances_at(viewer, client_id, start - ONE_MS).rows)
    closing = _units(equity.balances_at(viewer, client_id, end - ONE_MS).rows)
    inventory = _inventory(opening, closing, before.marks, report.marks, cash)
    revaluation = sum(line.revaluation or 0.0 for line in inventory)
    with session_scope() as session:
        name = get_client(session, client_id).name
        volume, fills, unpriced_fills = _volume(session, viewer, client_id, start, end)
        accounts = _accounts(session, viewer, client_id)
    unpriced = sorted({line.asset for line in inventory if line.revaluation is None}
                      | set(report.result.unpriced_assets))
    history = reports.history_notes(viewer, client_id)  # what the sync could not read, as on the P&L page
    totals = report.period
    change = totals.closing_value - totals.opening_value - totals.net_flows
    label = period or f"{start:%Y-%m-%d} to {(end - ONE_MS):%Y-%m-%d}"
    return StatementData(
        client_id=client_id, client=name, period=label, start=start, end=end, method=method, pool=pool,
        totals=totals, inventory=inventory, revaluation=revaluation, trading=change - revaluation,
        volume_usd=volume, fills=fills, unpriced_fills=unpriced_fills, accounts=accounts, unpriced=unpriced,
        warnings=[*report.result.warnings, *history.unreadable, *history.opening], generated_at=utcnow())


def scope_version(session: Session, client_id: int, end: datetime) -> str:
    """What a closed window's statement depends on: the client's accounts and, per kind, the count
    and newest id of the fills, transfers and opening balances dated before ``end``. Data synced
    later but dated inside the window (a late fill, a back-filled transfer) changes it; data dated
    after the window, syncs and ticker fetches do not."""
    end_ms = _ms(end)
    ids = sorted(session.scalars(select(Connector.id).where(Connector.client_id == client_id)))
    parts: list[object] = [ids]
    for model in (Trade, Transfer, OpeningBalance):
        count, newest = session.execute(select(func.count(model.id), func.max(model.id)).where(
            model.connector_id.in_(ids), model.timestamp < end_ms)).one()
        parts += [count, newest]
    return "|".join(map(str, parts))
