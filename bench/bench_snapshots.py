"""Balance snapshot thinning (lib/snapshots.py) with a month of one-minute syncs: printed as JSON.

How it measures: every connector gets a snapshot of ``--assets`` assets (account type "", the
default account) every ``--interval-minutes`` over the last ``--days`` days, straight into a
fresh database (sqlite3 executemany, or COPY on PostgreSQL) in the form lib.models writes it:
taken_at as SQLAlchemy's SQLite text or a timestamptz, amounts as ``decimal_text`` on SQLite
and NUMERIC on PostgreSQL. Then, on a warm Python process, wall-clock seconds of what reads
snapshots (latest balances, the equity curve's daily buckets and hourly ones for two days,
reconciliation; the trades table is empty, so every asset is "unknown"), before and after the
worker's ``snapshots.thin()``, which is timed twice for one moment: the first deletes everything
older than ``SNAPSHOT_DETAIL_DAYS`` but the last moment of each hour and the first, the second
finds nothing left to do (what each later hourly run costs, bar the hour that came of age).
Latest balances and the daily history must be the same frames after as before
(``same_after_thinning``).

    .venv/bin/python bench/bench_snapshots.py [--connectors 20] [--days 30] [--interval-minutes 1]
        [--assets 5] [--database-url URL]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_pages import migrated  # noqa: E402 - after the path is set
from bench.bench_reconcile import _timed  # noqa: E402

ASSETS = ["BTC", "ETH", "USDT", "SOL", "BNB", "XRP", "ADA", "DOGE", "LINK", "AVAX"]
#: SQLAlchemy's SQLite DATETIME text, which UtcDateTime writes (always with microseconds)
SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connectors", type=int, default=20)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--interval-minutes", type=int, default=1)
    parser.add_argument("--assets", type=int, default=5, choices=range(1, len(ASSETS) + 1), metavar="1..10")
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary folder")
    return parser.parse_args()


def _connectors(url: str, count: int) -> list[int]:
    """One client holding ``count`` connectors; their ids."""
    from sqlalchemy import insert, select

    from lib.db import session_scope
    from lib.models import Client, Connector, utcnow
    from lib.vault import load_vault

    vault = load_vault()
    now = utcnow()
    with session_scope(url) as session:
        client = Client(name="Bench client")
        session.add(client)
        session.flush()
        session.execute(insert(Connector), [
            {"client_id": client.id, "exchange_id": ("binance", "okx")[n % 2], "label": f"acct-{n}",
             "credentials_ciphertext": vault.encrypt({"apiKey": os.urandom(8).hex(), "secret": os.urandom(16).hex()}),
             "key_hint": "0000", "status": "ok", "last_success_at": now, "last_attempt_at": now,
             "first_synced_at": now - timedelta(days=366)} for n in range(count)])
        return list(session.scalars(select(Connector.id).order_by(Connector.id)))


def _moments(connector_id: int, now: datetime, days: int, interval: int) -> list[datetime]:
    """A connector's sync times, oldest first: every ``interval`` minutes back from now, each
    connector at its own second and microsecond of the minute."""
    newest = now.replace(second=0, microsecond=0) - timedelta(minutes=interval) + timedelta(
        seconds=connector_id * 7 % 60, microseconds=connector_id * 1013 % 1_000_000)
    count = days * 1440 // interval
    return [newest - timedelta(minutes=interval * k) for k in range(count - 1, -1, -1)]


def _rows(connector_ids: list[int], days: int, interval: int, assets: int,
          stamp: Callable[[datetime], str]) -> Iterator[tuple[int, str, str, str, str, str]]:
    """(connector_id, taken_at, asset, free, used, total): the totals move a little every sync,
    written as the app's decimal text (eight decimals, as an exchange reports them)."""
    from lib.models import decimal_text, utcnow

    now = utcnow()
    for connector_id in connector_ids:
        for k, moment in enumerate(_moments(connector_id, now, days, interval)):
            taken = stamp(moment)
            for a in range(assets):
                total = decimal_text(Decimal((a + 1) * 10**9 + (k * (a + 3) + connector_id) % 997_003).scaleb(-8))
                yield connector_id, taken, ASSETS[a], total, "0", total


