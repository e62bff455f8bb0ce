"""CSV imports of history the exchange no longer serves: fills, deposits and withdrawals.

An exchange keeps only so much history (its look-back); older fills and transfers can be
exported elsewhere and imported here, per connector, in one generic CSV format (README,
"Importing history"). Every row is checked before anything is written: one bad row is a
``ImportRefused`` naming its line and column, and nothing of the file is stored. Rows are
keyed like synced rows (fills: connector + symbol + trade id; transfers: connector + type +
transfer id), so a row the sync already stored, or an earlier import, is skipped and a whole
re-imported file adds 0 rows. The file, its rows and its audit event are one transaction.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any, Literal

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from lib import audit
from lib.access import Role, Viewer
from lib.connectors import get_connector
from lib.models import Base, HistoryImport, Trade, Transfer, utcnow
from lib.sync.rows import too_long
from lib.sync.store import insert_ignore
from lib.validation import ValidationError, is_invisible

Kind = Literal["fills", "transfers"]
KINDS: tuple[Kind, ...] = ("fills", "transfers")

#: decimals an imported amount may have: amounts are kept exactly to 18 decimals (a wei of ETH);
#: more is refused, never rounded away
DECIMALS = 18
#: digits before the point: no real amount has more, so a lost decimal point is caught
INTEGER_DIGITS = 20
#: bounds of one file: the whole file is parsed and checked in memory before one transaction
MAX_BYTES = 20 * 1024 * 1024
MAX_ROWS = 100_000
#: no exchange traded before this; an earlier time is usually seconds given as milliseconds
EARLIEST = datetime(2009, 1, 3, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

SIDES = ("buy", "sell")
ROLES = ("taker", "maker")
TRANSFER_TYPES = ("deposit", "withdrawal")
#: ccxt's transaction statuses
STATUSES = ("ok", "pending", "failed", "canceled")

#: columns each kind needs, then those it may have ("exchange" names the file's exchange)
REQUIRED: dict[Kind, tuple[str, ...]] = {
    "fills": ("timestamp", "symbol", "side", "amount", "price", "fee_cost", "fee_currency", "trade_id"),
    "transfers": ("timestamp", "type", "currency", "amount", "fee_cost", "fee_currency", "transfer_id", "status"),
}
OPTIONAL: dict[Kind, tuple[str, ...]] = {
    "fills": ("cost", "order_id", "taker_or_maker", "base", "quote", "exchange"),
    "transfers": ("txid", "exchange"),
}
MODELS: dict[Kind, type[Trade] | type[Transfer]] = {"fills": Trade, "transfers": Transfer}
#: the exchange's ids that make a row the same row (the tables' unique keys, less the connector)
KEYS: dict[Kind, tuple[str, str]] = {"fills": ("symbol", "trade_id"), "transfers": ("type", "transfer_id")}

_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_SYMBOL = re.compile(r"([^/:\s]+)/([^/:\s]+)(?::[^/\s]+)?")


class ImportRefused(ValidationError):
    """The file cannot be imported; nothing was written. ``line`` / ``column`` say where."""

    def __init__(self, message: str, line: int | None = None, column: str | None = None) -> None:
        where = f"Line {line}" if line is not None else ""
        where += f", column {column}" if line is not None and column else ""
        super().__init__("file", f"{where}: {message}" if where else message)
        self.line, self.column = line, column


@dataclass(frozen=True)
class ParsedFile:
    """A checked file: its rows as table rows (without connector and import id)."""

    kind: Kind
    sha256: str
    rows: list[dict[str, Any]]
    first_timestamp: int
    last_timestamp: int


@dataclass(frozen=True)
class Preview:
    """What importing the file would do, for the page before the admin confirms."""

    kind: Kind
    rows: int
    new_rows: int
    first_timestamp: int
    last_timestamp: int
    previous: HistoryImport | None  # the same file imported before for this connector


@dataclass(frozen=True)
class ImportResult:
    import_id: int
    kind: Kind
    rows: int
    new_rows: int
    first_timestamp: int
    last_timestamp: int
    previous_id: int | None

    def message(self) -> str:
        """One sentence for the page and the CLI."""
        span = f"{day(self.first_timestamp)} – {day(self.last_timestamp)}"
        text = (f"Import #{self.import_id}: {self.rows} {self.kind} row(s) from {span} (UTC), "
                f"{self.new_rows} new, {self.rows - self.new_rows} already stored.")
        if self.previous_id is not None:
            text += f" The same file was imported before (import #{self.previous_id})."
        return text


def day(ms: int) -> str:
    return (EPOCH + timedelta(milliseconds=ms)).strftime("%Y-%m-%d")


# --------------------------------------------------------------------------- cells


class _Row:
    """One record's cells by column name; every parse error names the line and the column."""

    def __init__(self, line: int, cells: Mapping[str, str]) -> None:
        self.line, self.cells = line, cells

    def fail(self, column: str | None, message: str) -> ImportRefused:
        return ImportRefused(message, self.line, column)

    def text(self, column: str, *, required: bool = True) -> str | None:
        value = self.cells.get(column, "").strip()
        if not value:
            if required:
                raise self.fail(column, "empty; a value is required.")
            return None
        if value.isascii() and value.isprintable():  # the common case, which holds no invisible character
            return value
        hidden = sorted({f"U+{ord(ch):04X}" for ch in value if is_invisible(ch)})
        if hidden:
            raise self.fail(column, f"holds control, zero-width or text-direction characters ({', '.join(hidden)}).")
        return value

    def choice(self, column: str, choices: tuple[str, ...], *, required: bool = True) -> str | None:
        value = self.text(column, required=required)
        if value is None:
            return None
        if value.lower() not in choices:
            raise self.fail(column, f"{_shown(value)} is not one of {', '.join(choices)}.")
        return value.lower()

    def decimal(self, column: str, *, positive: bool = False, required: bool = True) -> Decimal | None:
        value = self.text(column, required=required)
        if value is None:
            return None
        if not _NUMBER.fullmatch(value):
            raise self.fail(column, f"{_shown(value)} is not a decimal number (digits with an optional '.'; "
                                    "no exponent, thousands separator or currency sign).")
        number = Decimal(value)
        problem = _out_of_range(number)
        if problem is not None:
            raise self.fail(column, f"{value} {problem}")
        if positive and number <= 0:
            raise self.fail(column, f"{value} must be greater than 0.")
        return number.copy_abs() if number == 0 else number  # no "-0"

    def timestamp(self, now: datetime) -> int:
        value = self.text("timestamp")
        moment = _moment(value)
        if moment is None:
            raise self.fail("timestamp", f"{_shown(value)} is neither ISO-8601 (2024-01-31T14:05:00Z) nor "
                                         "epoch milliseconds (1706709900000).")
        if moment.utcoffset() != timedelta(0):
            raise self.fail("timestamp", f"{value} is not UTC; write it with Z or +00:00.")
        if moment > now:
            raise self.fail("timestamp", f"{value} is in the future (now is {now:%Y-%m-%d %H:%M:%S} UTC).")
        if moment < EARLIEST:
            raise self.fail("timestamp", f"{value} is before {EARLIEST:%Y-%m-%d}, before any exchange traded "
                                         "(seconds given instead of milliseconds?).")
        return (moment - EPOCH) // timedelta(milliseconds=1)


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "…")


