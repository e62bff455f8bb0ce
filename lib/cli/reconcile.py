"""``reconcile [--client NAME] [--connector ID] [--json]``: does the history explain the balances?

The Reconciliation page's rows (``lib.reconcile``): per connector and asset, balanced,
unbalanced (difference in units and USD, first divergence, likely causes) or unknown (no
history). Exits 1 when any row is unbalanced, 0 otherwise, so scripts can alert on it.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

import pandas as pd

from lib import reconcile
from lib.access import SYSTEM
from lib.cli import CommandError, given, record_id
from lib.clients import find_client
from lib.connectors import get_connector
from lib.db import session_scope
from lib.validation import ValidationError


def register(subparsers: argparse._SubParsersAction) -> None:
    command = subparsers.add_parser(
        "reconcile", help="compare the balances the history implies with those the exchanges reported; "
                          "exit 1 when any is unbalanced")
    command.add_argument("--client", type=given("--client", "a client name"),
                         help="client name (default: every client)")
    command.add_argument("--connector", type=record_id("connector"), help="connector id")
    command.add_argument("--json", action="store_true", help="one object with counts and every row")
    command.set_defaults(handler=_reconcile)


def _scope(args: argparse.Namespace) -> int | None:
    """The client id of ``--client``, after checking that ``--connector`` names a connector."""
    try:
        with session_scope() as session:
            if args.connector is not None:
                get_connector(session, args.connector)
            return None if args.client is None else find_client(session, args.client).id
    except ValidationError as error:
        raise CommandError(error.args[-1] if error.args else str(error)) from None


def _number(value: object) -> float | None:
    return None if value is None or pd.isna(value) or not math.isfinite(float(value)) else float(value)


def _iso(value: object) -> str | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).isoformat().replace("+00:00", "Z")


def _row(row: Any) -> dict[str, object]:
    return {
        "client": row.client, "exchange": row.exchange_id, "label": row.label, "connector_id": int(row.connector_id),
        "asset": row.asset, "account_types": row.account_types, "status": row.status,
        "implied": _number(row.implied), "reported": _number(row.reported), "difference": _number(row.difference),
        "difference_usd": _number(row.difference_usd), "taken_at": _iso(row.taken_at),
        "first_divergence": _iso(row.first_divergence), "snapshots": int(row.snapshots),
        "causes": [{"kind": kind, "text": text} for kind, text in row.causes],
    }


def _usd(value: float | None) -> str:
    return "unpriced" if value is None else f"{value:,.2f} USD"


def _reconcile(args: argparse.Namespace) -> int:
    client_id = _scope(args)
    result = reconcile.reconcile(SYSTEM, client_id, args.connector)
    rows = [_row(r) for r in result.rows.itertuples(index=False)]
    counts = {status: result.count(status) for status in ("unbalanced", "unknown", "balanced")}
    if args.json:
        print(json.dumps({**counts, "unsynced": result.unsynced, "rows": rows}, ensure_ascii=False))
    else:
        print(f"{counts['unbalanced']} unbalanced, {counts['unknown']} unknown, {counts['balanced']} balanced "
              f"(connector x asset, all account types summed)")
        for row in rows:
            if row["status"] == "balanced":
                continue
            where = f"{row['client']} · {row['exchange']} / {row['label']} (#{row['connector_id']}) {row['asset']}"
            if row["status"] == "unknown":
                print(f"UNKNOWN     {where}: no history of this asset; reported {row['reported']:.10g}")
                continue
            print(f"UNBALANCED  {where}: reported {row['reported']:.10g}, history implies {row['implied']:.10g}, "
                  f"difference {row['difference']:+.10g} ({_usd(row['difference_usd'])}) since "
                  f"{row['first_divergence']}")
            for cause in row["causes"]:
                print(f"    cause ({cause['kind']}): {cause['text']}")
        for name in result.unsynced:
            print(f"NOT READ    {name}: no balance snapshot yet, nothing to compare")
    return 1 if counts["unbalanced"] else 0
