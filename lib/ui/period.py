"""Controls pages share: a period (a preset or typed UTC days: P&L, Activity, Clients, Trades, order history,
audit log) and an account scope."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import streamlit as st

from lib import reports
from lib.ui import format as fmt

CUSTOM = "Custom dates"


#: Separators a typed day may use besides "-" (2026/11/01, 2026.11.01); 20261101 reads too.
_SEPARATORS = str.maketrans({"/": "-", ".": "-"})


def parse_day(text: str) -> date | None:
    """A typed day (``YYYY-MM-DD``, ``YYYY/MM/DD``, ``YYYYMMDD``); None when empty.

    Raises ValueError for text that is no day."""
    text = text.strip()
    return date.fromisoformat(text.translate(_SEPARATORS)) if text else None


def _day_text(day: date | None) -> str:
    return "" if day is None else day.isoformat()


def date_range(container: Any, key: str, *, label: str = "Period (UTC)", default: str = "All history",
               dates: tuple[date, ...] = ()) -> tuple[date | None, date | None]:
    """A preset (lib.reports.WINDOW_PRESETS) and From / To days, as (first day, last day), both
    included, UTC; None: open. Shown as one row of ``container``: preset, From, To.

    The days are text inputs, not st.date_input: in Streamlit 1.67 a date typed into
    st.date_input (single or range) is sent only when focus leaves the widget (a click elsewhere,
    or Tab past its calendar button); Enter sends nothing, so the figures could disagree with the
    dates on screen. A text input sends on Enter and on Tab (blur). A preset fills From / To with
    its days (recomputed every run, so "This month" stays this month); typing a day switches the
    preset to "Custom dates". ``dates`` (from a link: one day or two) starts it on custom days.
    """
    state = st.session_state
    preset_key, from_key, to_key = f"{key}_window", f"{key}_from", f"{key}_to"
    choices = [*reports.WINDOW_PRESETS, CUSTOM]
    if preset_key not in state or state.get(f"{key}_linked", ()) != dates:  # first run, or a new link
        state[f"{key}_linked"] = dates
        state[preset_key] = CUSTOM if dates else default
        state[from_key] = _day_text(dates[0] if dates else None)
        state[to_key] = _day_text(dates[1] if len(dates) > 1 else None)
    if state[preset_key] != CUSTOM:  # a preset's days, as of today
        start, end = reports.window_days(state[preset_key], datetime.now(UTC).date())
        state[from_key], state[to_key] = _day_text(start), _day_text(end)

    def typed() -> None:
        state[preset_key] = CUSTOM

    preset_col, from_col, to_col = container.columns(3)  # equal: a typed day fits even in a narrow container
    preset_col.selectbox(label, choices, key=preset_key)
    from_col.text_input("From (UTC)", key=from_key, placeholder="YYYY-MM-DD", on_change=typed, max_chars=10,
                        help="First day included (YYYY-MM-DD); applies on Enter or Tab. Empty: from the start.")
    to_col.text_input("To (UTC)", key=to_key, placeholder="YYYY-MM-DD", on_change=typed, max_chars=10,
                      help="Last day included (YYYY-MM-DD); applies on Enter or Tab. Empty: up to now.")
    bounds: list[date | None] = []
    for name, text in (("From", state[from_key]), ("To", state[to_key])):
        try:
            bounds.append(parse_day(text))
        except ValueError:
            container.warning(f"{name}: {fmt.literal(text)} is not a day (YYYY-MM-DD), so it is left open.",
                              icon=":material/event_busy:")
            bounds.append(None)
    start, end = bounds
    if start and end and start > end:
        container.warning("From is after To: no day is in this period.", icon=":material/event_busy:")
    return start, end


def period_picker(container: Any, key: str, label: str = "Period (UTC)",
                  default: str = "All history") -> tuple[date | None, date | None]:
    """A preset (lib.reports.WINDOW_PRESETS) or custom days, as (first day, last day), both included; None: open.
    The shared ``date_range`` control."""
    return date_range(container, key, label=label, default=default)


def period_text(start: date | None, end: date | None) -> str:
    """The period in words, as captions and CSV columns state it."""
    if start and end:
        return f"{start:%Y-%m-%d} to {end:%Y-%m-%d}"
    return f"from {start:%Y-%m-%d}" if start else "all history"