def _out_of_range(number: Decimal) -> str | None:
    """Why the columns cannot hold ``number`` exactly (None when they can); trailing zeros are no decimals."""
    if number == 0:
        return None
    _sign, digits, exponent = number.as_tuple()
    zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    decimals = -int(exponent) - zeros  # from the digits, not normalize(): that rounds to 28 digits
    if decimals > DECIMALS:
        return f"has {decimals} decimals; at most {DECIMALS} are stored."
    if number.adjusted() >= INTEGER_DIGITS:
        return f"has more than {INTEGER_DIGITS} digits before the point."
    return None


def _moment(value: str) -> datetime | None:
    """Epoch milliseconds (digits only) or ISO-8601; a time without a zone is UTC."""
    if value.isascii() and value.isdigit():
        try:
            return EPOCH + timedelta(milliseconds=int(value))
        except OverflowError:
            return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


# --------------------------------------------------------------------------- rows


def _fee(row: _Row) -> tuple[Decimal, str | None]:
    cost = row.decimal("fee_cost", required=False) or Decimal(0)
    currency = row.text("fee_currency", required=cost != 0)
    return cost, currency


def _fill(row: _Row, now: datetime) -> dict[str, Any]:
    symbol = row.text("symbol")
    match = _SYMBOL.fullmatch(symbol)
    if match is None:
        raise row.fail("symbol", f"{_shown(symbol)} is not BASE/QUOTE (BTC/USDT, or BTC/USDT:USDT for a contract).")
    base, quote = match.groups()
    for column, expected in (("base", base), ("quote", quote)):
        given = row.text(column, required=False)
        if given is not None and given != expected:
            raise row.fail(column, f"{_shown(given)} does not match the symbol {symbol} ({column} {expected}).")
    amount = row.decimal("amount", positive=True)
    price = row.decimal("price", positive=True)
    cost = row.decimal("cost", required=False)
    if cost is not None and cost < 0:
        raise row.fail("cost", f"{cost} must not be negative.")
    if cost is None:
        # the product exactly, rounded to the decimals kept, without the trailing zeros of the rounding
        with localcontext(prec=2 * (INTEGER_DIGITS + DECIMALS)):
            cost = (amount * price).quantize(Decimal(1).scaleb(-DECIMALS), ROUND_HALF_EVEN).normalize()
        problem = _out_of_range(cost)
        if problem is not None:
            raise row.fail("price", f"amount × price = {cost} {problem}")
    fee_cost, fee_currency = _fee(row)
    return {
        "timestamp": row.timestamp(now), "symbol": symbol, "base": base, "quote": quote,
        "side": row.choice("side", SIDES), "amount": amount, "price": price,
        "cost": cost,
        "fee_cost": fee_cost, "fee_currency": fee_currency, "trade_id": row.text("trade_id"),
        "order_id": row.text("order_id", required=False),
        "taker_or_maker": row.choice("taker_or_maker", ROLES, required=False),
    }


