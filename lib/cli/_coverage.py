"""``connector coverage ID [--json]``: what each history stream of a connector holds.

One row per stream of ``lib.sync.store.coverage`` (fills, closed orders, deposits,
withdrawals, per market where the exchange needs one, and balances per account type):
the oldest time the exchange still keeps, the range fetched, the last walk that reached
"now", and the window that failed last. The command is added under ``connector`` by
``lib.cli.core``; the leading underscore keeps the command loader from registering this
module on its own.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from lib import exchanges
from lib.capabilities import Paging, history_rules
from lib.cli import CommandError
from lib.connectors import get_connector
from lib.db import session_scope
from lib.sync import store

#: JSON keys, in this order, of every stream
FIELDS = ("connector_id", "stream", "kind", "symbol", "oldest_available", "lookback_source", "fetched_from",
          "fetched_to", "complete_at", "failed_from", "failed_to", "failed_error")
#: streams by name (the stream key before any ":"), in the order they are listed, and their labels
#: ("orders" holds closed and canceled orders unless ccxt reads canceled ones apart, as "canceled")
NAMES = {"trades": "fills", "orders": "order history", "canceled": "canceled orders", "deposits": "deposits",
         "withdrawals": "withdrawals", "balance": "balances"}
#: connectors.id is an INTEGER column: anything larger cannot be a connector (and PostgreSQL
#: would refuse to compare with it)
MAX_ID = 2**31 - 1
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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


def _ms(value: int | None) -> datetime | None:
    return None if value is None else EPOCH + timedelta(milliseconds=int(value))


def _iso(value: datetime | None) -> str | None:
    """ISO-8601 in UTC with milliseconds and a ``Z``: the bounds of windows are milliseconds."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _text(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _pagings(exchange_id: str) -> dict[str, Paging]:
    """How each stream is paged on this exchange, by name (an id-paged stream reaches the first
    id, so its oldest row is not a look-back); empty when the installed ccxt no longer lists it."""
    try:
        exchange = exchanges.build_exchange(exchanges.ConnectionSpec(exchange_id, {}))
    except exchanges.UnsupportedExchange:
        return {}
    return {name: rules.paging for name, rules in history_rules(exchange).streams.items()}


def _name(row: Mapping[str, Any]) -> str:
    return str(row["stream"]).partition(":")[0]


def coverage_rows(connector_id: int, pagings: Mapping[str, Paging]) -> list[dict[str, Any]]:
    """The connector's streams in the JSON shape: names in the order of ``NAMES``, markets sorted.

    Id-paged walks (Binance ``fromId``, OKX bill ids) record the id they failed from, not a
    time, so their failed bounds are left out; the error itself is kept.
    """
    rows = []
    for row in store.coverage(connector_id):
        name, _, symbol = row["stream"].partition(":")
        by_time = pagings.get(name, "time") == "time"
        rows.append({
            "connector_id": row["connector_id"], "stream": row["stream"], "kind": row["kind"],
            "symbol": symbol if name != "balance" and symbol else None,
            "oldest_available": _ms(row["oldest_available"]), "lookback_source": row["lookback_source"] or None,
            "fetched_from": _ms(row["fetched_from"]), "fetched_to": _ms(row["fetched_to"]),
            "complete_at": row["complete_at"],
            "failed_from": _ms(row["failed_from"]) if by_time else None,
            "failed_to": _ms(row["failed_to"]) if by_time else None,
            "failed_error": row["failed_error"],
        })
    order = {name: i for i, name in enumerate(NAMES)}
    return sorted(rows, key=lambda r: (order.get(_name(r), len(order)), r["stream"]))


def _oldest(row: Mapping[str, Any], pagings: Mapping[str, Paging]) -> str:
    if row["kind"] == "balance":
        return "-"
    if row["oldest_available"] is not None:
        source = (row["lookback_source"] or "").split(":")[0]
        return f"{_text(row['oldest_available'])} ({source})" if source else _text(row["oldest_available"])
    if pagings.get(_name(row)) == "id":
        return "whole history (paged by id)"
    return "unknown"


def _fetched(row: Mapping[str, Any]) -> str:
    if row["kind"] == "balance":
        return f"snapshot {_text(row['fetched_to'])}" if row["fetched_to"] else "-"
    if row["fetched_from"] is None and row["fetched_to"] is None:
        return "nothing yet"
    return f"{_text(row['fetched_from'])} to {_text(row['fetched_to'])}"


def _label(row: Mapping[str, Any]) -> str:
    if row["kind"] == "balance":
        return f"balances ({row['stream'].partition(':')[2] or 'default'})"
    return f"  {row['symbol']}" if row["symbol"] else NAMES.get(_name(row), _name(row))


def _failure(row: Mapping[str, Any]) -> str | None:
    if not row["failed_error"]:
        return None
    window = ""
    if row["failed_from"] is not None or row["failed_to"] is not None:
        window = f" {_text(row['failed_from'])} to {_text(row['failed_to'])}"
    return f"failed{window}: {row['failed_error']}"


def format_table(title: str, rows: Iterable[Mapping[str, Any]], pagings: Mapping[str, Paging]) -> list[str]:
    """Plain text: one line per stream, per-market streams under a line naming the stream and
    how many markets were walked, a failure on the line below its stream."""
    body: list[tuple[str, str, str, str] | str] = []
    grouped: set[str] = set()
    rows = list(rows)
    for row in rows:
        name = _name(row)
        if row["symbol"] and name not in grouped:
            grouped.add(name)
            markets = sum(1 for r in rows if _name(r) == name and r["symbol"])
            body.append(f"{NAMES.get(name, name)}, per market: {markets} market(s) walked")
        body.append((_label(row), _oldest(row, pagings), _fetched(row), _text(row["complete_at"])))
        failure = _failure(row)
        if failure:
            body.append(("    " if row["symbol"] else "  ") + failure)
    header = ("data", "oldest kept by the exchange", "fetched (UTC)", "last complete walk")
    widths = [max(len(cells[i]) for cells in [header, *(b for b in body if isinstance(b, tuple))])
              for i in range(3)]
    lines = [title, ""]
    for cells in [header, *body]:
        if isinstance(cells, str):
            lines.append(cells)
        else:
            lines.append("  ".join(c.ljust(w) for c, w in zip(cells[:3], widths, strict=True)) + "  " + cells[3])
    return lines


def connector_coverage(args: argparse.Namespace) -> int:
    connector_id = parse_id(args.id)
    with session_scope() as session:
        connector = get_connector(session, connector_id)
        exchange_id, title = connector.exchange_id, connector.describe()
    pagings = _pagings(exchange_id)
    rows = coverage_rows(connector_id, pagings)
    if args.json:
        print(json.dumps([{k: _iso(r[k]) if isinstance(r[k], datetime) else r[k] for k in FIELDS} for r in rows],
                         ensure_ascii=False))
        return 0
    if not rows:
        print(f"{title}: no history coverage yet (not synced).")
        return 0
    print("\n".join(format_table(f"History coverage of {title}, times UTC", rows, pagings)))
    return 0
