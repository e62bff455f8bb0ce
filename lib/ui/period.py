"""The controls the P&L, Activity and Clients pages share: a period preset or custom UTC days, and an account scope."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pandas as pd

from lib import reports
from lib.ui import format as fmt

CUSTOM = "Custom dates"
ALL_ACCOUNTS = "All accounts of the selected client(s)"


def period_picker(container: Any, key: str, label: str = "Period (UTC)",
                  default: str = "All history") -> tuple[date | None, date | None]:
    """A preset (lib.reports.WINDOW_PRESETS) or custom days, as (first day, last day), both included; None: open."""
    choices = [*reports.WINDOW_PRESETS, CUSTOM]
    preset = container.selectbox(label, choices, index=choices.index(default), key=f"{key}_window")
    if preset != CUSTOM:
        return reports.window_days(preset, datetime.now(UTC).date())
    dates = container.date_input("Dates (UTC)", value=(), key=f"{key}_dates",
                                 help="From the first day's start to the last day's end; empty means all history.")
    return (dates[0] if len(dates) > 0 else None), (dates[1] if len(dates) > 1 else None)


def period_text(start: date | None, end: date | None) -> str:
    """The period in words, as captions and CSV columns state it."""
    if start and end:
        return f"{start:%Y-%m-%d} to {end:%Y-%m-%d}"
    return f"from {start:%Y-%m-%d}" if start else "all history"


def account_names(connectors: pd.DataFrame) -> dict[int, str]:
    """Each connector of ``connectors`` (lib.ui.loaders.connectors) by id, as text: client · exchange / label."""
    return {int(r.id): fmt.visible(f"{r.client} · {r.exchange_id} / {r.label}") for r in connectors.itertuples()}


def scope_picker(container: Any, names: dict[int, str], key: str) -> int | None:
    """One connector of ``names`` (``account_names``) or None for all of them."""
    return container.selectbox("Scope", [None, *names], key=f"{key}_connector",
                               format_func=lambda c: ALL_ACCOUNTS if c is None else names[c])
