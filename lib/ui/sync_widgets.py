"""Sync widgets shared by pages: connector tables, sidebar line, Force sync button, history coverage.

Reads go through cached loaders (cleared after every forced sync); the button runs the
sync in the script thread and reports each connector as it finishes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import pandas as pd
import streamlit as st

from lib.access import AccessDenied, Viewer
from lib.db import session_scope
from lib.reports import NO_SOURCE, ConnectorCoverage, CoverageLine
from lib.settings import get_settings
from lib.sync import ConnectorResult, RunReport, sync_connectors
from lib.sync.status import Freshness, RunRow, age_text, can_force_sync, connector_freshness, recent_runs
from lib.ui.format import MISSING, literal, visible
from lib.ui.loaders import Scope, _key, scope_of, viewer_of

log = logging.getLogger(__name__)

#: a connector's state in a word, as the connectors table says it
LEVEL_WORD = {"failed": "Failing", "stale": "Overdue", "never": "Never synced", "ok": "OK", "disabled": "Disabled"}
#: how the connector tables order their rows: those that need a look first
LEVEL_ORDER = {"failed": 0, "stale": 1, "never": 2, "ok": 3, "disabled": 4}
CONNECTOR_COLUMNS = ("State", "Account", "Last sync", "Reconciliation")
#: the Overview lists up to this many connectors needing a look before its table scrolls
HEALTH_ROWS = 10
HEALTH_HEIGHT = 36 + 35 * HEALTH_ROWS  # header and rows of Streamlit's grid, in pixels


@st.cache_data(ttl=get_settings().cache_ttl_seconds, show_spinner=False)
def load_freshness(viewer_key: Scope, client_id: int | None, key: tuple[str, str] | None = None) -> list[Freshness]:
    with session_scope() as session:
        return connector_freshness(session, viewer_of(viewer_key), get_settings().sync_interval_seconds, client_id)


@st.cache_data(ttl=get_settings().cache_ttl_seconds, show_spinner=False)
def load_runs(viewer_key: Scope, limit: int = 20, key: tuple[str, str] | None = None) -> list[RunRow]:
    with session_scope() as session:
        return recent_runs(session, viewer_of(viewer_key), limit)


def freshness(viewer: Viewer, client_id: int | None = None) -> list[Freshness]:
    return load_freshness(scope_of(viewer), client_id, _key())  # keyed by the database's version


def runs(viewer: Viewer, limit: int = 20) -> list[RunRow]:
    return load_runs(scope_of(viewer), limit, _key())


def describe(row: Freshness) -> str:
    """'synced 2 min ago', or why not, in plain words (text for a table cell, never Markdown)."""
    if row.level == "disabled":
        return "disabled"
    if row.level == "failed":
        prefix = "needs attention" if row.needs_attention else "last sync failed"
        return f"{prefix}: {visible(row.error or 'unknown error')} ({age_text(row.last_success_at)})"
    return age_text(row.last_success_at)  # overdue or not: the State column says


#: what the last successful sync's reconciliation says in a connector's row
RECONCILIATION_TEXT = {"balanced": "history explains the balances",
                       "unknown": "some balances have no history",
                       "unbalanced": "{n} asset(s) not explained by the history (see Reconciliation)"}


def connectors_frame(rows: Sequence[Freshness]) -> pd.DataFrame:
    """A row per connector, those that need a look first (failing, overdue, never synced), then
    in ``rows``' order (client and account); plain text, each name as it is (made ``visible``).

    One table however many connectors: a Markdown element per connector cost the Overview about
    190 ms in the browser with 200 overdue, and a table sorts and searches."""
    ordered = sorted(rows, key=lambda row: LEVEL_ORDER[row.level])
    return pd.DataFrame({
        "State": [LEVEL_WORD[row.level] for row in ordered],
        "Account": [visible(f"{row.client} · {row.exchange} / {row.label}") for row in ordered],
        "Last sync": [describe(row) for row in ordered],
        "Reconciliation": [RECONCILIATION_TEXT.get(row.reconciliation or "", MISSING).format(n=row.unbalanced)
                           for row in ordered],
    }, columns=CONNECTOR_COLUMNS)


def connectors_table(rows: Sequence[Freshness], height: int | Literal["auto"] = "auto") -> None:
    """``connectors_frame`` as one grid, the account pinned while the rest scrolls."""
    st.dataframe(connectors_frame(rows), hide_index=True, width="stretch", height=height,
                 column_config={"Account": st.column_config.TextColumn("Account", pinned=True)})


def health_summary(viewer: Viewer, client_id: int | None = None, connector_id: int | None = None) -> None:
    """Counts of fresh, overdue and failing connectors, then only the ones needing a look; with
    ``connector_id`` (the sidebar's account) that one alone, as the rest of the page shows it."""
    rows = [r for r in freshness(viewer, client_id) if r.level != "disabled"
            and connector_id in (None, r.connector_id)]
    if not rows:
        st.caption("No enabled exchange connectors." if connector_id is None
                   else "This account's connector is disabled: it is not synced.")
        return
    counts = st.columns(3)
    counts[0].metric("Fresh", sum(r.level == "ok" for r in rows))
    counts[1].metric("Overdue", sum(r.level in ("stale", "never") for r in rows),
                     help="No successful sync within three sync intervals (or never synced).")
    counts[2].metric("Failing", sum(r.level == "failed" for r in rows))
    needing = [row for row in rows if row.level != "ok"]
    if needing:  # about ten rows tall; the grid scrolls the rest
        connectors_table(needing, height="auto" if len(needing) <= HEALTH_ROWS else HEALTH_HEIGHT)


def sidebar_freshness(viewer: Viewer, client_id: int | None = None) -> None:
    """A compact line for the sidebar: the oldest fresh data and how many connectors fail."""
    rows = [r for r in freshness(viewer, client_id) if r.level != "disabled"]
    if not rows:
        return
    failing = sum(r.level == "failed" for r in rows)
    stale = sum(r.level == "stale" for r in rows)
    synced = [r.last_success_at for r in rows if r.last_success_at]
    text = age_text(min(synced)).capitalize() if synced else "Not synced yet"
    if failing:
        text += f" · :red[{failing} failing]"
    if stale:
        text += f" · :orange[{stale} overdue]"
    st.caption(f":material/sync: {text}")


def _progress_line(result: ConnectorResult) -> str:
    name = literal(f"{result.client} · {result.exchange} / {result.label}")
    if result.skipped:
        return f":gray[{name}: {literal(result.error)}]"
    if result.success:
        line = f":green[✓] {name}: {result.new_trades} new fill(s), {result.new_transfers} new transfer(s)"
        if result.refused:  # never silent: those rows are not in the books
            line += f" · :orange[{result.refused} row(s) left out: a value longer than the database allows (see log)]"
        return line
    return f":red[✗] {name}: {literal(result.error)}"


def run_force_sync(viewer: Viewer, *, connector_ids: Sequence[int] | None = None,
                   client_id: int | None = None) -> RunReport | None:
    """Sync now with live per-connector progress; clears cached loaders afterwards."""
    if not can_force_sync(viewer):
        st.error("You do not have permission to force a sync.")
        return None
    with st.status("Syncing…", expanded=True) as status:
        bar = st.progress(0.0)

        def on_progress(done: int, total: int, result: ConnectorResult) -> None:
            bar.progress(done / total, text=f"{done} of {total} connector(s)")
            st.markdown(_progress_line(result))

        try:
            report = sync_connectors(viewer, connector_ids=list(connector_ids) if connector_ids else None,
                                     client_id=client_id, trigger="force", on_progress=on_progress)
        except AccessDenied as denied:
            status.update(label=str(denied), state="error")
            return None
        except Exception as error:  # noqa: BLE001 - no traceback on a page
            log.exception("forced sync failed")
            status.update(label=f"The sync could not run ({type(error).__name__}); see the logs.", state="error")
            return None
        st.cache_data.clear()
        new_fills = sum(r.new_trades for r in report.synced)
        if not report.results:
            status.update(label="Nothing to sync.", state="complete")
        elif report.failed:  # keep the per-connector lines open: they say what failed
            status.update(label=f"{report.successful} of {report.total} synced, {report.failed} failed",
                          state="error", expanded=True)
        else:
            status.update(label=f"{report.successful} of {report.total} synced · {new_fills} new fill(s)",
                          state="complete", expanded=False)
    return report


#: a connector's coverage before its first sync
NOTHING_FETCHED = "Nothing fetched yet: the first sync fills this in."
#: the "Oldest kept by the exchange" cell where the exchange does not say how long it keeps the
#: data (lib.reports writes "unknown"): a fact about the exchange, unlike MISSING, which says
#: the cell does not apply (balances and CSV imports have no look-back) or nothing is fetched yet
NOT_PUBLISHED = "not published"
#: why the oldest date is what it is, in words (every viewer)
WHY = "Why this date"
#: the documentation (or ccxt) the look-back rule follows: a developer's reference, for admins only
REFERENCE = "Look-back reference"
#: the all-connector coverage table's columns: the account, then coverage_table's (admins also
#: get REFERENCE after WHY: ``coverage_columns``). The table is wider than the page beside the
#: sidebar at 1,400 px: the account and data kind stay pinned while the rest scrolls, and the short
#: facts a reconciler reads first (what was fetched, what the exchange keeps, what failed) come
#: before the reason in words and its reference, which are long
COVERAGE_COLUMNS = ("Account", "Data", "Fetched (UTC)", "Oldest kept by the exchange", "Failed",
                    "Last complete walk", "Markets", WHY)
#: the coverage tables' columns that say which row is which: pinned
COVERAGE_PINNED = ("Account", "Data")
#: widths (px) of the long text columns: the grid sizes a column to the texts of its first rows but
#: leaves out any twice their average, so a reason or reference among "—" cells would be cut to its
#: header; these fit the longest the exchange rules write (~70 and ~85 characters) and stay within
#: the ~560 px that scroll beside the two pinned columns at 1,400 px
COVERAGE_WIDTHS = {WHY: 460, REFERENCE: 540}
#: the table's column help: what its two markers mean
COVERAGE_HELP = {
    "Oldest kept by the exchange": f"{NOT_PUBLISHED}: the exchange does not say how long it keeps this data. "
                                   f"{MISSING}: does not apply (balances, CSV imports) or nothing fetched yet.",
    WHY: f"Why the oldest date is what it is, in words. {MISSING}: does not apply (balances), nothing fetched "
         "yet, or no look-back recorded.",
    REFERENCE: "The exchange documentation (or ccxt's exchange data) the look-back rule follows; shown to admins only. "
               f"{MISSING}: none (the exchange does not publish a look-back, or the row has none).",
}


def coverage_columns(reference: bool = False) -> tuple[str, ...]:
    """COVERAGE_COLUMNS, with the look-back reference after WHY where ``reference`` (admins)."""
    if not reference:
        return COVERAGE_COLUMNS
    at = COVERAGE_COLUMNS.index(WHY) + 1
    return (*COVERAGE_COLUMNS[:at], REFERENCE, *COVERAGE_COLUMNS[at:])


def coverage_column_config(columns: Sequence[str]) -> dict[str, object]:
    """The coverage table's column config: the account and data kind pinned, the markers explained."""
    config: dict[str, object] = {label: st.column_config.TextColumn(label, help=text,
                                                                    width=COVERAGE_WIDTHS.get(label))
                                 for label, text in COVERAGE_HELP.items() if label in columns}
    for label in COVERAGE_PINNED:
        if label in columns:
            config[label] = st.column_config.TextColumn(label, pinned=True)
    return config


def _reference(line: CoverageLine) -> str:
    """The developer's reference of the look-back rule (admins), MISSING where it has none."""
    return visible(line.source) if line.has_reference else MISSING


def _oldest(text: str) -> str:
    return NOT_PUBLISHED if text == "unknown" else MISSING if text in NO_SOURCE else visible(text)


def _coverage_row(line: CoverageLine, reference: bool = False) -> dict[str, str]:
    """One data kind's cells, each as text (data from the exchange made ``visible``); the
    look-back's reference only where ``reference`` (admins)."""
    row = {"Data": line.data, "Oldest kept by the exchange": _oldest(line.oldest), WHY: visible(line.why)}
    if reference:
        row[REFERENCE] = _reference(line)
    return row | {"Fetched (UTC)": line.fetched, "Last complete walk": line.complete,
                  "Failed": visible(line.failed) or MISSING,
                  "Markets": f"{len(line.markets)} walked" if line.markets else MISSING}


def _has_failed(coverage: ConnectorCoverage | None) -> bool:
    """Whether any window of the connector failed (the next sync retries it)."""
    return coverage is not None and any(line.failed for line in coverage.lines)


def coverage_frame(coverage: ConnectorCoverage, reference: bool = False) -> pd.DataFrame:
    """One connector's coverage: a row per data kind (coverage_columns without the account)."""
    return pd.DataFrame([_coverage_row(line, reference) for line in coverage.lines],
                        columns=coverage_columns(reference)[1:])


def coverage_table(coverage: ConnectorCoverage, *, reference: bool = False) -> None:
    """One connector's history coverage: a row per data kind, then the markets walked; the
    look-back's documentation reference only where ``reference`` (pass it for admins alone)."""
    if not coverage.lines:
        st.caption(NOTHING_FETCHED)
        return
    frame = coverage_frame(coverage, reference)
    st.dataframe(frame, hide_index=True, width="stretch", column_config=coverage_column_config(frame.columns))
    for line in coverage.lines:
        if line.markets:
            st.caption(literal(f"Markets walked for {line.data.lower()} ({len(line.markets)}): "
                               + ", ".join(line.markets)))


@dataclass(frozen=True)
class CoverageOverview:
    """Every connector's coverage in one table: one element however many connectors (one
    expander each cost the browser ~300 ms a visit at 200), the failures on top."""

    frame: pd.DataFrame  # a row per connector and data kind, "Account" first
    failing: int  # connectors with failed windows (listed first)
    walked: list[ConnectorCoverage]  # connectors with coverage, in the table's order


def coverage_overview(connectors: Sequence[Freshness], coverage: Sequence[ConnectorCoverage], *,
                      reference: bool = False) -> CoverageOverview:
    """The connectors' coverage, those with failed windows first (otherwise in ``connectors``'
    order); a connector not fetched yet keeps a row that says so rather than disappearing. The
    look-back's documentation reference is a column only where ``reference`` (admins)."""
    by_id = {item.connector_id: item for item in coverage}
    items = [(row, by_id.get(row.connector_id)) for row in connectors]
    items.sort(key=lambda pair: not _has_failed(pair[1]))  # stable: the given order otherwise
    columns = coverage_columns(reference)
    rows: list[dict[str, str]] = []
    for row, item in items:
        name = visible(f"{row.client} · {row.exchange} / {row.label}")
        if item is None or not item.lines:
            rows.append(dict.fromkeys(columns, MISSING) | {
                "Account": name, "Data": "Nothing fetched yet", "Fetched (UTC)": "the first sync fills this in"})
        else:
            rows.extend({"Account": name} | _coverage_row(line, reference) for line in item.lines)
    return CoverageOverview(pd.DataFrame(rows, columns=columns),
                            sum(_has_failed(item) for _, item in items),
                            [item for _, item in items if item is not None and item.lines])

