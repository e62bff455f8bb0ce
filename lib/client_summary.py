"""Clients side by side: one row per client with value, value changes, period P&L, traded volume,
fees, accounts, reconciliation and freshness, and a total row; for admins and analysts only.

The P&L columns are each client's own period P&L (``reports.pnl_report`` for that client, lots
pooled across the client's accounts, as the P&L page shows with that client picked). One run
over every client grouped by client would not give the same numbers: scope pooling would match
one client's sales against another client's lots, and the holdings' marks would be weighted by
every client's price sources. The per-client runs read the shared fill store (``queries.pnl_fills``
narrows one in-memory frame), so together they cost about one run over everything.
Volume is one pass over the window's fills for all clients (``fill_volume``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from lib import equity, prices, queries, reports
from lib.access import Role, Viewer
from lib.reports import SessionOrUrl, _ms, _session
from lib.settings import get_settings
from lib.sync.status import connector_freshness

#: the figures per client, in this order (USD amounts as floats; None where unknown)
COLUMNS = [
    "client_id", "client", "value_usd", "change_24h", "change_7d", "change_30d", "realized", "unrealized_change",
    "net", "volume_usd", "fees_usd", "accounts", "unbalanced_accounts", "last_success_at", "unpriced_fills",
]
#: summed into the total row (a change is summed over the clients that have one)
SUMMED = ["value_usd", "change_24h", "change_7d", "change_30d", "realized", "unrealized_change", "net", "volume_usd",
          "fees_usd", "accounts", "unbalanced_accounts", "unpriced_fills"]


@dataclass(frozen=True)
class ClientSummary:
    rows: pd.DataFrame  # COLUMNS, one row per client the viewer may see, by name
    total: dict[str, object]  # SUMMED over the rows; last_success_at the oldest of theirs
    unpriced: list[str]  # assets left out of some client's value or P&L (no price)


def fill_volume(session: Session, viewer: Viewer, start_ms: int | None, end_ms: int | None) -> pd.DataFrame:
    """USD traded per client in [start, end): each fill's cost times its quote's USD price at its
    time (1.0 for USD-like quotes). ``unpriced_fills``: fills left out for want of a price.

    A small function of its own until a shared trading-activity module exists.
    """
    cash = reports.usd_like()
    fills = queries.pnl_fills(session, viewer, end_ms=end_ms)
    if start_ms is not None:
        fills = fills[fills["timestamp"].to_numpy(np.int64) >= start_ms]
    if fills.empty:
        return pd.DataFrame({"client_id": pd.Series(dtype=np.int64), "volume_usd": pd.Series(dtype=float),
                             "unpriced_fills": pd.Series(dtype=np.int64)})
    foreign = ~fills["quote"].isin(cash).to_numpy()
    quote_usd = np.ones(len(fills))
    if foreign.any():
        sources = queries.price_sources(session, viewer)
        candles = queries.candles(session, viewer, end_ms=end_ms)
        subset = fills[foreign].assign(source=fills.loc[foreign, "connector_id"].map(sources))
        quote_usd[foreign] = prices.add_fill_usd(subset, candles, usd_like=cash)["quote_usd"].to_numpy(float)
    usd = fills["cost"].to_numpy(float) * quote_usd
    frame = pd.DataFrame({"client_id": fills["client_id"].to_numpy(np.int64), "usd": usd,
                          "unpriced": np.isnan(usd).astype(np.int64)})
    grouped = frame.groupby("client_id").agg(volume_usd=("usd", "sum"), unpriced_fills=("unpriced", "sum"))
    return grouped.reset_index()


def _accounts(session: Session, viewer: Viewer) -> pd.DataFrame:
    """Per client: accounts, accounts whose last successful sync found balances the history does
    not explain, and the oldest last success among its accounts (NaT when one never synced)."""
    rows = connector_freshness(session, viewer, get_settings().sync_interval_seconds)
    frame = pd.DataFrame({
        "client_id": [r.client_id for r in rows],
        "unbalanced": [r.reconciliation == "unbalanced" for r in rows],
        "last_success_at": pd.to_datetime([r.last_success_at for r in rows], utc=True),
    })
    grouped = frame.groupby("client_id")
    return pd.DataFrame({
        "accounts": grouped.size(),
        "unbalanced_accounts": grouped["unbalanced"].sum(),
        # min() skips NaT; a never-synced account makes the client's freshness unknown
        "last_success_at": grouped["last_success_at"].min().where(~grouped["last_success_at"].agg(
            lambda s: s.isna().any())),
    }).rename_axis("client_id").reset_index()


def _change(changes: dict[str, dict[str, object]], window: str) -> float | None:
    value = changes[window]["change"]
    return None if value is None else float(value)


def client_summary(viewer: Viewer, start: datetime | None = None, end: datetime | None = None,
                   session_or_url: SessionOrUrl = None, method: reports.Method = "fifo") -> ClientSummary:
    """The clients table for the window [start, end) (None: from the first event / up to now)."""
    viewer.require(Role.ADMIN, Role.ANALYST)
    if start is not None and end is not None and start >= end:
        raise ValueError("The window's start must be before its end.")
    with _session(session_or_url) as session:
        clients = queries.clients(session, viewer)
        balances = reports.balances_report(viewer, session_or_url=session)
        volume = fill_volume(session, viewer, _ms(start), _ms(end))
        accounts = _accounts(session, viewer)
        rows, unpriced = [], set(balances.unpriced)
        for client in clients.itertuples(index=False):
            client_id = int(client.id)
            report = reports.pnl_report(session, viewer, client_id, None, method, start, end)
            totals = reports.window_totals(report)
            unpriced |= set(report.result.unpriced_assets)
            changes = equity.value_changes(viewer, client_id, session)
            rows.append({
                "client_id": client_id, "client": client.name, "realized": totals["realized"],
                "unrealized_change": totals["unrealized_change"], "net": totals["net"], "fees_usd": totals["fees"],
                **{f"change_{w}": _change(changes, w) for w in reports.CHANGE_WINDOWS},
            })
    held = balances.rows
    value = held[held["priced"].astype(bool)].groupby("client_id")["usd"].sum()
    frame = pd.DataFrame(rows, columns=["client_id", "client", "realized", "unrealized_change", "net", "fees_usd",
                                        "change_24h", "change_7d", "change_30d"])
    frame["value_usd"] = frame["client_id"].map(value).fillna(0.0).astype(float)
    frame = frame.merge(volume, on="client_id", how="left").merge(accounts, on="client_id", how="left")
    frame = frame.fillna({"volume_usd": 0.0, "unpriced_fills": 0, "accounts": 0, "unbalanced_accounts": 0})
    for column in ("accounts", "unbalanced_accounts", "unpriced_fills"):
        frame[column] = frame[column].astype(np.int64)
    for column in ("change_24h", "change_7d", "change_30d"):
        frame[column] = frame[column].astype(float)  # None -> NaN: no history that old
    frame["last_success_at"] = pd.to_datetime(frame["last_success_at"], utc=True)
    frame = frame[COLUMNS]
    total: dict[str, object] = {}
    for column in SUMMED:
        summed = frame[column].sum(min_count=1)
        total[column] = (int(summed) if frame[column].dtype == np.int64 else None if pd.isna(summed)
                         else float(summed))
    oldest = frame["last_success_at"]
    total["last_success_at"] = None if oldest.isna().any() or oldest.empty else oldest.min()
    return ClientSummary(frame, total, sorted(unpriced))
