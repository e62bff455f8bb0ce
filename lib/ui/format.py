"""How numbers read on every page: money, quantities, percentages and ages.

A missing price is shown as "unpriced", never as 0, so a gap in the data cannot pass for
a zero holding.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pandas as pd

UNPRICED = "unpriced"


def _missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def money(value: float | None, *, signed: bool = False, digits: int = 2) -> str:
    """``$1,234.56`` (``+$1.00`` when signed); "unpriced" when there is no value."""
    if _missing(value):
        return UNPRICED
    sign = "-" if value < 0 else ("+" if signed and value > 0 else "")
    return f"{sign}${abs(value):,.{digits}f}"


def compact_money(value: float | None) -> str:
    """``$1.23M`` for metric cards."""
    if _missing(value):
        return UNPRICED
    sign, amount = ("-" if value < 0 else ""), abs(value)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if amount >= limit:
            return f"{sign}${amount / limit:,.2f}{suffix}"
    return f"{sign}${amount:,.2f}"


def quantity(value: float | None, digits: int = 8) -> str:
    """Up to ``digits`` decimals without trailing zeros: 0.5, 1,234.00012."""
    if _missing(value):
        return "—"
    text = f"{value:,.{digits}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def percent(value: float | None, *, signed: bool = True) -> str:
    if _missing(value):
        return "—"
    return f"{value:+.2%}" if signed else f"{value:.2%}"


def age(seconds: float | None) -> str:
    """``42 s``, ``5 min``, ``3 h``, ``2 d``; "never" when there is no time."""
    if _missing(seconds):
        return "never"
    seconds = max(float(seconds), 0.0)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"


def ago(seconds: float | None) -> str:
    """``5 min ago``, or "never"."""
    return "never" if _missing(seconds) else f"{age(seconds)} ago"


def age_of(moment: datetime | pd.Timestamp | None, now: datetime | None = None) -> str:
    if moment is None or pd.isna(moment):
        return "never"
    return age(((now or datetime.now(UTC)) - moment).total_seconds())


def ms_to_datetime(values: pd.Series) -> pd.Series:
    """Exchange int-ms timestamps as aware UTC datetimes for tables and charts."""
    return pd.to_datetime(values, unit="ms", utc=True)


def usd_or_unpriced(values: pd.Series) -> pd.Series:
    """A text column for tables where a NaN value must read "unpriced"."""
    return values.map(money)
