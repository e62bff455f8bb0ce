"""The P&L fill store (lib.queries) with 1,000,000 fills: each path it takes, timed, printed as JSON.

The rows go in as bench_pages.py seeds them (same generator, same database layout). Then, with
``queries.pnl_fills`` as the P&L page calls it (admin, every connector):
- first: no file yet, every fill read from the trades table and the file written;
- same_version: nothing written since (the file used as it is: one row read, no scan);
- after_new_fill: one fill committed (the fills after the file's last id read and appended);
- after_fill_edit: one fill's price updated (a new trades epoch: rebuilt from the table);
- after_restart: the file as a new server process finds it, the sync having kept it current
  (this process's kept frame dropped, so the file is read and its label checked; the operating
  system's page cache as it is).
``count_max_ms`` is the (count, max id) query the store ran on every call before it was keyed
by the write version. Times are wall clock, milliseconds, median of ``--repeat`` runs.

    .venv/bin/python bench/bench_fill_store.py [--fills 1000000] [--connectors 200] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_pages import _seed, migrated  # noqa: E402


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fills", type=int, default=1_000_000)
    parser.add_argument("--connectors", type=int, default=200)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary folder")
    return parser.parse_args()


def _ms(step: Callable[[], object]) -> float:
    began = time.perf_counter()
    step()
    return (time.perf_counter() - began) * 1000


def main() -> None:
    args = _args()
    url = migrated("bench-fill-store-", args.database_url)
    _seed(url, args.fills, args.connectors, args.clients)

    from sqlalchemy import func, insert, select, update

    from lib import queries
    from lib.access import Role, Viewer
    from lib.db import session_scope
    from lib.models import Connector, Trade
    from lib.settings import get_settings

    viewer = Viewer("bench-admin", Role.ADMIN)
    with session_scope() as session:
        connector_id = session.scalar(select(Connector.id).limit(1))

    def read() -> None:
        with session_scope() as session:
            queries.pnl_fills(session, viewer)

    def store_files() -> list[Path]:
        return list((get_settings().data_dir / "cache").glob("fills-*.arrow"))

    def new_fill(n: int) -> None:
        with session_scope() as session:
            session.execute(insert(Trade), [{"connector_id": connector_id, "trade_id": f"bench-{n}",
                                             "timestamp": 1, "symbol": "BTC/USDT", "base": "BTC", "quote": "USDT",
                                             "side": "buy", "amount": 0.001, "price": 60000.0, "cost": 60.0}])

    def edit_fill(n: int) -> None:
        with session_scope() as session:
            session.execute(update(Trade).where(Trade.trade_id == "bench-0").values(price=60000.0 + n))

    def count_max() -> None:
        with session_scope() as session:
            session.execute(select(func.count(Trade.id), func.max(Trade.id))).one()

    def restarted() -> None:
        queries._STORE_READ.clear()  # noqa: SLF001 - what a new process starts without
        read()

    first = _ms(read)
    same, appended, rebuilt, checks, restarts = [], [], [], [], []
    for n in range(args.repeat):
        same.append(_ms(read))
        new_fill(n)
        appended.append(_ms(read))
        edit_fill(n)
        rebuilt.append(_ms(read))
        checks.append(_ms(count_max))
        restarts.append(_ms(restarted))
    print(json.dumps({
        "benchmark": "fill_store", "fills": args.fills + args.repeat, "connectors": args.connectors,
        "database": url.split(":", 1)[0], "cores": os.cpu_count(),
        "first_ms": round(first), "same_version_ms": round(statistics.median(same)),
        "after_new_fill_ms": round(statistics.median(appended)),
        "after_fill_edit_ms": round(statistics.median(rebuilt)),
        "count_max_ms": round(statistics.median(checks)),
        "after_restart_ms": round(statistics.median(restarts)),
        "file_mb": round(sum(p.stat().st_size for p in store_files()) / 1e6, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
