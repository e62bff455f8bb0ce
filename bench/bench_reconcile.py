"""Reconciliation speed with 200 connectors over a year: printed as JSON.

The data is bench_pages.py's (1,000,000 fills over a year on 200 connectors, daily balance
snapshots for the last 31 days), plus a daily snapshot for the rest of the year, so every
connector has about 366 days to compare. Times are wall clock, in seconds, on a warm Python
process: the rebuilt balance moves alone (its first call also writes the P&L fill store), the
whole reconciliation as the page and the CLI run it (every connector and asset against every
daily snapshot, with USD values and causes) twice (the page caches its result; the second run
is what a page shows after a cache clear with the fill store in step), once more after one new
fill later than all (what the first view after a sync costs: the balance index continues, and
only that connector is compared again), and the status a sync records for one connector.
Then five more later fills, one at a time: after each, the reconciliation and the P&L page's
equity curve (all history, marked from that reconciliation), medians in ms of wall clock and
of the thread's CPU; and whether what was kept and continued equals a computation with nothing
kept, frame for frame and bit for bit (``kept_equals_fresh``). The same after each of three sync
passes: a new snapshot for every connector (its newest one's balances, taken now: later than all,
the same day's or a new day's) and one later fill.

    .venv/bin/python bench/bench_reconcile.py [--fills 1000000] [--connectors 200] [--database-url URL]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable
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


def _after_each(rounds: int, change: Callable[[int], None], name: str) -> dict[str, object]:
    """After each of ``rounds`` changes (``change(n)``): the reconciliation and the equity curve (ms,
    wall and CPU, medians); then the kept figures against a computation with nothing kept (the same
    now) after one more."""
    from unittest import mock

    import pandas as pd

    from lib import balance_index, daily_snapshots, equity, reconcile
    from lib.access import SYSTEM
    from lib.kept import PerDatabase, Recent
    from lib.models import utcnow

    times: dict[str, list[float]] = {}

    def timed(name: str, fn):  # noqa: ANN001, ANN202 - any callable
        wall, cpu = time.perf_counter(), time.thread_time()
        value = fn()
        times.setdefault(f"{name}_ms", []).append((time.perf_counter() - wall) * 1000)
        times.setdefault(f"{name}_cpu_ms", []).append((time.thread_time() - cpu) * 1000)
        return value

    for n in range(rounds):
        change(n)
        found = timed("reconcile", lambda: reconcile.reconcile(SYSTEM))
        timed("equity_curve", lambda: equity.equity_curve(SYSTEM, reconciled=found.rows))  # noqa: B023
    change(rounds)  # compared continued, as after a sync
    now = utcnow()
    with mock.patch.object(equity, "utcnow", lambda: now):
        kept = reconcile.reconcile(SYSTEM)
        kept_curve = equity.equity_curve(SYSTEM, reconciled=kept.rows)
        with mock.patch.multiple(balance_index, _KEPT=PerDatabase()), \
                mock.patch.multiple(daily_snapshots, _KEPT=PerDatabase()), \
                mock.patch.multiple(reconcile, _COMPARED=Recent()), \
                mock.patch.multiple(equity, _GRIDS=Recent(), _VALUES=Recent()):  # nothing kept
            fresh = reconcile.reconcile(SYSTEM)
            fresh_curve = equity.equity_curve(SYSTEM, reconciled=fresh.rows)
    pairs = [(kept.rows, fresh.rows)] + [(getattr(kept_curve, name), getattr(fresh_curve, name))
                                         for name in ("curve", "by_asset", "snapshots", "disagreements", "transfers",
                                                      "unpriced")]
    same = kept.unsynced == fresh.unsynced and kept_curve.first_event == fresh_curve.first_event
    for one, other in pairs:
        try:
            pd.testing.assert_frame_equal(one, other, check_exact=True)
        except AssertionError:
            same = False
    return {name: rounds, **{what: round(statistics.median(values)) for what, values in times.items()},
            "kept_equals_fresh": same}


def _later_fill(n: int) -> None:
    _add_fill(f"bench-reconcile-later-{n}", int(time.time() * 1000))


def _sync_pass(n: int) -> None:
    """What a scheduled sync pass writes: every connector's balances again (its newest snapshot's
    rows, taken now) and one later fill."""
    from sqlalchemy import and_, func, insert, select

    from lib.db import session_scope
    from lib.models import BalanceSnapshot, utcnow

    with session_scope() as session:
        newest = (select(BalanceSnapshot.connector_id, func.max(BalanceSnapshot.taken_at).label("taken_at"))
                  .group_by(BalanceSnapshot.connector_id).subquery())
        found = session.execute(select(BalanceSnapshot.connector_id, BalanceSnapshot.asset,
                                       BalanceSnapshot.account_type, BalanceSnapshot.free, BalanceSnapshot.used,
                                       BalanceSnapshot.total)
                                .join(newest, and_(newest.c.connector_id == BalanceSnapshot.connector_id,
                                                   newest.c.taken_at == BalanceSnapshot.taken_at))).all()
        now = utcnow()
        session.execute(insert(BalanceSnapshot), [{"connector_id": c, "taken_at": now, "asset": asset,
                                                   "account_type": kind, "free": free, "used": used, "total": total}
                                                  for c, asset, kind, free, used, total in found])
    _add_fill(f"bench-reconcile-pass-{n}", int(time.time() * 1000))


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
    later = _after_each(5, _later_fill, "later_fills")
    passes = _after_each(3, _sync_pass, "sync_passes")
    print(json.dumps({
        "database": url.split(":", 1)[0], "cpu_count": os.cpu_count(), "fills": args.fills,
        "connectors": args.connectors,
        "snapshot_rows_added": extra, "moves": len(moves), "rows": len(result.rows),
        "unbalanced": result.count("unbalanced"), "compared_snapshots": int(result.rows["snapshots"].sum()),
        "balance_moves_s": moves_s, "reconcile_all_s": reconcile_s, "reconcile_all_again_s": again_s,
        "reconcile_all_after_one_new_fill_s": after_fill_s,
        "connector_status_s": status_s,
        "connector_status": status, "after_each_later_fill": later,
        "after_a_sync_pass_new_snapshot_per_connector_and_one_later_fill": passes,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }, indent=2))


if __name__ == "__main__":
    main()
