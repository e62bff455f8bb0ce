"""``statement``: one client's statement for a calendar month, as PDF or HTML, made now.

The kept month-end statements (lib.statement_store) are the worker's; this command makes a
fresh one from the data as it is, for any month that has begun (the current one up to now).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lib.access import SYSTEM
from lib.cli import CommandError, given
from lib.clients import find_client
from lib.db import session_scope
from lib.models import utcnow
from lib.statement_render import FontMissing, to_html, to_pdf
from lib.statements import gather, month_of, month_window


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("statement", help="a client's statement for a month (PDF or HTML)")
    parser.add_argument("--client", required=True, type=given("--client", "a client name"), help="client name")
    parser.add_argument("--month", required=True, type=month, help="calendar month, YYYY-MM (UTC)")
    parser.add_argument("--out", type=Path, help="file to write, .pdf or .html (default: "
                        "statement-<client id>-<month>.pdf in the current folder)")
    parser.set_defaults(handler=_statement)


def month(text: str) -> str:
    try:
        month_window(text.strip())
    except ValueError as error:
        raise CommandError(f"--month: {error}") from None
    return text.strip()


def _statement(args: argparse.Namespace) -> int:
    now = utcnow()
    if args.month > month_of(now):
        raise CommandError(f"--month {args.month} has not begun yet (it is {month_of(now)} now).")
    out: Path | None = args.out
    if out is not None and out.suffix.lower() not in (".pdf", ".html", ".htm"):
        raise CommandError("--out must name a .pdf or .html file.")
    with session_scope() as session:
        client_id = find_client(session, args.client).id
    start, end = month_window(args.month)
    data = gather(SYSTEM, client_id, start, min(end, now), args.month)
    out = out or Path(f"statement-{client_id}-{args.month}.pdf")
    try:
        content = to_html(data).encode() if out.suffix.lower() in (".html", ".htm") else to_pdf(data)
    except FontMissing as error:
        raise CommandError(str(error)) from None
    try:
        out.write_bytes(content)
    except OSError as error:
        raise CommandError(f"Cannot write {out}: {error.strerror}.") from None
    print(f"wrote {out} ({len(content):,} bytes)")
    return 0
