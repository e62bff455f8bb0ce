"""Clients side by side: one row per client with value, value changes, period P&L, traded volume,
fees, accounts, reconciliation and freshness, and a total row; for admins and analysts only.

The P&L columns are each client's own period P&L (what ``reports.pnl_report`` gives for that
client, lots pooled across the client's accounts, as the P&L page shows with that client picked).
They come from ``reports.client_pnl``: the fills read once, each client's priced and its holdings
marked from its own scope and run by the engine on their own, lots pooled per client (``lib.pnl``'s
``pool='client'``), never across clients. Over all history each client's figures stay in memory,
and after a sync's new fills only their clients run again. They are kept on disk like the page's
figures, so a restart or a cache clear reads them instead of recomputing.
Value changes are each client's own (``equity.cached_value_changes``, the Overview's file). Traded
volume and fees are one pass over the window's fills for all clients (``lib.activity``): sums of
the cells' cents (``cents_cells``), as the Activity page adds them, so a client's row is that client's Activity
headline for the same period and the total row (the sum of the rows, to the cent) is everyone's.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from lib import activity, equity, queries, reports
from lib.access import Role, Viewer
from lib.db import session_scope
from lib.settings import get_settings
from lib.sync.status import connector_freshness

#: the figures per client, in this order (USD amounts as floats; None where unknown)
COLUMNS = [
    "client_id", "client", "value_usd", "change_24h", "change_7d", "change_30d", "realized", "unrealized_change",
    "net", "volume_usd", "fees_usd", "fills", "accounts", "unbalanced_accounts", "last_success_at", "unpriced_activity",
]
#: summed into the total row (a change is summed over the clients that have one)
SUMMED = ["value_usd", "change_24h", "change_7d", "change_30d", "realized", "unrealized_change", "net", "volume_usd",
          "fees_usd", "fills", "accounts", "unbalanced_accounts"]

#: sums of whole cents (``lib.activity.to_cents``): their total is rounded to the cent
CENTS = ("volume_usd", "fees_usd")


@dataclass(frozen=True)
class ClientSummary:
    rows: pd.DataFrame  # COLUMNS, one row per client the viewer may see, by name
    total: dict[str, object]  # SUMMED over the rows; last_success_at the oldest of theirs
    unpriced: list[str]  # assets left out of some client's value or P&L (no price)
    unpriced_activity: list[str]  # currencies left out of some client's volume or fees (no price)


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
    }).rename_axis("client_id").reset_index().astype({"client_id": np.int64})


def _volume(viewer: Viewer, start: datetime | None, end: datetime | None) -> pd.DataFrame:
    """``activity.volume_and_fees`` per client, kept on disk like the P&L (it values every fill)."""
    def compute() -> pd.DataFrame:
        with session_scope() as session:
            return activity.volume_and_fees(session, viewer, start, end)

    frame = reports.disk_cached("clients-volume", viewer, None, None, [start, end], reports.CODE_VERSION, compute,
                                lambda f: json.dumps(reports.frame_to_json(f), default=reports.json_default),
                                lambda text: reports.frame_from_json(json.loads(text)))
    return frame.rename(columns={"unpriced": "unpriced_activity"}).drop(columns="client").astype(
        {"client_id": np.int64, "volume_usd": float, "fees_usd": float})


def _dump_pnl(figures: dict[int, reports.ClientPnl]) -> str:
    return json.dumps({str(client): asdict(one) for client, one in figures.items()})


def _load_pnl(text: str) -> dict[int, reports.ClientPnl]:
    return {int(client): reports.ClientPnl(**one) for client, one in json.loads(text).items()}


def _pnl(viewer: Viewer, client_ids: list[int], start: datetime | None, end: datetime | None,
         method: reports.Method) -> dict[int, reports.ClientPnl]:
    """``reports.client_pnl``, kept on disk (plain JSON) like the P&L page's figures."""
    return reports.disk_cached("clients-pnl", viewer, None, None, [method, start, end, client_ids],
                               reports.CODE_VERSION, lambda: reports.client_pnl(viewer, client_ids, method, start, end),
                               _dump_pnl, _load_pnl)


def _change(changes: dict[str, dict[str, object]], window: str) -> float | None:
    value = changes[window]["change"]
    return None if value is None else float(value)


def client_summary(viewer: Viewer, start: datetime | None = None, end: datetime | None = None,
                   method: reports.Method = "fifo") -> ClientSummary:
    """The clients table for the window [start, end) (None: from the first event / up to now)."""
    viewer.require(Role.ADMIN, Role.ANALYST)
    if start is not None and end is not None and start >= end:
        raise ValueError("The window's start must be before its end.")
    with session_scope() as session:
        clients = queries.clients(session, viewer)
        balances = reports.balances_report(viewer, session_or_url=session)
        volume = _volume(viewer, start, end)
        accounts = _accounts(session, viewer)
        figures = _pnl(viewer, [int(c) for c in clients["id"]], start, end, method)
        rows, unpriced = [], set(balances.unpriced)
        for client in clients.itertuples(index=False):
            client_id = int(client.id)
            pnl = figures[client_id]
            unpriced |= set(pnl.unpriced)
            changes = equity.cached_value_changes(viewer, client_id)  # the Overview's file
            rows.append({
                "client_id": client_id, "client": client.name, "realized": pnl.realized,
                "unrealized_change": pnl.unrealized_change, "net": pnl.net,
                **{f"change_{w}": _change(changes, w) for w in reports.CHANGE_WINDOWS},
            })
    held = balances.rows
    value = held[held["priced"].astype(bool)].groupby("client_id")["usd"].sum()
    frame = pd.DataFrame(rows, columns=["client_id", "client", "realized", "unrealized_change", "net", "change_24h",
                                        "change_7d", "change_30d"]).astype({"client_id": np.int64})
    frame["value_usd"] = frame["client_id"].map(value).fillna(0.0).astype(float)
    frame = frame.merge(volume, on="client_id", how="left").merge(accounts, on="client_id", how="left")
    frame = frame.fillna({"volume_usd": 0.0, "fees_usd": 0.0, "fills": 0, "accounts": 0, "unbalanced_accounts": 0,
                          "unpriced_activity": ""})
    for column in ("fills", "accounts", "unbalanced_accounts"):
        frame[column] = frame[column].astype(np.int64)
    for column in ("change_24h", "change_7d", "change_30d"):
        frame[column] = frame[column].astype(float)  # None -> NaN: no history that old
    frame["last_success_at"] = pd.to_datetime(frame["last_success_at"], utc=True)
    frame = frame[COLUMNS]
    total: dict[str, object] = {}
    for column in SUMMED:
        if frame[column].dtype == np.int64:
            total[column] = int(frame[column].sum())
            continue
        summed = frame[column].sum(min_count=1)  # NaN when no client has the figure
        if column in CENTS and not pd.isna(summed):
            summed = round(summed, 2)  # whole cents each: the float sum's error taken off, never a cent moved
        total[column] = None if pd.isna(summed) else float(summed)
    oldest = frame["last_success_at"]
    total["last_success_at"] = None if oldest.isna().any() or oldest.empty else oldest.min()
    left_out = {c.strip() for text in frame["unpriced_activity"] for c in str(text).split(",") if c.strip()}
    return ClientSummary(frame, total, sorted(unpriced), sorted(left_out))
