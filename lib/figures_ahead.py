"""The figures the dashboard opens on, made by the scheduled sync right after it stored new data.

A page's first view after new data computes its figures (a million fills: seconds) unless the
disk caches of ``lib.reports`` already hold them for the database's current write version. So
after each pass that changed the data, the worker makes those of the views users land on, with
the pages' defaults: every client together and each client on its own; P&L over all history by
FIFO with lots pooled across the scope, value changes, the equity curve of the P&L page (all
history) and of the Overview (its last ``OVERVIEW_DAYS``), and the Clients table. The first view
then reads a small file. In the dashboard's own worker thread this also keeps the in-memory
states (the P&L's, the balance index, the fill frame) in step. A view with other options is
computed when it is first opened, as before.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from functools import cache

import pandas as pd
from sqlalchemy.exc import SQLAlchemyError

from lib import client_summary, equity, queries, reconcile, reports
from lib.access import SYSTEM
from lib.db import describe_failure, session_scope

log = logging.getLogger(__name__)

#: the Overview's equity curve: this many days up to today
OVERVIEW_DAYS = 90


def overview_start(today: date) -> datetime:
    """Where the Overview's equity curve starts (UTC midnight, ``OVERVIEW_DAYS`` up to today)."""
    return datetime.combine(today - timedelta(days=OVERVIEW_DAYS - 1), time(), tzinfo=UTC)


def _one_scope(client_id: int | None, today: date) -> None:
    @cache
    def reconciled() -> pd.DataFrame:
        return reconcile.reconcile(SYSTEM, client_id).rows

    reports.cached_pnl_summary(SYSTEM, client_id)
    equity.cached_value_changes(SYSTEM, client_id)
    equity.cached_equity_curve(SYSTEM, client_id, None, None, None, reconciled)
    equity.cached_equity_curve(SYSTEM, client_id, None, overview_start(today), None, reconciled)


def make() -> int:
    """The landing views' figures for the data as it is now; returns how many scopes were made."""
    with session_scope() as session:
        client_ids = [int(c) for c in queries.clients(session, SYSTEM)["id"]]
    today = datetime.now(UTC).date()
    for client_id in [None, *client_ids]:
        _one_scope(client_id, today)
    client_summary.client_summary(SYSTEM)
    return 1 + len(client_ids)


def keep(after: str | None) -> str | None:
    """``make`` when the data version moved past ``after`` (the version they were last made
    for); returns the version they are made for now. Never raises: the worker's loop goes on,
    and a page computes what is missing itself."""
    try:
        with session_scope() as session:
            version = queries.data_version(session)
        if version == after:
            return after
        made = make()
        log.info("figures made ahead for %d scope(s)", made)
        return version
    except SQLAlchemyError as error:
        log.error("figures ahead skipped: %s", describe_failure(error))
    except Exception:  # noqa: BLE001 - the loop must go on
        log.exception("figures ahead failed")
    return after
