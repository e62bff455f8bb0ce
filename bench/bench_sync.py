"""Sync benchmark: 200 simulated connectors, 100 ms latency per request, 1,000 fills each;
then, per exchange dialect, first-sync requests against the minimum the windows allow.

Prints one JSON object. The scale part (the simulator's default dialects, Binance and OKX
alternating): wall time of one connector alone (the first account;
``single_connector_s_by_dialect``: the first account of each dialect), of the first full sync
of all of them, of a second (incremental) sync, requests per connector, fills fetched again on
the second sync, peak RSS (this process, and the largest sync child process), and the sequential
baseline (concurrency 1); the ratios (all / one, sequential / all) next to issue 17's targets
(``targets``); CPU seconds of the sync (``resource.getrusage``: user + system, every thread, of
this process and of the sync's child processes, ``lib.sync.processes``) per phase and per
connector, the simulator process's own CPU, the machine's core count (``cpu_count``) and the
processes the first full sync uses (``sync_processes``; ``--processes`` sets SYNC_PROCESSES, 1:
in-process; the incremental sync stays in-process, ``lib.sync.processes.processes_for``). The per-dialect part
(``per_dialect``): a few accounts of each of ``--dialects`` with the simulator's hard cases
(``scenarios``: quiet gaps, same-millisecond bursts, fills on UTC midnights), one first
sync, and per connector the history requests made next to the minimum (see
``minimum_requests``), the other requests, and its time.

crypto.com is slow by design: ccxt spaces its ``private/get-trades`` and
``private/get-order-history`` calls about 1 s apart (cost 100 x 10 ms), and its 180-day
look-back in 1-day windows is about 180 of each, so a crypto.com first sync takes 6 to 7
minutes whatever the account holds. Hence the small ``--dialect-accounts``.

The simulator runs in its own process, as a real exchange would, so its CPU does not count
against the sync. Each phase starts from an empty SQLite database and cold market caches.

    .venv/bin/python bench/bench_sync.py [--connectors 200] [--fills 1000] [--latency-ms 100]
        [--baseline-subset 0]   # 0: measure the baseline fully
        [--processes N]   # SYNC_PROCESSES (default: the setting's, the core count)
        [--scale-dialects binance,okx,bybit]   # the scale part's dialects (default binance,okx)
        [--dialects binance,okx,cryptocom,bybit] [--dialect-accounts 2]   # 0: skip that part
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


ALL_DIALECTS = ("binance", "okx", "cryptocom", "bybit")
DIALECT_DAYS = 90  # the scenarios need 40 or more
#: history streams by name (cursor and coverage key prefix); per market where the exchange needs it
STREAMS = ("trades", "orders", "canceled", "deposits", "withdrawals", "ledger")
#: issue 17 item 4: the first full sync at most this many times one connector's, and at least
#: this many times faster than the connectors one at a time
TARGET_ALL_VS_ONE = 3.0
TARGET_SPEEDUP = 50.0


def _stamps(truth: Any) -> dict[str, list[tuple[str | None, int]]]:  # noqa: ANN401 - GroundTruth
    """(symbol, time) of every row each history stream can return."""
    return {
        "fills": [(f["symbol"], f["timestamp"]) for f in truth.fills],
        "closed_orders": [(o["symbol"], o["timestamp"]) for o in truth.closed_orders if o["status"] == "closed"],
        "canceled_orders": [(o["symbol"], o["timestamp"]) for o in truth.closed_orders if o["status"] != "closed"],
        "open_orders": [(o["symbol"], o["timestamp"]) for o in truth.open_orders],
        "deposits": [(None, d["timestamp"]) for d in truth.deposits],
        "withdrawals": [(None, w["timestamp"]) for w in truth.withdrawals],
    }


def _serve(config_kwargs: dict, pipe, with_truth: bool = False) -> None:  # noqa: ANN001 - multiprocessing connection
    from lib.simulator import Simulator, SimulatorConfig

    sim = Simulator(SimulatorConfig(**config_kwargs)).start()
    truths = {a.id: sim.truth(a.id) for a in sim.accounts}  # generate every history now: not our work
    pipe.send([(a.id, a.dialect, a.api_url, a.credentials(), _stamps(truths[a.id]) if with_truth else None)
               for a in sim.accounts])
    pipe.recv()  # wait for "stop"
    sim.stop()


def _start_simulator(config_kwargs: dict, with_truth: bool = False) -> tuple[Any, Any, list]:  # noqa: ANN401
    """The simulator in its own process; (process, pipe, accounts)."""
    here, there = multiprocessing.Pipe()
    server = multiprocessing.get_context("spawn").Process(target=_serve, args=(config_kwargs, there, with_truth),
                                                          daemon=True)
    server.start()
    return server, here, here.recv()


def _stop_simulator(server: Any, pipe: Any) -> None:  # noqa: ANN401 - process and connection
    pipe.send("stop")
    server.join(timeout=30)


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
                for account_id, dialect, api_url, credentials, _ in accounts]


def _cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    """CPU time (user + system, every thread) of this process, or of its children waited for
    (``RUSAGE_CHILDREN``: the sync's child processes once the run has joined them; the
    simulator's once stopped), from ``resource.getrusage``."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


#: CPU seconds of the sync's child processes so far (to tell the simulator's apart)
_sync_children_cpu = [0.0]


def _timed_sync(**options: object) -> tuple[float, object, float]:
    """(wall seconds, report, CPU seconds of this process and the run's child processes) of one run."""
    from lib.access import SYSTEM
    from lib.sync import sync_connectors

    started, cpu, children = time.perf_counter(), _cpu_seconds(), _cpu_seconds(resource.RUSAGE_CHILDREN)
    report = sync_connectors(SYSTEM, trigger="cli", **options)
    elapsed, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
    children = _cpu_seconds(resource.RUSAGE_CHILDREN) - children
    _sync_children_cpu[0] += children
    print(f"  sync of {len(report.results)} connector(s): {elapsed:.1f} s wall, {cpu + children:.1f} s CPU "
          f"({children:.1f} s in child processes)", file=sys.stderr)
    return elapsed, report, cpu + children


def minimum_requests(rules: Any, stamps: Sequence[int], now: int) -> int:  # noqa: ANN401 - StreamRules
    """The fewest calls that read one stream on a first sync under the exchange's rules.

    Time paging: the walk covers [now - look-back, now] (730 days when the look-back is
    unknown), so ceil(span / window) windows (one when no window limit is known), one call
    each, plus one call per further page where a window holds more rows than a page:
    ceil(rows / limit) - 1, the windows tiled from the start of the span (nothing when the
    page size is unknown). Id and bill-id paging have no windows: ceil(rows / limit) calls,
    at least one. Rows older than the look-back cannot be read and do not count. A lower
    bound: no pager can tell a page exactly full from one with more behind it, and the
    walk's consecutive windows overlap by 1 ms.
    """
    from lib.capabilities import DAY_MS, DEFAULT_LOOKBACK_DAYS

    if rules.paging != "time":
        limit = rules.limit or (1000 if rules.paging == "id" else 100)  # the walker's defaults
        return max(1, math.ceil(len(stamps) / limit))
    span = int((rules.days_back if rules.days_back is not None else DEFAULT_LOOKBACK_DAYS) * DAY_MS)
    start = now - span
    window = rules.window_ms or span + 1
    rows = Counter((t - start) // window for t in stamps if start <= t <= now)
    extra = sum(math.ceil(n / rules.limit) - 1 for n in rows.values()) if rules.limit else 0
    return max(1, math.ceil(span / window)) + extra


def _rows_of(name: str, method: str, symbol: str | None, stamps: Mapping[str, list]) -> list[int]:
    """Times of the rows one stream can return: "orders" holds canceled orders too unless a
    "canceled" stream reads them (fetchClosedOrders), and fetchOrders lists open ones too. The
    ground truth has no ledger, so the ledger's minimum counts its windows only."""
    if name == "ledger":
        return []
    if name == "trades":
        rows = stamps["fills"]
    elif name == "canceled":
        rows = stamps["canceled_orders"]
    elif name == "orders":
        rows = stamps["closed_orders"] + (stamps["canceled_orders"] if method != "fetchClosedOrders" else [])
        rows += stamps["open_orders"] if method == "fetchOrders" else []
    else:
        rows = stamps[name]
    return [t for s, t in rows if symbol is None or s == symbol]


def _mean(values: Sequence[float], digits: int = 1) -> float:
    return round(statistics.mean(values), digits) if values else 0.0


def per_dialect(args: argparse.Namespace, root: Path, concurrency: int) -> dict[str, dict[str, Any]]:
    """First sync of ``--dialect-accounts`` accounts per dialect (one run, all at once): per
    connector, the history calls next to ``minimum_requests`` summed over the streams walked
    (from the coverage map), the other requests (markets, balances per account type, open
    orders, positions, tickers, candles) and the connector's own time."""
    import ccxt

    from lib.capabilities import history_rules
    from lib.sync import store
    from lib.sync.connector import ConnectorSync

    server, pipe, accounts = _start_simulator(
        {"seed": 11, "accounts": args.dialect_accounts * len(args.dialects), "days": DIALECT_DAYS,
         "fills_per_account": args.fills, "latency_ms": args.latency_ms, "dialects": list(args.dialects),
         "scenarios": True}, with_truth=True)
    calls: Counter[tuple[int, str]] = Counter()  # (connector id, stream name) -> history calls
    original = ConnectorSync._stream

    def counting_stream(self, rules, symbol, cursors, now):  # noqa: ANN001, ANN202
        stream = original(self, rules, symbol, cursors, now)
        fetch, key = stream.fetch, (self.job.connector_id, rules.name)

        async def counted(*fetch_args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
            calls[key] += 1
            return await fetch(*fetch_args, **kwargs)

        stream.fetch = counted
        return stream

    ConnectorSync._stream = counting_stream
    try:
        _fresh_database(root, "dialects")
        ids = _add_connectors(accounts)
        now = int(time.time() * 1000)
        _, report, _ = _timed_sync(concurrency=concurrency)
    finally:
        ConnectorSync._stream = original
        _stop_simulator(server, pipe)
    results = {r.connector_id: r for r in report.results}
    rules = {d: history_rules(getattr(ccxt, d)()) for d in args.dialects}
    figures: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for connector_id, (_, dialect, _, _, stamps) in zip(ids, accounts, strict=True):
        result, row = results[connector_id], figures[dialect]
        minimum: Counter[str] = Counter()
        streams = [c for c in store.coverage(connector_id) if c["kind"] != "balance"]
        # a stream that failed (the simulator serves no ledger on some dialects) stopped early:
        # it is named, and left out of both sides of the comparison
        failed = {c["stream"].partition(":")[0] for c in streams if c["failed_error"]}
        for c in streams:
            name, _, symbol = c["stream"].partition(":")
            if name in failed:
                continue
            stream_rules = rules[dialect].streams[name]
            minimum[name] += minimum_requests(stream_rules, _rows_of(name, stream_rules.method, symbol or None,
                                                                     stamps), now)
        history = sum(calls[(connector_id, k)] for k in minimum)
        row["ok"].append(result.success)
        row["errors"].extend([result.error] if result.error else [])
        row["failed_streams"].extend(failed)
        row["seconds"].append(result.duration_ms / 1000)
        row["requests"].append(result.requests)
        row["history"].append(history)
        row["minimum"].append(sum(minimum.values()))
        row["other"].append(result.requests - history)
        row["streams"].append(len(streams))
        for name in STREAMS:
            row[f"{name}_requests"].append(calls[(connector_id, name)] if name in minimum else 0)
            row[f"{name}_minimum"].append(minimum[name])
    summary = {}
    print(f"  {'dialect':<10}{'ok':>5}{'requests':>10}{'history':>9}{'minimum':>9}{'x min':>7}{'s/conn':>8}",
          file=sys.stderr)
    for dialect in args.dialects:
        row = figures[dialect]
        history, minimum = _mean(row["history"]), _mean(row["minimum"])
        summary[dialect] = {
            "connectors": len(row["ok"]), "ok": f"{sum(row['ok'])}/{len(row['ok'])}",
            "errors": sorted(set(row["errors"])),
            "failed_streams_left_out": sorted(set(row["failed_streams"])),
            "first_sync_s_per_connector": _mean(row["seconds"], 2),
            "requests_per_connector": _mean(row["requests"]),
            "history_requests_per_connector": history,
            "history_minimum_per_connector": minimum,
            "history_vs_minimum_x": round(history / minimum, 2) if minimum else None,
            "other_requests_per_connector": _mean(row["other"]),
            "streams_per_connector": _mean(row["streams"]),
            "by_stream_per_connector": {name: {"requests": _mean(row[f"{name}_requests"]),
                                               "minimum": _mean(row[f"{name}_minimum"])}
                                        for name in STREAMS if any(row[f"{name}_minimum"])},
        }
        item = summary[dialect]
        print(f"  {dialect:<10}{item['ok']:>5}{item['requests_per_connector']:>10}{history:>9}{minimum:>9}"
              f"{item['history_vs_minimum_x'] or 0:>7}{item['first_sync_s_per_connector']:>8}", file=sys.stderr)
    return summary


def _dialects(text: str) -> tuple[str, ...]:
    names = tuple(d.strip() for d in text.split(",") if d.strip())
    unknown = [d for d in names if d not in ALL_DIALECTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"dialects are among {', '.join(ALL_DIALECTS)}")
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connectors", type=int, default=200)
    parser.add_argument("--fills", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--concurrency", type=int, default=None)
    parser.add_argument("--baseline-subset", type=int, default=0,
                        help="time the sequential baseline on this many connectors and extrapolate (0: all)")
    parser.add_argument("--scale-dialects", type=_dialects, default=None,
                        help="comma-separated dialects of the scale part, alternating (default: the "
                             "simulator's, Binance and OKX); add bybit or cryptocom for windowed walks")
    parser.add_argument("--dialects", type=_dialects, default=ALL_DIALECTS,
                        help="comma-separated dialects of the per-dialect part (default: all four)")
    parser.add_argument("--dialect-accounts", type=int, default=2,
                        help="accounts per dialect in the per-dialect part (0: skip it)")
    parser.add_argument("--processes", type=int, default=None,
                        help="SYNC_PROCESSES: child processes of a large run (1: in-process)")
    args = parser.parse_args()
    if args.processes is not None:
        os.environ["SYNC_PROCESSES"] = str(args.processes)

    root = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    from cryptography.fernet import Fernet

    os.environ.update({"ENCRYPTION_KEYS": Fernet.generate_key().decode(), "DATA_DIR": str(root),
                       "DOTENV_PATH": str(root / "none.env")})
    import logging

    logging.disable(logging.WARNING)
    from lib.settings import get_settings
    from lib.sync import DEFAULT_CONCURRENCY
    from lib.sync import rows as rows_module
    from lib.sync.processes import processes_for

    concurrency = args.concurrency or DEFAULT_CONCURRENCY
    sync_processes = processes_for(args.connectors, 0, concurrency, get_settings().sync_processes)
    scale = {"dialects": list(args.scale_dialects)} if args.scale_dialects else {}
    server, pipe, accounts = _start_simulator(
        {"seed": 3, "accounts": args.connectors, "days": 90, "fills_per_account": args.fills,
         "latency_ms": args.latency_ms, **scale})
    fetched: list[int] = [0]
    original_row = rows_module.trade_row

    def counting_row(exchange, trade):  # noqa: ANN001, ANN202
        fetched[0] += 1
        return original_row(exchange, trade)

    rows_module.trade_row = counting_row
    try:
        _fresh_database(root, "single")
        single_ids = _add_connectors(accounts[:1])
        single_s, single, single_cpu = _timed_sync(connector_ids=single_ids)
        # each other dialect's first account alone too: the full sync cannot end before the
        # slowest of them (each exchange's rate limit spaces one account's requests)
        alone = {accounts[0][1]: single_s}
        for account in accounts:
            if account[1] not in alone:
                _fresh_database(root, f"single-{account[1]}")
                alone[account[1]] = _timed_sync(connector_ids=_add_connectors([account]))[0]

        _fresh_database(root, "full")
        _add_connectors(accounts)
        first_s, first, first_cpu = _timed_sync(concurrency=concurrency)
        child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the simulator is not joined yet
        fetched[0] = 0
        second_s, second, second_cpu = _timed_sync(concurrency=concurrency)
        refetched = fetched[0]

        subset = args.baseline_subset or args.connectors
        _fresh_database(root, "sequential")
        _add_connectors(accounts[:subset])
        sequential_s, sequential, _ = _timed_sync(concurrency=1)
    finally:
        _stop_simulator(server, pipe)
    # the simulator (joined by now) is this process's only child besides the sync's: what serving
    # the scale part cost
    simulator_cpu = _cpu_seconds(resource.RUSAGE_CHILDREN) - _sync_children_cpu[0]
    dialects = per_dialect(args, root, concurrency) if args.dialect_accounts > 0 else {}
    requests_second = [r.requests for r in second.results]
    baseline_s = sequential_s * args.connectors / subset
    all_vs_one, speedup = first_s / single_s, baseline_s / first_s
    print(json.dumps({
        "connectors": args.connectors, "fills_per_connector": args.fills, "latency_ms": args.latency_ms,
        "concurrency": concurrency, "cpu_count": os.cpu_count(), "sync_processes": sync_processes,
        "scale_dialects": sorted({dialect for _, dialect, _, _, _ in accounts}),
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
        "peak_rss_mb_largest_sync_process": round(child_rss / 1024, 1) if sync_processes > 1 else None,
        "sequential_baseline_s": round(baseline_s, 2),
        "sequential_baseline_measured_on": subset,
        "sequential_baseline_extrapolated": subset != args.connectors,
        "sequential_ok": f"{sequential.successful}/{sequential.total}",
        "single_connector_s_by_dialect": {d: round(v, 2) for d, v in alone.items()},
        "first_sync_vs_single_x": round(all_vs_one, 2),
        "first_sync_vs_slowest_single_x": round(first_s / max(alone.values()), 2),
        "speedup_vs_sequential_x": round(speedup, 1),
        "targets": {"first_sync_vs_single_x": {"at_most": TARGET_ALL_VS_ONE, "met": all_vs_one <= TARGET_ALL_VS_ONE},
                    "speedup_vs_sequential_x": {"at_least": TARGET_SPEEDUP, "met": speedup >= TARGET_SPEEDUP}},
        "cpu_s": {"single": round(single_cpu, 2), "first_full_sync": round(first_cpu, 2),
                  "second_sync": round(second_cpu, 2), "simulator_process": round(simulator_cpu, 2)},
        "cpu_s_per_connector": {"first_full_sync": round(first_cpu / args.connectors, 3),
                                "second_sync": round(second_cpu / args.connectors, 3)},
        "first_sync_cpu_share_of_wall": round(first_cpu / first_s, 2),
        "single_connector_requests": single.results[0].requests,
        "per_dialect": dialects,
    }, indent=2))


if __name__ == "__main__":
    main()
