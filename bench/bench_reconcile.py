"""Reconciliation speed with 200 connectors over a year: printed as JSON.

The data is bench_pages.py's (1,000,000 fills over a year on 200 connectors, daily balance
snapshots for the last 31 days), plus a daily snapshot for the rest of the year, so every
connector has about 366 days to compare. Times are wall clock, in seconds, on a warm Python
process: the rebuilt balance moves alone (its first call also writes the P&L fill store), the
whole reconciliation as the page and the CLI run it (every connector and asset against every
daily snapshot, with USD values and causes) twice (the page caches its result; the second run
is what a page shows after a cache clear with the fill store in step), once more after one new
fill later than all (what the first view after a sync costs: the balance index continues), and
the status a sync records for one connector.

    .venv/bin/python bench/bench_reconcile.py [--fills 1000000] [--connectors 200] [--database-url URL]
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_pages import _add_fill, _args, _seed, migrated  # noqa: E402 - after the path is set


def _year_of_snapshots(url: str) -> int:
    """A daily snapshot per connector for the days bench_pages leaves without one."""
    from sqlalchemy import insert, select

    from lib.db import session_scope
    from lib.models import BalanceSnapshot, Connector, utcnow

    now = utcnow()
    with session_scope(url) as session:
        ids = list(session.scalars(select(Connector.id)))
        rows = [{"connector_id": cid, "taken_at": now - timedelta(days=day, minutes=cid % 60), "asset": asset,
                 "free": total, "used": 0.0, "total": total}
                for cid in ids for day in range(31, 366)
                for asset, total in (("BTC", 0.5), ("ETH", 3.0), ("USDT", 10000.0), ("SOL", 20.0))]
        session.execute(insert(BalanceSnapshot), rows)
    return len(rows)


def _timed(fn) -> tuple[float, object]:  # noqa: ANN001 - any callable
    began = time.perf_counter()
    value = fn()
    return round(time.perf_counter() - began, 2), value


def main() -> None:
    args = _args()
    url = migrated("bench-reconcile-", args.database_url)
    from lib import implied_totals, rebuild, reconcile
    from lib.access import SYSTEM
    from lib.db import session_scope

    _seed(url, args.fills, args.connectors, args.clients)
    extra = _year_of_snapshots(url)
    with session_scope(url) as session:
        moves_s, moves = _timed(lambda: rebuild.balance_moves(session, None))
    reconcile_s, result = _timed(lambda: reconcile.reconcile(SYSTEM))
    again_s, _ = _timed(lambda: reconcile.reconcile(SYSTEM))
    _add_fill("bench-reconcile-later", int(time.time() * 1000))  # a sync's new fill: the balance index continues
    after_fill_s, _ = _timed(lambda: reconcile.reconcile(SYSTEM))
    with session_scope(url) as session:
        status_s, status = _timed(lambda: implied_totals.connector_status(session, 1))
    print(json.dumps({
        "database": url.split(":", 1)[0], "cpu_count": os.cpu_count(), "fills": args.fills,
        "connectors": args.connectors,
        "snapshot_rows_added": extra, "moves": len(moves), "rows": len(result.rows),
        "unbalanced": result.count("unbalanced"), "compared_snapshots": int(result.rows["snapshots"].sum()),
        "balance_moves_s": moves_s, "reconcile_all_s": reconcile_s, "reconcile_all_again_s": again_s,
        "reconcile_all_after_one_new_fill_s": after_fill_s,
        "connector_status_s": status_s,
        "connector_status": status, "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }, indent=2))


if __name__ == "__main__":
    main()
