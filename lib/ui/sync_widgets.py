"""Sync widgets shared by pages: freshness strip, sidebar line, Force sync button.

Reads go through cached loaders (cleared after every forced sync); the button runs the
sync in the script thread and reports each connector as it finishes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import streamlit as st

from lib.access import AccessDenied, Role, Viewer
from lib.db import session_scope
from lib.settings import get_settings
from lib.sync import ConnectorResult, RunReport, sync_connectors
from lib.sync.status import Freshness, RunRow, age_text, can_force_sync, connector_freshness, recent_runs

log = logging.getLogger(__name__)

LEVEL_MARK = {"ok": ":green[●]", "stale": ":orange[●]", "failed": ":red[●]", "never": ":gray[○]",
              "disabled": ":gray[◌]"}


def _viewer_key(viewer: Viewer) -> tuple[str, str, tuple[int, ...]]:
    return viewer.username, viewer.role.value, tuple(sorted(viewer.client_ids))


def _viewer(key: tuple[str, str, tuple[int, ...]]) -> Viewer:
    return Viewer(key[0], Role(key[1]), frozenset(key[2]))


@st.cache_data(ttl=get_settings().cache_ttl_seconds, show_spinner=False)
def load_freshness(viewer_key: tuple[str, str, tuple[int, ...]], client_id: int | None) -> list[Freshness]:
    with session_scope() as session:
        return connector_freshness(session, _viewer(viewer_key), get_settings().sync_interval_seconds, client_id)


@st.cache_data(ttl=get_settings().cache_ttl_seconds, show_spinner=False)
def load_runs(viewer_key: tuple[str, str, tuple[int, ...]], limit: int = 20) -> list[RunRow]:
    with session_scope() as session:
        return recent_runs(session, _viewer(viewer_key), limit)


def freshness(viewer: Viewer, client_id: int | None = None) -> list[Freshness]:
    return load_freshness(_viewer_key(viewer), client_id)


def runs(viewer: Viewer, limit: int = 20) -> list[RunRow]:
    return load_runs(_viewer_key(viewer), limit)


def describe(row: Freshness) -> str:
    """'synced 2 min ago', or why not, in plain words."""
    if row.level == "disabled":
        return "disabled"
    if row.level == "failed":
        prefix = "needs attention" if row.needs_attention else "last sync failed"
        return f"{prefix}: {row.error or 'unknown error'} ({age_text(row.last_success_at)})"
    if row.level == "stale":
        return f"{age_text(row.last_success_at)}: overdue"
    return age_text(row.last_success_at)


def freshness_strip(viewer: Viewer, client_id: int | None = None) -> None:
    """One line per connector: a coloured dot, the account, and how fresh its data is."""
    rows = freshness(viewer, client_id)
    if not rows:
        st.caption("No exchange connectors yet.")
        return
    for row in rows:
        st.markdown(f"{LEVEL_MARK[row.level]} **{row.client}** · {row.exchange} / {row.label} — {describe(row)}")


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
    name = f"{result.client} · {result.exchange} / {result.label}"
    if result.skipped:
        return f":gray[{name}: {result.error}]"
    if result.success:
        return f":green[✓] {name}: {result.new_trades} new fill(s), {result.new_transfers} new transfer(s)"
    return f":red[✗] {name}: {result.error}"


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
        if not report.results:
            status.update(label="Nothing to sync.", state="complete")
        elif report.failed:
            status.update(label=f"{report.successful} of {report.total} synced, {report.failed} failed",
                          state="error")
        else:
            status.update(label=f"{report.successful} of {report.total} synced", state="complete")
    return report


def force_sync_button(viewer: Viewer, *, connector_ids: Sequence[int] | None = None, client_id: int | None = None,
                      label: str = "Force sync", key: str = "force_sync") -> RunReport | None:
    """A button that syncs the given scope now (nothing is drawn for a client-role user)."""
    if not can_force_sync(viewer):
        return None
    if st.button(label, key=key, icon=":material/sync:"):
        return run_force_sync(viewer, connector_ids=connector_ids, client_id=client_id)
    return None
