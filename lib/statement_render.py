"""A statement as HTML and as PDF: the same sections, worded once, laid out twice.

HTML escapes every value (a client or asset name is text, never markup) and loads nothing
from elsewhere (inline CSS only), so the file reads the same offline. The PDF is drawn by
fpdf2 with DejaVu Sans (Debian's ``fonts-dejavu-core``), which covers Latin, Greek and
Cyrillic names; without that font there is no PDF and ``FontMissing`` says which package to
install (the HTML does not need it). USD figures are shown to the cent, rounded half-even
from the period P&L's values; units with every decimal the history holds.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from lib.settings import get_settings
from lib.statements import ONE_MS, StatementData

#: where Debian's fonts-dejavu-core puts the fonts (regular, bold)
FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/local/share/fonts/truetype/dejavu"))
CENT = Decimal("0.01")
#: fpdf2's font subsetting logs every glyph list at INFO; the CLI and worker log at INFO
logging.getLogger("fontTools").setLevel(logging.WARNING)

METHOD_TEXT = {"fifo": "FIFO (first in, first out)", "average": "average cost"}
POOL_TEXT = {"scope": "lots pooled across all of the client's accounts", "connector": "lots kept per account"}

DEFINITIONS = (
    "Change in value net of flows = closing value - opening value - (deposits - withdrawals).",
    "Inventory revaluation = for each non-cash asset, units held at the opening x (closing price - opening "
    "price): what the opening holdings gained or lost from prices alone.",
    "Trading P&L = change in value net of flows - inventory revaluation: what trading and fees added beyond "
    "that. An asset without a price at either edge is left out of revaluation and so counts in trading.",
    "Realized P&L counts disposals in the period; change in unrealized = unrealized P&L at the end minus at "
    "the start. Their sum equals the change in value net of flows up to the withdrawn unrealized gain and the "
    "cost basis of unpriced holdings, both in the summary.",
)


class FontMissing(RuntimeError):
    """No Unicode font for the PDF; the message names the package to install."""


@dataclass(frozen=True)
class Revision:
    number: int
    generated_at: datetime


@dataclass(frozen=True)
class Section:
    heading: str
    header: tuple[str, ...]
    rows: list[tuple[str, ...]]
    numeric: tuple[bool, ...]  # right-aligned columns


def usd(value: float | Decimal | None) -> str:
    """A USD figure to the cent as an exact decimal; "unpriced" when there is no value."""
    if value is None:
        return "unpriced"
    exact = value if isinstance(value, Decimal) else Decimal(repr(float(value)))
    return f"{exact.quantize(CENT, ROUND_HALF_EVEN):,}"


def units(value: Decimal, asset: str) -> str:
    """Units with every decimal the history holds and at least the display's floor for the asset
    (2 for USD-like cash, 8 for BTC, as ``lib.ui.format.min_decimals``; not imported, to keep
    Streamlit out of the worker); never rounded."""
    floor = 2 if asset in get_settings().usd_like else 8 if asset == "BTC" else 0
    exponent = value.as_tuple().exponent
    stored = max(0, -exponent) if isinstance(exponent, int) else 0
    return f"{abs(value) if value == 0 else value:,.{max(floor, stored)}f}"


def _moment(value: datetime | None) -> str:
    return "never" if value is None else f"{value:%Y-%m-%d %H:%M} UTC"


def title(data: StatementData) -> str:
    return f"Statement for {data.client}, {data.period}"


def revision_line(revision: Revision | None) -> str:
    if revision is None or revision.number <= 1:
        return ""
    return f"Revised: revision {revision.number} of {_moment(revision.generated_at)}, made because data dated " \
           "in this period arrived after an earlier revision."


def header_lines(data: StatementData) -> list[str]:
    last_day = data.end - ONE_MS
    return [
        f"Period: {data.start:%Y-%m-%d} to {last_day:%Y-%m-%d}, UTC days, both included (from "
        f"{data.start:%Y-%m-%d %H:%M} UTC up to {data.end:%Y-%m-%d %H:%M} UTC, that moment not included)",
        f"Method: {METHOD_TEXT.get(data.method, data.method)}, {POOL_TEXT.get(data.pool, data.pool)}.",
        f"Generated: {_moment(data.generated_at)}. Amounts in USD unless an asset is named.",
    ]


def sections(data: StatementData) -> list[Section]:
    t = data.totals
    summary = [
        ("Opening value", usd(t.opening_value)), ("Deposits", usd(t.deposits)),
        ("Withdrawals", usd(t.withdrawals)), ("Net flows", usd(t.net_flows)),
        ("Closing value", usd(t.closing_value)), ("Change in value net of flows", usd(data.change_net_of_flows)),
        ("Realized P&L", usd(t.realized)), ("Change in unrealized P&L", usd(t.unrealized_change)),
        ("Unrealized P&L carried out by withdrawals", usd(t.withdrawn_unrealized)),
        ("Change in cost basis of unpriced holdings", usd(t.unpriced_basis_change)),
        ("Inventory revaluation", usd(data.revaluation)), ("Trading P&L", usd(data.trading)),
        ("Traded volume", usd(data.volume_usd)), ("Fees", usd(t.fees)), ("Fills", f"{data.fills:,}"),
    ]
    inventory = [
        (line.asset, units(line.opening_units, line.asset), usd(line.opening_usd),
         units(line.closing_units, line.asset), usd(line.closing_usd), usd(line.revaluation))
        for line in data.inventory
    ]
    accounts = [
        (a.account, _moment(a.last_success), a.reconciliation or "not checked"
         + ("" if not a.unbalanced else f" ({a.unbalanced} assets)"), "; ".join(a.gaps) or "none")
        for a in data.accounts
    ]
    return [
        Section("Summary", ("Figure", "USD"), summary, (False, True)),
        Section("Inventory", ("Asset", "Opening units", "Opening USD", "Closing units", "Closing USD",
                              "Revaluation USD"), inventory, (False, True, True, True, True, True)),
        Section("Data freshness", ("Account", "Last successful sync", "Reconciliation", "Coverage gaps"),
                accounts, (False, False, False, False)),
    ]


def notes(data: StatementData) -> list[str]:
    out = []
    if data.unpriced:
        out.append("Unpriced assets (no USD price at an edge of the period): " + ", ".join(data.unpriced) + ".")
    if data.unpriced_fills:
        out.append(f"{data.unpriced_fills:,} fill(s) had no USD price for their quote and are not in the volume.")
    if not data.accounts:
        out.append("This client has no accounts.")
    return out + list(data.warnings)


# --------------------------------------------------------------------------- HTML

_CSS = ("body{font-family:sans-serif;margin:2em;color:#111}table{border-collapse:collapse;margin:0 0 1.5em}"
        "td,th{border:1px solid #bbb;padding:.25em .6em}td.n{text-align:right;font-variant-numeric:tabular-nums}"
        ".revised{color:#a00;font-weight:bold}p.small{font-size:.9em;color:#333}")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def to_html(data: StatementData, revision: Revision | None = None) -> str:
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(title(data))}</title>"
             f"<style>{_CSS}</style></head><body><h1>{_e(title(data))}</h1>"]
    if revised := revision_line(revision):
        parts.append(f"<p class='revised'>{_e(revised)}</p>")
    parts += [f"<p>{_e(line)}</p>" for line in header_lines(data)]
    for section in sections(data):
        parts.append(f"<h2>{_e(section.heading)}</h2><table><tr>"
                     + "".join(f"<th>{_e(h)}</th>" for h in section.header) + "</tr>")
        for row in section.rows:
            parts.append("<tr>" + "".join(f"<td class='n'>{_e(c)}</td>" if n else f"<td>{_e(c)}</td>"
                                          for c, n in zip(row, section.numeric, strict=True)) + "</tr>")
        parts.append("</table>")
    parts.append("<h2>Notes</h2>" + "".join(f"<p>{_e(n)}</p>" for n in notes(data) or ["None."]))
    parts.append("<h2>Definitions</h2>" + "".join(f"<p class='small'>{_e(d)}</p>" for d in DEFINITIONS))
    return "".join(parts) + "</body></html>"


# --------------------------------------------------------------------------- PDF


def _font_files() -> tuple[Path, Path]:
    for folder in FONT_DIRS:
        regular, bold = folder / "DejaVuSans.ttf", folder / "DejaVuSans-Bold.ttf"
        if regular.is_file() and bold.is_file():
            return regular, bold
    raise FontMissing("No PDF: the DejaVu Sans font is missing; install the Debian package fonts-dejavu-core "
                      "(the HTML statement does not need it).")


def to_pdf(data: StatementData, revision: Revision | None = None) -> bytes:
    regular, bold = _font_files()
    pdf = FPDF(orientation="landscape", format="A4")
    pdf.add_font("DejaVu", "", str(regular))
    pdf.add_font("DejaVu", "B", str(bold))
    pdf.set_title(title(data))
    pdf.set_creation_date(data.generated_at)
    pdf.add_page()

    def paragraph(text: str, size: float = 9, style: str = "") -> None:
        pdf.set_font("DejaVu", style, size)
        pdf.multi_cell(0, size * 0.55, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    paragraph(title(data), 15, "B")
    if revised := revision_line(revision):
        paragraph(revised, 10, "B")
    for line in header_lines(data):
        paragraph(line)
    for section in sections(data):
        pdf.ln(2)
        paragraph(section.heading, 12, "B")
        pdf.set_font("DejaVu", "", 8)
        align = tuple("RIGHT" if n else "LEFT" for n in section.numeric)
        with pdf.table(text_align=align, first_row_as_headings=True, line_height=4.5) as table:
            for row in (section.header, *section.rows):
                cells = table.row()
                for cell in row:
                    cells.cell(cell)
    pdf.ln(2)
    paragraph("Notes", 12, "B")
    for note in notes(data) or ["None."]:
        paragraph(note)
    paragraph("Definitions", 12, "B")
    for definition in DEFINITIONS:
        paragraph(definition, 8)
    return bytes(pdf.output())
