"""``connector coverage ID [--json]``: what each history stream of a connector holds.

The text is the Sync page's coverage table (``lib.reports.coverage_report``): per data kind
(fills, order history, canceled orders, deposits, withdrawals, balances per account type)
the oldest date the exchange still keeps, the range fetched, the last walk that reached
"now", failed windows, and the markets walked where the exchange needs a symbol. ``--json``
is one object per stream of ``lib.sync.store.coverage`` (``trades:BTC/USDT`` on its own).
The command is added under ``connector`` by ``lib.cli.core``; the leading underscore keeps
the command loader from registering this module on its own.
"""

from __future__ import annotations

import argparse
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from lib import reports
from lib.access import SYSTEM
from lib.cli import CommandError
from lib.connectors import get_connector
from lib.db import session_scope
from lib.sync import store

#: JSON keys, in this order, of every stream
FIELDS = ("connector_id", "stream", "kind", "symbol", "oldest_available", "lookback_source", "fetched_from",
          "fetched_to", "complete_at", "failed_from", "failed_to", "failed_error")
#: connectors.id is an INTEGER column: anything larger cannot be a connector (and PostgreSQL
#: would refuse to compare with it)
MAX_ID = 2**31 - 1
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HEADER = ("Data", "Oldest kept by the exchange", "Fetched (UTC)", "Last complete walk", "Look-back from")


def add_parser(connector: argparse._SubParsersAction) -> None:
    coverage = connector.add_parser(
        "coverage", help="per data kind: oldest date the exchange keeps, range fetched, last complete walk, failures")
    coverage.add_argument("id", help="connector id")
    coverage.add_argument("--json", action="store_true", help="a list of one object per stream")
    coverage.set_defaults(handler=connector_coverage)


def parse_id(text: str) -> int:
    """A connector id from the command line; anything else is one ``error:`` line, not a usage dump."""
    if not re.fullmatch(r"[+-]?[0-9]+", text.strip()):
        shown = text if len(text) <= 40 else text[:40] + "…"
        raise CommandError(f"A connector id is a whole number, not {shown!r}.")
    value = int(text)
    if not 1 <= value <= MAX_ID:
        raise CommandError(f"No connector with id {value}.")
    return value


def _iso(value: int | datetime | None) -> str | None:
    """ISO-8601 in UTC with milliseconds and a ``Z`` (window bounds are milliseconds)."""
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else EPOCH + timedelta(milliseconds=int(value))
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def json_rows(connector_id: int, exchange_id: str) -> list[dict[str, Any]]:
    """Every stream in the order the pages list them (``reports.STREAM_LABELS``, then balances).

    Id-paged walks (Binance ``fromId``) record the id they failed from, not a time, so their
    failed bounds are left out; the error itself is kept.
    """
    rules = reports.exchange_rules(exchange_id)
    order = [*reports.STREAM_LABELS, "balance"]
    rows = []
    for row in store.coverage(connector_id):
        name, _, symbol = row["stream"].partition(":")
        by_time = rules is None or name not in rules.streams or rules.streams[name].paging == "time"
        rows.append({
            "connector_id": row["connector_id"], "stream": row["stream"], "kind": row["kind"],
            "symbol": symbol if name != "balance" and symbol else None,
            "oldest_available": _iso(row["oldest_available"]), "lookback_source": row["lookback_source"] or None,
            "fetched_from": _iso(row["fetched_from"]), "fetched_to": _iso(row["fetched_to"]),
            "complete_at": _iso(row["complete_at"]),
            "failed_from": _iso(row["failed_from"]) if by_time else None,
            "failed_to": _iso(row["failed_to"]) if by_time else None,
            "failed_error": row["failed_error"],
        })
    return sorted(rows, key=lambda r: (order.index(n) if (n := r["stream"].partition(":")[0]) in order
                                       else len(order), r["stream"]))


def table(lines: list[reports.CoverageLine]) -> list[str]:
    """One row per data kind; the markets walked and any failure on the lines below it."""
    rows = [(c.data, c.oldest, c.fetched, c.complete, c.source) for c in lines]
    widths = [max(len(row[i]) for row in [HEADER, *rows]) for i in range(len(HEADER) - 1)]

    def render(row: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1]

    out = [render(HEADER)]
    for line, row in zip(lines, rows, strict=True):
        out.append(render(row))
        if line.markets:
            out.append(f"  markets walked ({len(line.markets)}): {', '.join(line.markets)}")
        if line.failed:
            out.append(f"  failed: {line.failed}")
    return out


def connector_coverage(args: argparse.Namespace) -> int:
    connector_id = parse_id(args.id)
    with session_scope() as session:
        connector = get_connector(session, connector_id)
        exchange_id, title = connector.exchange_id, connector.describe()
    if args.json:
        print(json.dumps([{k: r[k] for k in FIELDS} for r in json_rows(connector_id, exchange_id)],
                         ensure_ascii=False))
        return 0
    report = reports.coverage_report(SYSTEM, connector_id=connector_id)
    if not report:
        print(f"{title}: no history coverage yet (not synced).")
        return 0
    print("\n".join([f"History coverage of {title}", "", *table(report[0].lines)]))
    return 0
