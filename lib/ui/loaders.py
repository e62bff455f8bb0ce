"""The only place pages get data from: cached wrappers over lib.queries and lib.reports.

Isolation: every cached function takes the viewer's scope (username, role, sorted client
ids) as plain arguments, so Streamlit's cache key includes who is asking and one user's
result can never be served to another. The key also holds a hash of the database URL
(never the URL itself: it may hold a password) and ``queries.data_version`` (a cheap token
read on every run) so new synced data shows at once instead of after the TTL. Nothing
secret is ever an argument here.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import pandas as pd
import streamlit as st

from lib import activity, equity, queries, reconcile, reports
from lib.access import Role, Viewer
from lib.db import session_scope
from lib.settings import get_settings
from lib.ui.format import csv_bytes

log = logging.getLogger(__name__)

TTL = get_settings().cache_ttl_seconds
#: Rows the trades CSV may hold; beyond it the file says it was cut (see trades page).
CSV_ROW_CAP = 100_000

Scope = tuple[str, str, tuple[int, ...]]


def scope_of(viewer: Viewer) -> Scope:
    """The viewer as hashable primitives with a stable order (frozenset order is not)."""
    return viewer.username, str(viewer.role), tuple(sorted(viewer.client_ids))


def viewer_of(scope: Scope) -> Viewer:
    """The Viewer back from its cache-key form."""
    username, role, client_ids = scope
    return Viewer(username=username, role=Role(role), client_ids=frozenset(client_ids))


def _db_key() -> str:
    return hashlib.sha256(get_settings().database_url.encode()).hexdigest()[:16]


def _version() -> str:
    with session_scope() as session:
        return queries.data_version(session)


def _key() -> tuple[str, str]:
    return _db_key(), _version()


def data_key() -> tuple[str, str]:
    """The database's identity and write version, for a page's own ``st.cache_data`` key.

    A page keeps a drawing of static elements (a large table, a chart without selection) with
    ``st.cache_data`` keyed by the viewer's scope, its picks and this: on a hit Streamlit replays
    the elements it recorded, so a warm visit skips rebuilding the frame and the pandas Styler's
    per-cell text (Reconciliation's 2,200 rows: most of its run). Nothing that changes with the
    clock may be drawn inside such a function.
    """
    return _key()


@contextmanager
def plain_errors(what: str) -> Iterator[None]:
    """Around a page's loads: a failure becomes one plain sentence and stops the page.

    The exception goes to the log (by type and traceback, for the operator), not the page.
    """
    try:
        yield
    except Exception:  # noqa: BLE001 - never a traceback on a page
        log.exception("loading %s failed", what)
        st.error(f"The {what} could not be loaded right now. Try again in a moment; "
                 "if it persists, an admin can check the logs.")
        st.stop()


def _ms(day: date | None, *, end: bool = False) -> int | None:
    """A calendar day (UTC) as int ms: its start, or the start of the next day for an end."""
    if day is None:
        return None
    moment = datetime.combine(day + timedelta(days=1) if end else day, time(), tzinfo=UTC)
    return int(moment.timestamp() * 1000)


# --------------------------------------------------------------------------- clients & connectors


@st.cache_data(ttl=TTL, show_spinner=False)
def _clients(scope: Scope, key: tuple[str, str]) -> pd.DataFrame:
    with session_scope() as session:
        return queries.clients(session, viewer_of(scope))


def clients(viewer: Viewer) -> pd.DataFrame:
    return _clients(scope_of(viewer), _key())


@st.cache_data(ttl=TTL, show_spinner=False)
def _connectors(scope: Scope, client_id: int | None, key: tuple[str, str]) -> pd.DataFrame:
    with session_scope() as session:
        return queries.connectors(session, viewer_of(scope), client_id)


def connectors(viewer: Viewer, client_id: int | None = None) -> pd.DataFrame:
    return _connectors(scope_of(viewer), client_id, _key())


# --------------------------------------------------------------------------- balances


@st.cache_data(ttl=TTL, show_spinner=False)
def _balances(scope: Scope, client_id: int | None, by_account: bool, connector_id: int | None,
              key: tuple[str, str]) -> reports.BalancesReport:
    return reports.balances_report(viewer_of(scope), client_id, connector_id, by_account=by_account)


def balances(viewer: Viewer, client_id: int | None = None, by_account: bool = False,
             connector_id: int | None = None) -> reports.BalancesReport:
    """Latest holdings; ``by_account`` splits each asset per account type (Balances page)."""
    return _balances(scope_of(viewer), client_id, by_account, connector_id, _key())


@st.cache_data(ttl=TTL, show_spinner=False)
def _history_notes(scope: Scope, client_id: int | None, connector_id: int | None,
                   key: tuple[str, str]) -> reports.HistoryNotes:
    return reports.history_notes(viewer_of(scope), client_id, connector_id)


def history_notes(viewer: Viewer, client_id: int | None = None,
                  connector_id: int | None = None) -> reports.HistoryNotes:
    """Account types a key may not read; opening balances booked past the exchange's look-back."""
    return _history_notes(scope_of(viewer), client_id, connector_id, _key())


@st.cache_data(ttl=TTL, show_spinner=False)
def _coverage(scope: Scope, client_id: int | None, connector_id: int | None,
              key: tuple[str, str]) -> list[reports.ConnectorCoverage]:
    return reports.coverage_report(viewer_of(scope), client_id, connector_id)


def coverage(viewer: Viewer, client_id: int | None = None,
             connector_id: int | None = None) -> list[reports.ConnectorCoverage]:
    """Per connector and data kind: what the exchange keeps, what was fetched, what failed."""
    return _coverage(scope_of(viewer), client_id, connector_id, _key())


@st.cache_data(ttl=TTL, show_spinner=False)
def _value_changes(scope: Scope, client_id: int | None, connector_id: int | None,
                   key: tuple[str, str]) -> dict[str, dict[str, object]]:
    return equity.cached_value_changes(viewer_of(scope), client_id, connector_id)


def value_changes(viewer: Viewer, client_id: int | None = None,
                  connector_id: int | None = None) -> dict[str, dict[str, object]]:
    return _value_changes(scope_of(viewer), client_id, connector_id, _key())


@st.cache_data(ttl=TTL, show_spinner=False)
def _equity(scope: Scope, client_id: int | None, connector_id: int | None, start: date | None, end: date | None,
            key: tuple[str, str]) -> equity.EquityCurve:
    start_at = None if start is None else datetime.combine(start, time(), tzinfo=UTC)
    end_at = None if end is None else datetime.combine(end + timedelta(days=1), time(), tzinfo=UTC)
    return equity.cached_equity_curve(viewer_of(scope), client_id, connector_id, start_at, end_at)


def equity_curve(viewer: Viewer, client_id: int | None = None, connector_id: int | None = None,
                 start: date | None = None, end: date | None = None) -> equity.EquityCurve:
    """Rebuilt from the first event (lib.equity); ``start``/``end`` are UTC days, both included."""
    return _equity(scope_of(viewer), client_id, connector_id, start, end, _key())


# --------------------------------------------------------------------------- fills


@st.cache_data(ttl=TTL, show_spinner=False)
def _fill_symbols(scope: Scope, client_id: int | None, connector_id: int | None, key: tuple[str, str]) -> list[str]:
    with session_scope() as session:
        return queries.fill_symbols(session, viewer_of(scope), client_id, connector_id)


def fill_symbols(viewer: Viewer, client_id: int | None = None, connector_id: int | None = None) -> list[str]:
    return _fill_symbols(scope_of(viewer), client_id, connector_id, _key())


@st.cache_data(ttl=TTL, show_spinner=False, max_entries=200)
def _fills(scope: Scope, filters: tuple[object, ...], page: int, page_size: int,
           key: tuple[str, str]) -> tuple[pd.DataFrame, int]:
    client_id, connector_id, symbol, side, start, end = filters
    criteria = {"client_id": client_id, "connector_id": connector_id, "symbol": symbol, "side": side,
                "start_ms": _ms(start), "end_ms": _ms(end, end=True)}
    with session_scope() as session:
        viewer = viewer_of(scope)
        total = queries.count_fills(session, viewer, **criteria)
        rows = queries.fills(session, viewer, **criteria, limit=page_size, offset=page * page_size)
    return rows, total


def fills(viewer: Viewer, *, client_id: int | None = None, connector_id: int | None = None,
          symbol: str | None = None, side: str | None = None, start: date | None = None, end: date | None = None,
          page: int = 0, page_size: int = 100) -> tuple[pd.DataFrame, int]:
    """One page of fills (newest first) and the number of fills matching the filters."""
    filters = (client_id, connector_id, symbol, side, start, end)
    return _fills(scope_of(viewer), filters, page, page_size, _key())


def fills_csv(viewer: Viewer, *, client_id: int | None = None, connector_id: int | None = None,
              symbol: str | None = None, side: str | None = None, start: date | None = None,
              end: date | None = None) -> Callable[[], bytes]:
    """A deferred CSV of the filtered fills (newest first), at most ``CSV_ROW_CAP`` rows.

    Built only when the button is clicked (Streamlit calls it on its own thread), so a
    million matching fills never cost anything until someone asks, and never more than
    the cap: narrow the filters (or use the CLI/database) for a full export.
    """
    criteria = {"client_id": client_id, "connector_id": connector_id, "symbol": symbol, "side": side,
                "start_ms": _ms(start), "end_ms": _ms(end, end=True)}
    url = get_settings().database_url

    def build() -> bytes:
        with session_scope(url) as session:
            rows = queries.fills(session, viewer, **criteria, limit=CSV_ROW_CAP)
        rows.insert(1, "time", pd.to_datetime(rows["timestamp"], unit="ms", utc=True))
        return csv_bytes(rows)

    return build


@st.cache_data(ttl=TTL, show_spinner=False, max_entries=100)
def _fill_totals(scope: Scope, filters: tuple[object, ...], key: tuple[str, str]) -> activity.FillTotals:
    client_id, connector_id, symbol, side, start, end = filters
    return activity.cached_fill_totals(viewer_of(scope), *activity.day_bounds(start, end), client_id, connector_id,
                                       symbol, side)


def fill_totals(viewer: Viewer, *, client_id: int | None = None, connector_id: int | None = None,
                symbol: str | None = None, side: str | None = None, start: date | None = None,
                end: date | None = None) -> activity.FillTotals:
    """Count, USD volume and USD fees of every fill the Trades filters match."""
    return _fill_totals(scope_of(viewer), (client_id, connector_id, symbol, side, start, end), _key())


def notional_usd(viewer: Viewer, rows: pd.DataFrame, client_id: int | None = None) -> pd.Series:
    """USD notional of one page of fills (not cached: the page is)."""
    with session_scope() as session:
        return activity.notional_usd(session, viewer, rows, client_id)


@st.cache_data(ttl=TTL, show_spinner=False, max_entries=100)
def _activity(scope: Scope, client_id: int | None, connector_id: int | None, start: date | None, end: date | None,
              key: tuple[str, str]) -> activity.ActivityReport:
    return activity.cached_activity_report(viewer_of(scope), *activity.day_bounds(start, end), client_id,
                                           connector_id)


def activity_report(viewer: Viewer, client_id: int | None = None, connector_id: int | None = None,
                    start: date | None = None, end: date | None = None) -> activity.ActivityReport:
    """Trading activity (lib.activity) of a scope over UTC days, both included."""
    return _activity(scope_of(viewer), client_id, connector_id, start, end, _key())


# --------------------------------------------------------------------------- orders & positions


@st.cache_data(ttl=TTL, show_spinner=False)
def _orders(scope: Scope, client_id: int | None, key: tuple[str, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    orders, positions = reports.orders_report(viewer_of(scope), client_id)
    with session_scope() as session:  # USD value of open orders; base quantity and USD notional of positions
        return (activity.value_orders(session, viewer_of(scope), orders, client_id),
                activity.value_positions(session, viewer_of(scope), positions, client_id))


def orders_and_positions(viewer: Viewer, client_id: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(open orders with age and distance from the last price, positions)."""
    return _orders(scope_of(viewer), client_id, _key())


@st.cache_data(ttl=TTL, show_spinner=False)
def _order_history_choices(scope: Scope, client_id: int | None, connector_id: int | None,
                           key: tuple[str, str]) -> tuple[list[str], list[str]]:
    with session_scope() as session:
        return queries.order_history_choices(session, viewer_of(scope), client_id, connector_id)


def order_history_choices(viewer: Viewer, client_id: int | None = None,
                          connector_id: int | None = None) -> tuple[list[str], list[str]]:
    """(symbols, statuses) of the closed and canceled orders in scope."""
    return _order_history_choices(scope_of(viewer), client_id, connector_id, _key())


def _order_criteria(filters: tuple[object, ...]) -> dict[str, object]:
    client_id, connector_id, symbol, status, start, end = filters
    return {"client_id": client_id, "connector_id": connector_id, "symbol": symbol, "status": status,
            "start_ms": _ms(start), "end_ms": _ms(end, end=True)}


@st.cache_data(ttl=TTL, show_spinner=False, max_entries=200)
def _order_history(scope: Scope, filters: tuple[object, ...], page: int, page_size: int,
                   key: tuple[str, str]) -> tuple[pd.DataFrame, int]:
    criteria = _order_criteria(filters)
    with session_scope() as session:
        viewer = viewer_of(scope)
        total = queries.count_order_history(session, viewer, **criteria)
        rows = queries.order_history(session, viewer, **criteria, limit=page_size, offset=page * page_size)
    return rows, total


def order_history(viewer: Viewer, *, client_id: int | None = None, connector_id: int | None = None,
                  symbol: str | None = None, status: str | None = None, start: date | None = None,
                  end: date | None = None, page: int = 0, page_size: int = 100) -> tuple[pd.DataFrame, int]:
    """One page of closed and canceled orders (newest first) and how many match the filters."""
    filters = (client_id, connector_id, symbol, status, start, end)
    return _order_history(scope_of(viewer), filters, page, page_size, _key())


def order_history_csv(viewer: Viewer, *, client_id: int | None = None, connector_id: int | None = None,
                      symbol: str | None = None, status: str | None = None, start: date | None = None,
                      end: date | None = None) -> Callable[[], bytes]:
    """A deferred CSV of the filtered order history (newest first), at most ``CSV_ROW_CAP`` rows,
    built only when the button is clicked (as ``fills_csv``)."""
    criteria = _order_criteria((client_id, connector_id, symbol, status, start, end))
    url = get_settings().database_url

    def build() -> bytes:
        with session_scope(url) as session:
            rows = queries.order_history(session, viewer, **criteria, limit=CSV_ROW_CAP)
        rows.insert(0, "time", pd.to_datetime(rows["timestamp"], unit="ms", utc=True))
        return csv_bytes(rows.drop(columns=["connector_id", "client_id"]))

    return build


# --------------------------------------------------------------------------- P&L


@st.cache_data(ttl=TTL, show_spinner=False, max_entries=100)
def _pnl(scope: Scope, client_id: int | None, connector_id: int | None, method: str, start: date | None,
         end: date | None, pool: str, key: tuple[str, str]) -> reports.PnlSummary:
    start_at = None if start is None else datetime.combine(start, time(), tzinfo=UTC)
    end_at = None if end is None else datetime.combine(end + timedelta(days=1), time(), tzinfo=UTC)
    return reports.cached_pnl_summary(viewer_of(scope), client_id, connector_id, method, start_at, end_at, pool)


def pnl(viewer: Viewer, client_id: int | None = None, connector_id: int | None = None, method: str = "fifo",
        start: date | None = None, end: date | None = None, pool: str = "scope") -> reports.PnlSummary:
    """The compact P&L (totals, per asset, daily realized, warnings) for one scope and method."""
    return _pnl(scope_of(viewer), client_id, connector_id, method, start, end, pool, _key())


# --------------------------------------------------------------------------- transfers


@st.cache_data(ttl=TTL, show_spinner=False, max_entries=100)
def _transfers(scope: Scope, client_id: int | None, connector_id: int | None, currency: str,
               key: tuple[str, str]) -> pd.DataFrame:
    with session_scope() as session:
        rows = queries.transfers(session, viewer_of(scope), client_id, connector_id, settled_only=False)
    return rows[rows["currency"] == currency].reset_index(drop=True)


def transfers(viewer: Viewer, client_id: int | None, connector_id: int | None, currency: str) -> pd.DataFrame:
    """Every deposit and withdrawal of ``currency`` in scope, whatever its status, oldest first."""
    return _transfers(scope_of(viewer), client_id, connector_id, currency, _key())


# --------------------------------------------------------------------------- reconciliation


@st.cache_data(ttl=TTL, show_spinner=False)
def _reconciliation(scope: Scope, client_id: int | None, key: tuple[str, str]) -> reconcile.Reconciliation:
    return reconcile.cached_reconcile(viewer_of(scope), client_id)


def reconciliation(viewer: Viewer, client_id: int | None = None) -> reconcile.Reconciliation:
    """Every (connector, asset) in scope: balanced, unbalanced (with causes) or unknown."""
    return _reconciliation(scope_of(viewer), client_id, _key())


@st.cache_data(ttl=TTL, show_spinner=False)
def _moves_around(scope: Scope, connector_id: int, asset: str, start_ms: int, end_ms: int,
                  key: tuple[str, str]) -> pd.DataFrame:
    return reconcile.moves_around(viewer_of(scope), connector_id, asset, start_ms, end_ms)


def moves_around(viewer: Viewer, connector_id: int, asset: str, start_ms: int, end_ms: int) -> pd.DataFrame:
    """One asset's history changes in a window, with the balance they imply after each."""
    return _moves_around(scope_of(viewer), connector_id, asset, start_ms, end_ms, _key())


@dataclass(frozen=True)
class LinkedFilters:
    """Filters another page passed in the URL (``?symbol=S&start=YYYY-MM-DD&end=YYYY-MM-DD``); the
    client and account travel in the sidebar's own URL parameters (lib.ui.scope)."""

    dates: tuple[date, ...] = ()
    symbol: str | None = None


def linked_filters(params: dict[str, str], symbols: list[str]) -> LinkedFilters:
    """The URL's filters where they name a symbol in scope and valid dates; anything else
    (a hand-edited or foreign link) is ignored rather than an error."""
    dates = []
    for name in ("start", "end"):
        try:
            dates.append(date.fromisoformat(params.get(name, "")))
        except ValueError:
            break
    symbol = params.get("symbol") if params.get("symbol") in symbols else None
    return LinkedFilters(tuple(dates) if len(dates) < 2 or dates[0] <= dates[1] else (), symbol)
