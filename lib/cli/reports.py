"""Report commands: ``pnl`` and ``balances``, the same figures as the pages (lib.reports, lib.equity).

Unpriced values print as null in JSON and "unpriced" in text, never as 0. The CLI acts as
the SYSTEM viewer (it runs with database access already).
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pandas as pd

from lib import equity, reports
from lib.access import SYSTEM
from lib.cli import CommandError, given, record_id
from lib.clients import find_client
from lib.connectors import get_connector
from lib.db import session_scope
from lib.validation import ValidationError

PNL_FIELDS = ("quantity", "cost_basis", "market_value", "realized", "unrealized", "fees")
#: the totals printed: the engine's (unrealized at the window's end) and the window's period figures
#: (lib.pnl.period; ``net`` = realized + unrealized_change, the identity's gap ~0)
TOTALS = ("realized", "unrealized", "fees", "net", "market_value", "opening_value", "closing_value", "deposits",
          "withdrawals", "net_flows", "unrealized_start", "unrealized_change", "withdrawn_unrealized",
          "unpriced_basis_change", "identity_gap")


def register(subparsers: argparse._SubParsersAction) -> None:
    pnl = subparsers.add_parser("pnl", help="realized / unrealized P&L, total and per asset")
    pnl.add_argument("--client", type=given("--client", "a client name"), help="client name (default: every client)")
    pnl.add_argument("--connector", type=record_id("connector"), help="connector id")
    pnl.add_argument("--method", choices=("fifo", "average"), default="fifo")
    pnl.add_argument("--pool", choices=("scope", "client", "connector"), default="scope",
                     help="pool lots across the scope (default), per client or per connector")
    pnl.add_argument("--start", type=day("--start"), help="first UTC day of the window, YYYY-MM-DD (default: "
                     "the first event)")
    pnl.add_argument("--end", type=day("--end"), help="last UTC day of the window, included, YYYY-MM-DD "
                     "(default: now)")
    pnl.add_argument("--json", action="store_true")
    pnl.set_defaults(handler=_pnl)
    balances = subparsers.add_parser("balances", help="latest balances with USD values")
    balances.add_argument("--client", type=given("--client", "a client name"),
                          help="client name (default: every client)")
    balances.add_argument("--at", type=day("--at"), help="the balances the synced history implies at the end of "
                          "this UTC day, YYYY-MM-DD (default: the latest snapshots)")
    balances.add_argument("--json", action="store_true")
    balances.set_defaults(handler=_balances)


def day(option: str) -> Callable[[str], date]:
    """An argument type for a UTC calendar day written YYYY-MM-DD."""
    def parse(text: str) -> date:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
            with suppress(ValueError):
                return date.fromisoformat(text.strip())
        raise CommandError(f"{option} must be a day written YYYY-MM-DD, not {text[:40]!r}.")
    return parse


def _moment(day: date | None, *, end: bool = False) -> datetime | None:
    """A day's start (UTC), or for an end the start of the next day (the window is [start, end))."""
    if day is None:
        return None
    return datetime.combine(day + timedelta(days=1) if end else day, time(), tzinfo=UTC)


def _client_id(name: str | None) -> int | None:
    if name is None:
        return None
    try:
        with session_scope() as session:
            return find_client(session, name).id
    except ValidationError as error:
        raise CommandError(error.args[-1] if error.args else str(error)) from None


def _number(value: object) -> float | None:
    """A float for JSON; NaN (unpriced) becomes null."""
    if value is None or pd.isna(value):
        return None
    return float(value)


def _text(value: float | None, money: bool = True) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "unpriced"
    return f"{value:,.2f}" if money else f"{value:,.8g}"


