"""Sync benchmark: 200 simulated connectors, 100 ms latency per request, 1,000 fills each.

Prints one JSON object: wall time of one connector alone, of the first full sync of all
of them, of a second (incremental) sync, requests per connector on the second sync, fills
fetched again on it, peak RSS, and the sequential baseline (concurrency 1). The simulator
runs in its own process, as a real exchange would, so its CPU does not count against the
sync. Each phase starts from an empty SQLite database and cold market caches.

    .venv/bin/python bench/bench_sync.py [--connectors 200] [--fills 1000] [--latency-ms 100]
                                         [--baseline-subset 0]   # 0: measure the baseline fully
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _serve(config_kwargs: dict, pipe) -> None:  # noqa: ANN001 - multiprocessing connection
    from lib.simulator import Simulator, SimulatorConfig

    sim = Simulator(SimulatorConfig(**config_kwargs)).start()
    for account in sim.accounts:  # generate every history now: the exchange's work is not ours
        sim.truth(account.id)
    pipe.send([(a.id, a.dialect, a.api_url, a.credentials()) for a in sim.accounts])
    pipe.recv()  # wait for "stop"
    sim.stop()


def _fresh_database(root: Path, name: str) -> None:
    from lib import db
    from lib.settings import get_settings
    from lib.sync import markets

    os.environ["DATABASE_URL"] = f"sqlite:///{root / name}.db"
    get_settings.cache_clear()
    db.dispose_engines()
    db.migrate()
    markets.forget()


def _add_connectors(accounts: list) -> list[int]:  # noqa: ANN001
    from lib.access import SYSTEM
    from lib.clients import create_client
    from lib.connectors import ConnectorInput, create_connector
    from lib.db import session_scope
    from lib.vault import load_vault

    vault = load_vault()
    with session_scope() as session:
        client = create_client(session, SYSTEM, "Bench")
        return [create_connector(session, SYSTEM, vault, client.id,
                                 ConnectorInput(dialect, account_id, credentials, api_url)).id
                for account_id, dialect, api_url, credentials in accounts]


def _timed_sync(**options: object) -> tuple[float, object]:
    from lib.access import SYSTEM
    from lib.sync import sync_connectors

    started, cpu = time.perf_counter(), time.process_time()
    report = sync_connectors(SYSTEM, trigger="cli", **options)
    elapsed = time.perf_counter() - started
    print(f"  sync of {len(report.results)} connector(s): {elapsed:.1f} s wall, {time.process_time() - cpu:.1f} s CPU",
          file=sys.stderr)
    return elapsed, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connectors", type=int, default=200)
    parser.add_argument("--fills", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--concurrency", type=int, default=None)
    parser.add_argument("--baseline-subset", type=int, default=0,
                        help="time the sequential baseline on this many connectors and extrapolate (0: all)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    from cryptography.fernet import Fernet

    os.environ.update({"ENCRYPTION_KEYS": Fernet.generate_key().decode(), "DATA_DIR": str(root),
                       "DOTENV_PATH": str(root / "none.env")})
    import logging

    logging.disable(logging.WARNING)
    from lib.sync import DEFAULT_CONCURRENCY
    from lib.sync import rows as rows_module

    concurrency = args.concurrency or DEFAULT_CONCURRENCY
    here, there = multiprocessing.Pipe()
    server = multiprocessing.get_context("spawn").Process(target=_serve, args=(
        {"seed": 3, "accounts": args.connectors, "days": 90, "fills_per_account": args.fills,
         "latency_ms": args.latency_ms}, there), daemon=True)
    server.start()
    accounts = here.recv()

    fetched: list[int] = [0]
    original_row = rows_module.trade_row

    def counting_row(exchange, trade):  # noqa: ANN001, ANN202
        fetched[0] += 1
        return original_row(exchange, trade)

    rows_module.trade_row = counting_row
    try:
        _fresh_database(root, "single")
        single_ids = _add_connectors(accounts[:1])
        single_s, single = _timed_sync(connector_ids=single_ids)

        _fresh_database(root, "full")
        _add_connectors(accounts)
        first_s, first = _timed_sync(concurrency=concurrency)
        fetched[0] = 0
        second_s, second = _timed_sync(concurrency=concurrency)
        refetched = fetched[0]

        subset = args.baseline_subset or args.connectors
        _fresh_database(root, "sequential")
        _add_connectors(accounts[:subset])
        sequential_s, sequential = _timed_sync(concurrency=1)
    finally:
        here.send("stop")
        server.join(timeout=30)
    requests_second = [r.requests for r in second.results]
    baseline_s = sequential_s * args.connectors / subset
    print(json.dumps({
        "connectors": args.connectors, "fills_per_connector": args.fills, "latency_ms": args.latency_ms,
        "concurrency": concurrency,
        "single_connector_s": round(single_s, 2),
        "first_full_sync_s": round(first_s, 2),
        "first_sync_ok": f"{first.successful}/{first.total}",
        "first_sync_new_fills": sum(r.new_trades for r in first.results),
        "first_sync_requests_per_connector": round(statistics.mean(r.requests for r in first.results), 1),
        "second_sync_s": round(second_s, 2),
        "second_sync_ok": f"{second.successful}/{second.total}",
        "second_sync_requests_per_connector": {"mean": round(statistics.mean(requests_second), 1),
                                               "max": max(requests_second)},
        "second_sync_fills_fetched": refetched,
        "second_sync_new_fills": sum(r.new_trades for r in second.results),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "sequential_baseline_s": round(baseline_s, 2),
        "sequential_baseline_measured_on": subset,
        "sequential_baseline_extrapolated": subset != args.connectors,
        "sequential_ok": f"{sequential.successful}/{sequential.total}",
        "first_sync_vs_single_x": round(first_s / single_s, 2),
        "speedup_vs_sequential_x": round(baseline_s / first_s, 1),
        "single_connector_requests": single.results[0].requests,
    }, indent=2))


if __name__ == "__main__":
    main()
