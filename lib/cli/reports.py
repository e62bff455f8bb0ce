"""Report commands: ``pnl`` and ``balances``, the same figures as the pages (lib.reports).

Unpriced values print as null in JSON and "unpriced" in text, never as 0. The CLI acts as
the SYSTEM viewer (it runs with database access already).
"""

from __future__ import annotations

import argparse
import json
import math

import pandas as pd

from lib import reports
from lib.access import SYSTEM
from lib.cli import CommandError, given, record_id
from lib.clients import find_client
from lib.connectors import get_connector
from lib.db import session_scope
from lib.validation import ValidationError

PNL_FIELDS = ("quantity", "cost_basis", "market_value", "realized", "unrealized", "fees")


def register(subparsers: argparse._SubParsersAction) -> None:
    pnl = subparsers.add_parser("pnl", help="realized / unrealized P&L, total and per asset")
    pnl.add_argument("--client", type=given("--client", "a client name"), help="client name (default: every client)")
    pnl.add_argument("--connector", type=record_id("connector"), help="connector id")
    pnl.add_argument("--method", choices=("fifo", "average"), default="fifo")
    pnl.add_argument("--pool", choices=("scope", "connector"), default="scope",
                     help="pool lots across the scope (default) or per connector")
    pnl.add_argument("--json", action="store_true")
    pnl.set_defaults(handler=_pnl)
    balances = subparsers.add_parser("balances", help="latest balances with USD values")
    balances.add_argument("--client", type=given("--client", "a client name"),
                          help="client name (default: every client)")
    balances.add_argument("--json", action="store_true")
    balances.set_defaults(handler=_balances)


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
    report = reports.pnl_report(None, SYSTEM, _client_id(args.client), args.connector, args.method, pool=args.pool)
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
    totals = {name: _number(getattr(result.totals, name))
              for name in ("realized", "unrealized", "fees", "net", "market_value")}
    if args.json:
        print(json.dumps({
            "method": result.method, "pool": result.pool, "fills": report.fills, "totals": totals,
            "per_asset": per_asset, "unpriced_assets": list(result.unpriced_assets),
            "unmatched": dict(result.unmatched), "warnings": list(result.warnings),
        }, ensure_ascii=False))
        return 0
    print(f"P&L ({result.method}, pooled per {result.pool}, {report.fills} fills, USD)")
    for name, value in totals.items():
        print(f"  {name:<13}{_text(value):>20}")
    print(f"\n{'asset':<10}" + "".join(f"{name:>18}" for name in PNL_FIELDS))
    for item in per_asset:
        cells = "".join(f"{_text(item[name], money=name != 'quantity'):>18}" for name in PNL_FIELDS)
        print(f"{item['asset']:<10}{cells}")
    for message in result.warnings:
        print(f"warning: {message}")
    if result.unpriced_assets:
        print("unpriced: " + ", ".join(result.unpriced_assets))
    return 0


def _balances(args: argparse.Namespace) -> int:
    report = reports.balances_report(SYSTEM, _client_id(args.client))
    rows = [
        {"client": r.client, "exchange": r.exchange_id, "label": r.label, "connector_id": int(r.connector_id),
         "asset": r.asset, "free": _number(r.free), "used": _number(r.used), "total": _number(r.total),
         "price": _number(r.price), "usd": _number(r.usd), "priced": bool(r.priced)}
        for r in report.rows.itertuples(index=False)
    ]
    if args.json:
        print(json.dumps({"total_usd": report.total_usd, "unpriced_assets": report.unpriced, "rows": rows},
                         ensure_ascii=False))
        return 0
    print(f"{'client':<16}{'exchange/label':<24}{'asset':<8}{'free':>16}{'used':>16}{'total':>16}{'usd':>18}")
    for r in rows:
        print(f"{r['client']:<16}{r['exchange'] + '/' + r['label']:<24}{r['asset']:<8}"
              f"{_text(r['free'], False):>16}{_text(r['used'], False):>16}{_text(r['total'], False):>16}"
              f"{_text(r['usd']):>18}")
    print(f"total (priced): {report.total_usd:,.2f} USD")
    if report.unpriced:
        print("unpriced: " + ", ".join(report.unpriced))
    return 0