def _transfer(row: _Row, now: datetime) -> dict[str, Any]:
    fee_cost, fee_currency = _fee(row)
    return {
        "timestamp": row.timestamp(now), "type": row.choice("type", TRANSFER_TYPES),
        "currency": row.text("currency"), "amount": row.decimal("amount", positive=True),
        "fee_cost": fee_cost, "fee_currency": fee_currency, "transfer_id": row.text("transfer_id"),
        "txid": row.text("txid", required=False), "status": row.choice("status", STATUSES),
    }


PARSERS: dict[Kind, Callable[[_Row, datetime], dict[str, Any]]] = {"fills": _fill, "transfers": _transfer}


# --------------------------------------------------------------------------- the file


def _text_of(data: bytes) -> str:
    """The file as text: UTF-8 (a byte-order mark is allowed), no NUL bytes."""
    if len(data) > MAX_BYTES:
        raise ImportRefused(f"The file has {len(data):,} bytes; at most {MAX_BYTES:,} are imported at once. "
                            "Split it into several files.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise ImportRefused(f"not UTF-8 text (byte 0x{data[error.start]:02x}); save the file as UTF-8.",
                            line) from None
    if "\x00" in text:
        raise ImportRefused("holds a NUL character; this is not a CSV text file.", text[:text.index("\x00")]
                            .count("\n") + 1)
    return text


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    """(line where the record starts, cells); blank lines are skipped."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    start = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise ImportRefused(f"malformed CSV ({error}).", start) from None
        if cells and any(cell.strip() for cell in cells):
            yield start, cells
        start = reader.line_num + 1


def _header(kind: Kind, cells: list[str]) -> list[str]:
    names = [cell.strip().lower() for cell in cells]
    known = set(REQUIRED[kind]) | set(OPTIONAL[kind])
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ImportRefused(f"the header repeats {', '.join(map(_shown, repeated))}.", 1)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ImportRefused(f"unknown column(s) {', '.join(map(_shown, unknown))}; a {kind} file has "
                            f"{', '.join(REQUIRED[kind])} and optionally {', '.join(OPTIONAL[kind])}.", 1)
    missing = [name for name in REQUIRED[kind] if name not in names]
    if missing:
        raise ImportRefused(f"the header lacks the required column(s) {', '.join(missing)}.", 1)
    return names


def parse(kind: Kind, data: bytes, exchange_id: str, now: datetime | None = None) -> ParsedFile:
    """Check every row of a file for ``exchange_id``'s connector; the first problem is raised."""
    if kind not in KINDS:
        raise ImportRefused(f"Unknown kind {_shown(str(kind))}; one of {', '.join(KINDS)}.")
    now = now or utcnow()
    records = _records(_text_of(data))
    first = next(records, None)
    if first is None:
        raise ImportRefused("The file is empty; the first line must name the columns.")
    names = _header(kind, first[1])
    model, key, rows, seen = MODELS[kind], KEYS[kind], [], {}
    for line, cells in records:
        if len(cells) != len(names):
            raise ImportRefused(f"{len(cells)} value(s), but the header names {len(names)} column(s).", line)
        if len(rows) == MAX_ROWS:
            raise ImportRefused(f"more than {MAX_ROWS:,} rows; split the file.", line)
        row = _Row(line, dict(zip(names, cells, strict=True)))
        named = row.text("exchange", required=False)
        if named is not None and named.lower() != exchange_id:
            raise row.fail("exchange", f"the file is for {_shown(named)}, this connector is on {exchange_id}.")
        parsed = PARSERS[kind](row, now)
        problem = too_long(model, parsed)
        if problem is not None:
            column = problem.split(" ", 1)[0]
            raise row.fail(column, f"too long: {problem.split(' ', 1)[1]}.")
        identity = tuple(parsed[k] for k in key)
        if identity in seen:
            raise row.fail(key[1], f"{_shown(identity[1])} ({identity[0]}) repeats line {seen[identity]}; "
                                   "each row must appear once.")
        seen[identity] = line
        rows.append(parsed)
    if not rows:
        raise ImportRefused("The file has a header but no rows.")
    stamps = [row["timestamp"] for row in rows]
    return ParsedFile(kind, hashlib.sha256(data).hexdigest(), rows, min(stamps), max(stamps))


