"""The figures the dashboard opens on, made by the scheduled sync right after it changed the data.

A page's first view after new data computes its figures (a million fills: seconds) unless the
disk caches of ``lib.reports`` already hold them for the database's current write version. So
after each pass that changed the data, while an admin or analyst is logged in and active, the worker makes
those of the view admins and analysts land on, every client together, with the pages' defaults:
P&L over all history by FIFO with lots pooled across the scope, the value changes, the equity
curve of the P&L page (all history) and of the Overview (its last ``OVERVIEW_DAYS``), the
reconciliation the curves mark snapshots from (the Reconciliation page's), the Clients table
over all history (which makes each client's value changes too), the Trades page's totals (every
fill) and the Activity page's report (its ``activity.DEFAULT_WINDOW``). The first view then reads
a small file. In the dashboard's own worker thread this also keeps the in-memory
states (the P&L's, the balance index, the fill frame) in step.

What it leaves to the first view: one client's scope and other options. Each client's P&L scope
costs about as much again as all of them (a million fills over twenty clients: about 0.8 s each
against 2.7 s for all together, after one new fill), and syncs run every minute; so the worker
makes only the views every admin opens: the landing page, Reconciliation, the Clients table,
Trades and Activity.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from functools import cache

import pandas as pd
from sqlalchemy.exc import SQLAlchemyError

from lib import activity, client_summary, equity, queries, reconcile, reports, sessions
from lib.access import SYSTEM, Role
from lib.db import describe_failure, session_scope

log = logging.getLogger(__name__)

#: the Overview's equity curve: this many days up to today (the demo's whole history)
OVERVIEW_DAYS = 90


def overview_start(today: date) -> datetime:
    """Where the Overview's equity curve starts (UTC midnight, ``OVERVIEW_DAYS`` up to today)."""
    return datetime.combine(today - timedelta(days=OVERVIEW_DAYS - 1), time(), tzinfo=UTC)


def make() -> None:
    """The landing view's figures for the data as it is now (every client together)."""
    @cache
    def reconciled() -> pd.DataFrame:
        return reconcile.cached_reconcile(SYSTEM).rows  # the Reconciliation page's too

    today = datetime.now(UTC).date()
    reports.cached_pnl_summary(SYSTEM)
    equity.cached_value_changes(SYSTEM)
    equity.cached_equity_curve(SYSTEM, None, None, None, None, reconciled)
    equity.cached_equity_curve(SYSTEM, None, None, overview_start(today), None, reconciled)
    with activity.sharing_priced_fills():  # both value every fill
        client_summary.client_summary(SYSTEM)  # the Clients page's defaults: all history, FIFO
        activity.cached_fill_totals(SYSTEM)  # the Trades page's cards: every fill
    activity.cached_activity_report(SYSTEM, *activity.day_bounds(*reports.window_days(activity.DEFAULT_WINDOW, today)))


def keep(after: str | None) -> str | None:
    """``make`` when the data version moved past ``after`` (the version they were last made for)
    and someone is active; returns the version they are made for now. Never raises: the worker's
    loop goes on, and a page computes what is missing itself.

    The first time in a process (``after`` None) they are computed even where their files exist
    (``reports.computing_anew``): the files serve the pages, but the in-memory states that let
    the next pass follow a sync's new fills in a fraction of the time exist only once computed
    here. A million fills: a few seconds at start, instead of at the first sync after it."""
    try:
        with session_scope() as session:
            version = queries.data_version(session)
            active = sessions.anyone_active(session, (Role.ADMIN, Role.ANALYST))  # who opens every client
        if version == after or not active:
            return after
        if after is None:  # this process's first pass: build the states the next passes continue
            with reports.computing_anew():
                make()
        else:
            make()
        return version
    except SQLAlchemyError as error:
        log.error("figures ahead skipped: %s", describe_failure(error))
    except Exception:  # noqa: BLE001 - the loop must go on
        log.exception("figures ahead failed")
    return after