def _pnl(args: argparse.Namespace) -> int:
    if args.connector is not None:
        with session_scope() as session:
            get_connector(session, args.connector)  # an unknown id is an error, not an empty report
    if args.start and args.end and args.start > args.end:
        raise CommandError("--start must be on or before --end.")
    report = reports.pnl_report(None, SYSTEM, _client_id(args.client), args.connector, args.method,
                                _moment(args.start), _moment(args.end, end=True), pool=args.pool)
    result = report.result
    per_asset = []
    for row in result.per_asset.itertuples(index=False):
        item: dict[str, object] = {"asset": row.asset}
        for name in PNL_FIELDS:
            value = getattr(row, name)
            unpriced = name in ("market_value", "unrealized") and not row.priced
            item[name] = None if unpriced else _number(value)
        item["unmatched_quantity"] = _number(row.unmatched_quantity)
        per_asset.append(item)
    figures = reports.window_totals(report)
    totals = {name: _number(figures[name]) for name in TOTALS}
    window = {"start": args.start and args.start.isoformat(), "end": args.end and args.end.isoformat()}
    if args.json:
        print(json.dumps({
            "method": result.method, "pool": result.pool, "window": window, "fills": report.fills, "totals": totals,
            "per_asset": per_asset, "unpriced_assets": list(result.unpriced_assets),
            "unmatched": dict(result.unmatched), "warnings": list(result.warnings),
        }, ensure_ascii=False))
        return 0
    print(f"P&L ({result.method}, pooled per {result.pool}, {window['start'] or 'first event'} to "
          f"{window['end'] or 'now'}, {report.fills} fills, USD)")
    for name, value in totals.items():
        print(f"  {name:<22}{_text(value):>20}")
    print(f"\n{'asset':<10}" + "".join(f"{name:>18}" for name in PNL_FIELDS))
    for item in per_asset:
        cells = "".join(f"{_text(item[name], money=name != 'quantity'):>18}" for name in PNL_FIELDS)
        print(f"{item['asset']:<10}{cells}")
    for message in result.warnings:
        print(f"warning: {message}")
    if result.unpriced_assets:
        print("unpriced: " + ", ".join(result.unpriced_assets))
    return 0


def _amount(value: object) -> str | None:
    """A quantity as text carrying every digit (an exact Decimal as stored; a float by its shortest
    repr); None when missing."""
    if value is None or (not isinstance(value, Decimal) and pd.isna(value)):
        return None
    exact = value if isinstance(value, Decimal) else Decimal(repr(float(value)))
    text = format(exact, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _balances(args: argparse.Namespace) -> int:
    client_id = _client_id(args.client)
    if args.at is None:
        report = reports.balances_report(SYSTEM, client_id)
    else:
        report = equity.balances_at(SYSTEM, client_id, _moment(args.at, end=True) - timedelta(milliseconds=1))
    rows = [
        {"client": r.client, "exchange": r.exchange_id, "label": r.label, "connector_id": int(r.connector_id),
         "asset": r.asset, "free": _amount(r.free), "used": _amount(r.used), "total": _amount(r.total),
         "price": _number(r.price), "usd": _number(r.usd), "priced": bool(r.priced)}
        for r in report.rows.itertuples(index=False)
    ]
    if args.json:
        print(json.dumps({"at": args.at and args.at.isoformat(), "total_usd": report.total_usd,
                          "unpriced_assets": report.unpriced, "rows": rows}, ensure_ascii=False))
        return 0
    if args.at is not None:
        print(f"Balances the synced history implies at the end of {args.at.isoformat()} (UTC); free/used unknown")
    print(f"{'client':<16}{'exchange/label':<24}{'asset':<8}{'free':>16}{'used':>16}{'total':>26}{'usd':>18}")
    for r in rows:
        print(f"{r['client']:<16}{r['exchange'] + '/' + r['label']:<24}{r['asset']:<8}"
              f"{r['free'] or '-':>16}{r['used'] or '-':>16}{r['total']:>26}{_text(r['usd']):>18}")
    print(f"total (priced): {report.total_usd:,.2f} USD")
    if report.unpriced:
        print("unpriced: " + ", ".join(report.unpriced))
    return 0