# --------------------------------------------------------------------------- the database


def _stored(session: Session, kind: Kind, connector_id: int, rows: list[dict[str, Any]]) -> int:
    """How many of ``rows`` the connector already holds (synced or imported)."""
    model, key = MODELS[kind], KEYS[kind]
    columns = [getattr(model, k) for k in key]
    identities = [tuple(row[k] for k in key) for row in rows]
    found = 0
    for start in range(0, len(identities), 500):
        chunk = identities[start:start + 500]
        found += len(session.execute(select(*columns).where(
            model.connector_id == connector_id, tuple_(*columns).in_(chunk))).all())
    return found


def _previous(session: Session, connector_id: int, kind: Kind, sha256: str) -> HistoryImport | None:
    return session.scalars(select(HistoryImport).where(
        HistoryImport.connector_id == connector_id, HistoryImport.kind == kind, HistoryImport.sha256 == sha256,
    ).order_by(HistoryImport.id.desc()).limit(1)).first()


def preview(session: Session, viewer: Viewer, connector_id: int, kind: Kind, data: bytes) -> Preview:
    """Check the file and count what it would add, writing nothing."""
    viewer.require(Role.ADMIN)
    connector = get_connector(session, connector_id)
    parsed = parse(kind, data, connector.exchange_id)
    stored = _stored(session, kind, connector_id, parsed.rows)
    return Preview(kind, len(parsed.rows), len(parsed.rows) - stored, parsed.first_timestamp,
                   parsed.last_timestamp, _previous(session, connector_id, kind, parsed.sha256))


def file_name(name: str) -> str:
    """The file's own name (no folders), with characters that draw nothing replaced, bounded."""
    base = PureWindowsPath(PurePosixPath(name or "").name).name.strip()
    cleaned = "".join("?" if is_invisible(ch) else ch for ch in base)
    return (cleaned or "(unnamed)")[:HistoryImport.filename.type.length]


def import_file(session: Session, viewer: Viewer, connector_id: int, kind: Kind, filename: str, data: bytes,
                *, via: str) -> ImportResult:
    """Check the whole file, then store its new rows, the import and its audit event in the
    caller's transaction (``via``: "page" or "cli", for the audit detail)."""
    viewer.require(Role.ADMIN)
    connector = get_connector(session, connector_id)
    parsed = parse(kind, data, connector.exchange_id)
    previous = _previous(session, connector_id, kind, parsed.sha256)
    record = HistoryImport(connector_id=connector_id, kind=kind, filename=file_name(filename), sha256=parsed.sha256,
                           rows=len(parsed.rows), new_rows=0, first_timestamp=parsed.first_timestamp,
                           last_timestamp=parsed.last_timestamp, actor=viewer.username)
    session.add(record)
    session.flush()
    model: type[Base] = MODELS[kind]
    record.new_rows = insert_ignore(
        session, model, [{**row, "connector_id": connector_id, "import_id": record.id} for row in parsed.rows],
        ("connector_id", *KEYS[kind]))
    result = ImportResult(record.id, kind, record.rows, record.new_rows, parsed.first_timestamp,
                          parsed.last_timestamp, previous.id if previous else None)
    audit.record(session, viewer.username, f"history.imported.{kind}", connector.describe(),
                 f"{record.filename} (sha256 {parsed.sha256[:12]}…) via {via}: {result.message()}")
    session.flush()
    return result
