"""How numbers, moments and gaps read on every page: money, quantities, percentages, ages.

A missing price is shown as "unpriced", never as 0, so a gap in the data cannot pass for
a zero holding; any other missing value is a dash, never "None" or "nan". Moments read
``YYYY-MM-DD HH:mm UTC`` everywhere.

Text from people and exchanges (names, labels, asset codes, error texts) is shown literally:
``literal`` wherever Streamlit reads Markdown, ``chart_text`` wherever plotly reads its HTML
subset, ``visible`` in plain-text places (select options, tables); ``csv_bytes`` (``csv_download``) for downloads.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any

import pandas as pd
import streamlit as st

from lib.models import decimal_text, to_decimal
from lib.settings import get_settings
from lib.validation import has_invisible, is_invisible

if TYPE_CHECKING:
    from pandas.io.formats.style import Styler

UNPRICED = "unpriced"
MISSING = "—"
#: moment.js tokens for st.column_config.DatetimeColumn; ``z`` prints the zone (UTC).
DATETIME_FORMAT = "YYYY-MM-DD HH:mm z"
#: For fills, where the second matters; their narrow column says "(UTC)" in its header instead.
DATETIME_SECONDS_FORMAT = "YYYY-MM-DD HH:mm:ss"


def _missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def blank(value: object) -> bool:
    """None, NaN, NaT, NA or an empty string: nothing to show."""
    if value is None or (pd.api.types.is_scalar(value) and bool(pd.isna(value))):
        return True
    return isinstance(value, str) and not value.strip()


def _sign(value: float, digits: int, signed: bool) -> str:
    """The sign of ``value`` as shown with ``digits`` decimals: none when it rounds to zero (a
    float's leftover of -1e-12 on a balanced row is not "-$0.00"), "+" only when ``signed``."""
    shown = round(value, digits)
    return "-" if shown < 0 else ("+" if signed and shown > 0 else "")


def money(value: float | None, *, signed: bool = False, digits: int = 2) -> str:
    """``$1,234.56`` (``+$1.00`` when signed, ``$0.00`` for what rounds to zero); "unpriced"
    when there is no value."""
    if _missing(value):
        return UNPRICED
    return f"{_sign(value, digits, signed)}${abs(value):,.{digits}f}"


def compact_money(value: float | None) -> str:
    """``$1.23M`` for metric cards."""
    if _missing(value):
        return UNPRICED
    sign, amount = _sign(value, 2, signed=False), abs(value)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if amount >= limit:
            return f"{sign}${amount / limit:,.2f}{suffix}"
    return f"{sign}${amount:,.2f}"


def signed_compact_money(value: float | None) -> str:
    """``compact_money`` with a sign: ``+$49.14k``, ``-$1.20M`` (none on a figure that rounds to zero)."""
    compact = compact_money(value)
    return f"+{compact}" if not _missing(value) and compact[0] == "$" and compact != "$0.00" else compact


#: Characters a metric card a quarter of the page wide shows before it cuts a figure with "…"
#: (seen in 1.67 with the sidebar open: "+$228,461,3…").
CARD_CHARS = 11


def money_card(container: Any, label: str, value: float | None, *, signed: bool = False,  # noqa: ANN401 - a Streamlit container
               help: str | None = None, chars: int = CARD_CHARS, **metric: Any) -> None:  # noqa: A002, ANN401 - st.metric's own names
    """``container.metric`` for an amount in USD: the full figure when it fits the card, else the
    compact one (``+$228.46B``) with the full figure in the help, never a figure cut off by the card.

    ``chars`` is what the card shows uncut. A card's width goes as one over the cards in its row
    (the 1rem gaps between them are small beside a card), so a row of ``n`` takes
    ``CARD_CHARS * 4 // n``, rounded down so that an estimate never cuts: 5 -> 8, 3 -> 14,
    2 -> 22, a card alone -> 44."""
    full = money(value, signed=signed)
    if len(full) <= chars:
        container.metric(label, full, help=help, **metric)
        return
    shown = signed_compact_money(value) if signed else compact_money(value)
    container.metric(label, shown, help=f"{full}." + (f" {help}" if help else ""), **metric)


def quantity(value: float | Decimal | None, digits: int = 8) -> str:
    """Up to ``digits`` decimals without trailing zeros: 0.5, 1,234.00012; a dash when missing.
    An exact amount (``Decimal``) never loses a digit it has, whatever ``digits`` says."""
    if _missing(value):
        return MISSING
    if isinstance(value, Decimal):
        digits = max(digits, places(value.normalize()))
    text = f"{value:,.{digits}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def significant(value: float | Decimal | None, digits: int = 7) -> str:
    """About ``digits`` significant digits (never fewer than the integer part): 51,829.05, 0.004312.

    For dense tables of computed figures; an exact amount (``Decimal``) keeps every digit it
    has (``quantity``), as the CSV does.
    """
    if _missing(value):
        return MISSING
    size = math.floor(math.log10(abs(value))) + 1 if value else 1
    return quantity(value, min(max(digits - size, 0), 8))


#: Decimals an asset is shown with at least: cents for USD-like cash, the satoshi for BTC (its
#: unit on every exchange). Beyond that an amount shows the decimals it was stored with: the
#: exchange's own string (Binance pads to the asset's precision, "1.00000000"; OKX writes "1.5").
CASH_DECIMALS = 2
UNIT_DECIMALS = {"BTC": 8}


def places(value: object) -> int:
    """How many decimals an amount carries as stored ("0.00100000": 8, "12": 0); a float by its
    shortest repr; 0 when missing."""
    if blank(value):
        return 0
    exponent = to_decimal(value).as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def min_decimals(asset: str) -> int:
    """The fewest decimals ``asset``'s amounts are shown with (``CASH_DECIMALS``, ``UNIT_DECIMALS``)."""
    return CASH_DECIMALS if asset in get_settings().usd_like else UNIT_DECIMALS.get(asset, 0)


def exact(value: object, decimals: int = 0) -> str:
    """An amount with every decimal it was stored with and at least ``decimals``, thousands
    grouped: ``123,456.123456789012345678``, ``0.50000000``; a dash when missing. Never rounds."""
    if blank(value):
        return MISSING
    number = to_decimal(value)
    return f"{abs(number) if number == 0 else number:,.{max(decimals, places(number))}f}"


def percent(value: float | None, *, signed: bool = True) -> str:
    """``+12.34%`` (``12.34%`` unsigned); ``0.00%`` for what rounds to zero."""
    if _missing(value):
        return MISSING
    return f"{_sign(value * 100, 2, signed)}{abs(value):.2%}"


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


def ms_to_datetime(values: pd.Series) -> pd.Series:
    """Exchange int-ms timestamps as aware UTC datetimes for tables and charts."""
    return pd.to_datetime(values, unit="ms", utc=True)


def moment(value: datetime | pd.Timestamp | None) -> str:
    """``2026-11-21 14:26 UTC`` for captions and messages; a dash when missing."""
    if value is None or pd.isna(value):
        return MISSING
    return pd.Timestamp(value).tz_convert(UTC).strftime("%Y-%m-%d %H:%M UTC")


def text(values: pd.Series, formatter: Callable[[object], str] = str) -> pd.Series:
    """A column of text for a table: ``formatter`` for present values, a dash for missing ones.

    st.dataframe prints a missing number as "None"; tables on these pages never do.
    """
    return values.map(lambda value: MISSING if blank(value) else formatter(value))


def number_column(label: str, *, format: str | None = None, help: str | None = None,  # noqa: A002
                  width: int | str | None = None) -> object:
    """A numeric column (sorts by value). Without ``format`` its cells read as ``table`` formats them;
    with one (``"dollar"``, ``"%d"``, ...) as the format says, for every row alike."""
    return st.column_config.NumberColumn(label, format=format, help=help, width=width)


def number_columns(*labels: str, width: int | None = None) -> dict[str, object]:
    """``number_column`` configs for ``labels``, their cells shown as ``table`` formats them."""
    return {label: number_column(label, width=width) for label in labels}


def datetime_column(label: str, *, seconds: bool = False, width: int | None = None) -> object:
    """A UTC datetime column that reads ``YYYY-MM-DD HH:mm UTC`` (with seconds for fills)."""
    return st.column_config.DatetimeColumn(label, format=DATETIME_SECONDS_FORMAT if seconds else DATETIME_FORMAT,
                                           width=width)


# --------------------------------------------------------------------------- numeric tables
#
# Tables keep numbers as numbers, so a column sorts by value (9 before 10), and show them as the
# pages always did. Streamlit (1.67) turns every number column into JavaScript doubles in the
# browser, Arrow decimal128 included: 123456.123456789012345678 arrives as 123456.12345678901 and
# a NumberColumn ``format`` (printf, "plain", "localized") formats that double, one format for the
# whole column. Exact amounts need every stored digit and a floor per row (2 decimals for USD-like
# cash, 8 for BTC: ``min_decimals``), so a column format cannot show them. Instead the frame goes
# to st.dataframe as a pandas Styler (``table``): Arrow carries the numbers (Decimal -> decimal128,
# float -> double), which the grid sorts by, and the Styler's text per cell, formatted here from
# the exact Python value, is what the cell shows (Streamlit uses a Styler's display text for a
# number column that has no ``format`` of its own). Columns formatted alike on every row (USD
# values: ``"dollar"``, counts: ``"%d"``) use the NumberColumn format and no Styler text. A missing
# number shows st.dataframe's ``placeholder`` (a Styler's ``na_rep`` is not used for it), so pages
# pass ``placeholder=MISSING`` (or ``UNPRICED`` where only prices can be missing).


def amounts(values: pd.Series, decimals: int | pd.Series = 0) -> pd.Series:
    """Amounts as exact ``Decimal`` numbers (None when missing), each carrying at least ``decimals``
    places (a number or one per row) so that ``exact`` shows them with that floor; never rounded."""
    floors = decimals if isinstance(decimals, pd.Series) else pd.Series(decimals, index=values.index)

    def widened(value: object, floor: int) -> Decimal | None:
        if blank(value):
            return None
        number = to_decimal(value)
        return number.quantize(Decimal(1).scaleb(-floor)) if places(number) < floor else number

    return pd.Series([widened(v, int(d)) for v, d in zip(values, floors, strict=True)], index=values.index,
                     dtype=object)


def amount_columns(frame: pd.DataFrame, columns: list[str], asset: str = "asset") -> dict[str, pd.Series]:
    """``columns`` as ``amounts`` with their row's asset's ``min_decimals``: shown by ``exact`` with every
    digit, so displayed free + used = total foot, and sorted by value."""
    floors = frame[asset].map(min_decimals)
    return {column: amounts(frame[column], floors) for column in columns}


def floats(values: pd.Series) -> pd.Series:
    """Computed figures (USD values, percentages, seconds) as floats, NaN when missing."""
    return pd.to_numeric(values.map(lambda v: None if blank(v) else v), errors="coerce").astype(float)


def table(frame: pd.DataFrame, shown: Mapping[str, Callable[[Any], str]],
          units: Mapping[str, pd.Series] | None = None) -> Styler:
    """``frame`` for st.dataframe with the number columns of ``shown`` displayed by their formatter
    (``exact``, ``quantity``, ``percent``, ``age``...); the cells keep their numbers, so they sort by value.
    ``units`` adds a row's unit after a column's number (a fee's currency: ``0.1 USDT``).

    Configure those columns with ``number_column`` (no ``format``) and pass ``placeholder=`` to
    st.dataframe for missing values (see the section comment above for why a Styler).
    """
    styler = frame.style
    for column, formatter in shown.items():
        styler = styler.format(formatter, subset=[column], na_rep=MISSING)
        unit = (units or {}).get(column)
        if unit is None:
            continue
        labels = unit.map(lambda u: "" if blank(u) else visible(u))
        for text, rows in labels.groupby(labels).groups.items():
            if text:
                styler = styler.format(lambda v, f=formatter, t=text: f"{f(v)} {t}", subset=(list(rows), [column]),
                                       na_rep=MISSING)
    return styler


#: Pixels per character of a grid cell (digits, the widest, at the grid's font size) and a cell's padding.
_CHAR_PX, _CELL_PADDING_PX = 7, 24


def text_width(texts: Iterable[str], label: str, widest: int | None = None) -> int:
    """The width (px) of a grid column that shows its longest text, or its label, uncut (up to ``widest``)."""
    width = _CHAR_PX * max([len(label), *map(len, texts)]) + _CELL_PADDING_PX
    return width if widest is None else min(width, widest)


def fitted_columns(frame: pd.DataFrame, shown: Mapping[str, Callable[[Any], str]]) -> dict[str, object]:
    """``number_column`` configs for the columns of ``shown``, each as wide as its longest text (as
    ``table`` shows it) or its label: in a wide table Streamlit narrows auto-sized columns and
    clips the start of a long number (seen in 1.67), and an exact amount must show every digit."""
    return {column: number_column(column, width=text_width(
        (shown[column](v) for v in frame[column] if not blank(v)), column)) for column in shown}


def signed_money(value: float | None) -> str:
    """``money`` with a sign: ``+$1.00``, ``-$2.50``."""
    return money(value, signed=True)


def plain_percent(value: float | None) -> str:
    """A share: ``12.34%``."""
    return percent(value, signed=False)


# --------------------------------------------------------------------------- text from data

#: Characters Markdown (CommonMark + GFM) or Streamlit's extensions read anywhere in a line:
#: emphasis, code, links and images, HTML, entities, KaTeX ``$``, strikethrough, tables,
#: headings; and ``:`` before a name (directives ``:red[...]``, emoji, icons; a colon before a
#: space starts nothing). Any ASCII punctuation may be backslash-escaped
#: (https://spec.commonmark.org/0.31.2/#backslash-escapes).
_MARKDOWN_SPECIAL = frozenset("\\`*_[]<>$~&|#")
#: List, setext and thematic-break markers count only at the start of a line: group 1 is the
#: character to escape ("- x", "+ x", "===", "1. x", "1) x").
_LINE_START = re.compile(r"\s*([-+=]|\d+([.)]))")
#: Zero-width word joiner. Streamlit turns some text into markup *after* escapes are resolved
#: (emoji ``:smile:``, ``:material/icon:``, ``:streamlit:``, bare ``https://`` / ``www.`` / e-mail
#: links, ``->`` arrows: https://github.com/streamlit/streamlit/blob/develop/frontend/lib/src/
#: components/shared/StreamlitMarkdown/StreamlitMarkdown.tsx and
#: https://github.com/syntax-tree/mdast-util-gfm-autolink-literal), so escaping cannot stop them;
#: a joiner inside the pattern does, and draws nothing.
WORD_JOINER = "\u2060"
#: Where a joiner goes: after ``:`` and ``@`` before a non-space, inside ``->``-like pairs,
#: between ``www`` and ``.``.
_JOIN_BEFORE = re.compile(r"(?<=[:@])(?=\S)|(?<=[-<>~])(?=[-<>=])|(?i:(?<=www))(?=\.)")


def visible(text: object) -> str:
    """The text with invisible and text-direction characters written out as ``\\u202e`` escapes.

    For asset codes and symbols from exchanges: "B\\u200bTC" must not pass for "BTC", nor an
    override reverse the text around it. Names typed here are refused with such characters
    (lib.validation.clean_text); older names and exchange data are shown this way.
    """
    text = str(text)
    if not has_invisible(text):  # the usual case, checked at C speed
        return text
    return "".join((f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}") if is_invisible(ch) else ch
                   for ch in text)


def literal(text: object) -> str:
    """``text`` as Markdown source that renders exactly as ``text`` (made ``visible``).

    For every place data meets Markdown: st.markdown/caption/alerts/toast, widget labels,
    flash messages. Never creates a link, image, emphasis, formula, HTML, colour, icon or emoji.
    """
    shown = visible(text)
    start = _LINE_START.match(shown)
    marker = -1 if start is None else start.start(2) if start.group(2) else start.start(1)
    joins = {match.start() for match in _JOIN_BEFORE.finditer(shown)}
    parts = []
    for index, ch in enumerate(shown):
        if index in joins:
            parts.append(WORD_JOINER)
        named = ch == ":" and index + 1 in joins  # a colon right before a name
        parts.append("\\" + ch if ch in _MARKDOWN_SPECIAL or named or index == marker else ch)
    return "".join(parts)


def chart_text(text: object) -> str:
    """``text`` for plotly, which reads an HTML subset (``<b>``, ``<a href>``, ``<br>``...) and,
    with MathJax, ``$...$`` in labels, hover text and ticks: both escaped as entities, which
    plotly decodes back to the characters (https://plotly.com/chart-studio-help/adding-HTML-and-links-to-charts/).
    """
    return html.escape(visible(text), quote=False).replace("$", "&#36;")


#: A cell starting with one of these is a formula to a spreadsheet (OWASP CSV injection,
#: https://owasp.org/www-community/attacks/CSV_Injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _defused(value: object) -> object:
    return "'" + value if isinstance(value, str) and value.startswith(_FORMULA_START) else value


def _csv_number(value: object) -> object:
    """An exact amount as its plain decimal (every digit, no exponent); a computed float (a USD
    value, a price) to the 15 significant digits a double holds, so no binary noise such as
    201.12956459999992 reaches a spreadsheet."""
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, float) and math.isfinite(value):
        return decimal_text(Decimal(f"{value:.15g}").normalize())
    return value


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """The CSV of a download: a text cell that a spreadsheet would run as a formula gets a
    leading ``'`` (OWASP); amounts are written exactly (``_csv_number``), dates and other cells
    as they are. Lines end in CRLF (RFC 4180), so a cell holding a CR or LF is quoted rather
    than splitting its row."""
    safe = frame.copy()
    for column in safe.columns:
        if safe[column].dtype == object or pd.api.types.is_string_dtype(safe[column]):
            safe[column] = safe[column].map(_defused).map(_csv_number)
        elif pd.api.types.is_float_dtype(safe[column]):
            safe[column] = safe[column].astype(object).map(_csv_number)
    return safe.to_csv(index=False, lineterminator="\r\n").encode()


def csv_download(frame: pd.DataFrame) -> Callable[[], bytes]:
    """``csv_bytes`` of ``frame`` for ``st.download_button``, built only when the button is
    clicked (Streamlit calls it on its own thread): writing every amount exactly took tens of
    milliseconds of each rerun of a page with a few thousand cells."""
    return partial(csv_bytes, frame)
