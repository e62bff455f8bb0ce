"""``clients``: every client side by side for a window, the same figures as the Clients page
(lib.client_summary). USD amounts print with every digit the computation produced (JSON numbers
are the doubles' shortest exact form); an unknown figure is null, never 0.
"""

from __future__ import annotations

import argparse
import json

import pandas as pd

from lib.access import SYSTEM
from lib.cli import CommandError
from lib.cli.reports import _moment, day
from lib.client_summary import COLUMNS, client_summary

#: the text table's columns (the JSON has every one of ``COLUMNS``)
SHOWN = ("value_usd", "change_24h", "realized", "unrealized_change", "volume_usd", "fees_usd", "accounts",
         "unbalanced_accounts")


def register(subparsers: argparse._SubParsersAction) -> None:
    clients = subparsers.add_parser("clients", help="every client side by side: value, P&L, volume, fees")
    clients.add_argument("--start", type=day("--start"), help="first UTC day of the window, YYYY-MM-DD (default: "
                         "the first event)")
    clients.add_argument("--end", type=day("--end"), help="last UTC day of the window, included, YYYY-MM-DD "
                         "(default: now)")
    clients.add_argument("--method", choices=("fifo", "average"), default="fifo")
    clients.add_argument("--json", action="store_true")
    clients.set_defaults(handler=_clients)


def _plain(value: object) -> object:
    """A JSON value: NaN/NaT/None as null, a moment as ISO 8601, numpy scalars as Python's."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value.item() if hasattr(value, "item") else value


def _cell(value: object) -> str:
    if value is None:
        return "-"
    return f"{value:,.2f}" if isinstance(value, float) else str(value)


def _clients(args: argparse.Namespace) -> int:
    if args.start and args.end and args.start > args.end:
        raise CommandError("--start must be on or before --end.")
    summary = client_summary(SYSTEM, _moment(args.start), _moment(args.end, end=True), method=args.method)
    rows = [{c: _plain(row[c]) for c in COLUMNS}
            for row in summary.rows.to_dict(orient="records")]
    total = {c: _plain(v) for c, v in summary.total.items()}
    window = {"start": args.start and args.start.isoformat(), "end": args.end and args.end.isoformat()}
    if args.json:
        print(json.dumps({"window": window, "method": args.method, "clients": rows, "total": total,
                          "unpriced_assets": summary.unpriced, "unpriced_activity": summary.unpriced_activity},
                         ensure_ascii=False))
        return 0
    print(f"Clients ({args.method}, {window['start'] or 'first event'} to {window['end'] or 'now'}, USD)")
    print(f"{'client':<24}" + "".join(f"{name:>20}" for name in SHOWN))
    for row in [*rows, {"client": "TOTAL", **total}]:
        print(f"{row['client']:<24}" + "".join(f"{_cell(row[name]):>20}" for name in SHOWN))
    if summary.unpriced:
        print("unpriced (left out of values and P&L): " + ", ".join(summary.unpriced))
    if summary.unpriced_activity:
        print("no USD price at the fill's time (left out of volume and fees): " + ", ".join(summary.unpriced_activity))
    return 0
