"""Sync commands: ``sync`` (now, once) and ``worker`` (every interval until SIGTERM)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from lib.access import SYSTEM
from lib.cli import CommandError, given, interval_seconds, record_id
from lib.clients import find_client
from lib.db import check_schema, session_scope
from lib.settings import get_settings
from lib.sync import ConnectorResult, RunReport, sync_connector, sync_connectors
from lib.sync.lease import WorkerLockBusy
from lib.sync.worker import run_worker
from lib.vault import load_vault

JSON_FIELDS = ("connector_id", "client", "exchange", "label", "success", "balances", "new_trades",
               "new_transfers", "open_orders", "error")


def register(subparsers: argparse._SubParsersAction) -> None:
    sync = subparsers.add_parser("sync", help="sync connectors now (all enabled ones by default)")
    sync.add_argument("--client", type=given("--client", "a client name"), help="only this client's connectors")
    sync.add_argument("--connector", type=record_id("connector"), help="only this connector (by id)")
    sync.add_argument("--json", action="store_true", help="print the result as JSON")
    sync.set_defaults(handler=_sync)
    worker = subparsers.add_parser("worker", help="sync every enabled connector on an interval until SIGTERM")
    worker.add_argument("--interval", type=interval_seconds,
                        help="seconds between runs, 1 to 86400 (default: SYNC_INTERVAL_SECONDS)")
    worker.set_defaults(handler=_worker)


def _line(result: ConnectorResult) -> str:
    name = f"#{result.connector_id} {result.client} / {result.exchange} / {result.label}"
    if result.success:
        refused = f", {result.refused} row(s) refused (longer than their column, see the log)" if result.refused else ""
        return (f"ok      {name}: {result.balances} balance(s), {result.new_trades} new fill(s), "
                f"{result.new_transfers} new transfer(s), {result.open_orders} open order(s){refused}")
    return f"{'skipped' if result.skipped else 'FAILED '} {name}: {result.error}"


def _print(report: RunReport, as_json: bool) -> None:
    """Every connector asked for counts: one skipped because another process holds it did not sync."""
    total = len(report.results)
    successful = sum(r.success for r in report.results)
    if as_json:
        print(json.dumps({
            "total": total, "successful": successful, "failed": total - successful,
            "results": [{k: getattr(r, k) for k in JSON_FIELDS} for r in report.results],
        }, ensure_ascii=False))
        return
    for result in report.results:
        print(_line(result), file=sys.stdout if result.success else sys.stderr)
    print(f"{successful} of {total} connector(s) synced")


def _sync(args: argparse.Namespace) -> int:
    client_id = None
    if args.client is not None:
        with session_scope() as session:
            client_id = find_client(session, args.client).id
    ids = [args.connector] if args.connector is not None else None
    report = sync_connectors(SYSTEM, connector_ids=ids, client_id=client_id, trigger="cli")
    if not report.results:
        if ids:
            raise CommandError(f"No connector with id {args.connector}.")
        print(json.dumps({"total": 0, "successful": 0, "failed": 0, "results": []}) if args.json
              else "no enabled connector to sync")
        return 0
    _print(report, args.json)
    return 0 if all(r.success for r in report.results) else 1


def print_sync_after_save(connector_id: int) -> int:
    """The first sync of a connector just saved by ``connector add``; prints its result."""
    result = sync_connector(SYSTEM, connector_id, trigger="save")
    print(_line(result), file=sys.stdout if result.success else sys.stderr)
    return 0 if result.success else 1


def _worker(args: argparse.Namespace) -> int:
    """Refuses to start on a database without the newest schema or with unusable ENCRYPTION_KEYS
    (one line each), rather than logging the same failure every interval."""
    interval = get_settings().sync_interval_seconds if args.interval is None else args.interval
    check_schema()
    load_vault()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    print(f"sync worker started: every {interval:g} s (SIGTERM stops it)", flush=True)
    try:
        run_worker(interval, stop)
    except WorkerLockBusy as busy:
        raise CommandError(str(busy)) from None
    print("sync worker stopped", flush=True)
    return 0