def _seed(url: str, args: argparse.Namespace) -> int:
    """Insert the connectors and their snapshots; returns the snapshot rows."""
    from lib.db import get_engine

    ids = _connectors(url, args.connectors)
    engine = get_engine(url)
    columns = "connector_id, taken_at, asset, free, used, total, account_type"
    raw = engine.raw_connection()
    count = 0
    try:
        cursor = raw.cursor()
        if engine.dialect.name == "sqlite":
            rows = (row + ("",) for row in _rows(ids, args.days, args.interval_minutes, args.assets,
                                                 lambda moment: moment.strftime(SQLITE_TIME)))
            cursor.executemany(f"INSERT INTO balance_snapshots ({columns}) VALUES (?,?,?,?,?,?,?)", rows)
            count = cursor.rowcount
        else:
            with cursor.copy(f"COPY balance_snapshots ({columns}) FROM STDIN") as copy:
                for connector_id in ids:  # one connector's rows at a time, not the whole table in memory
                    buffer = io.StringIO()
                    for row in _rows([connector_id], args.days, args.interval_minutes, args.assets,
                                     lambda moment: moment.isoformat()):
                        buffer.write("\t".join(map(str, row)) + "\t\n")
                        count += 1
                    copy.write(buffer.getvalue())
        raw.commit()
    finally:
        raw.close()
    if engine.dialect.name != "sqlite":  # the planner's statistics, as autovacuum would leave them
        with engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE balance_snapshots")
    return count


def _row_count() -> int:
    from sqlalchemy import func, select

    from lib.db import session_scope
    from lib.models import BalanceSnapshot

    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(BalanceSnapshot)) or 0)


def _reads() -> tuple[dict[str, object], dict[str, object]]:
    """Seconds of each snapshot read (and its size), and the frames compared before and after."""
    from lib import queries, reconcile
    from lib.access import SYSTEM
    from lib.db import session_scope
    from lib.models import utcnow

    with session_scope() as session:
        latest_s, latest = _timed(lambda: queries.balances(session, SYSTEM))
        daily_s, daily = _timed(lambda: queries.balance_history(session, SYSTEM))
        hourly_s, hourly = _timed(lambda: queries.balance_history(session, SYSTEM, since=utcnow() - timedelta(days=2),
                                                                  bucket="hour"))
    reconcile_s, result = _timed(lambda: reconcile.reconcile(SYSTEM))
    figures = {"balances_latest_s": latest_s, "balances_latest_rows": len(latest),
               "history_day_s": daily_s, "history_day_rows": len(daily),
               "history_hour_2_days_s": hourly_s, "history_hour_2_days_rows": len(hourly),
               "reconcile_s": reconcile_s, "reconcile_rows": len(result.rows),
               "reconcile_compared_snapshots": int(result.rows["snapshots"].sum())}
    return figures, {"balances_latest": latest, "history_day": daily}


def main() -> None:
    args = _args()
    url = migrated("bench-snapshots-", args.database_url)
    from lib import snapshots
    from lib.models import utcnow
    from lib.settings import get_settings

    seed_s, seeded = _timed(lambda: _seed(url, args))
    rows_before = _row_count()
    before, frames_before = _reads()
    now = utcnow()  # both runs at one moment, so the second has exactly nothing left to delete
    first_s, deleted = _timed(lambda: snapshots.thin(now))
    second_s, deleted_again = _timed(lambda: snapshots.thin(now))
    rows_after = _row_count()
    after, frames_after = _reads()
    print(json.dumps({
        "database": url.split(":", 1)[0], "cpu_count": os.cpu_count(), "connectors": args.connectors,
        "days": args.days, "interval_minutes": args.interval_minutes, "assets": args.assets,
        "snapshot_detail_days": get_settings().snapshot_detail_days,
        "seeded_rows": seeded, "seed_s": seed_s, "rows_before": rows_before,
        "before": before,
        "thin_first_s": first_s, "thin_first_deleted": deleted,
        "thin_second_s": second_s, "thin_second_deleted": deleted_again,
        "rows_after": rows_after,
        "after": after,
        "same_after_thinning": {name: bool(frame.equals(frames_after[name])) for name, frame in frames_before.items()},
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }, indent=2))


if __name__ == "__main__":
    main()
