"""Benchmark lib.pnl.compute_pnl: seconds and peak RSS for 10k, 100k and 1M fills, FIFO and average cost.

Each case runs in its own subprocess so its peak RSS (ru_maxrss) is its own; it includes the input
frame. Memory freed while making the inputs is handed back before the engine starts
(``release_freed_memory``), so ``engine_rss_mib`` counts all the engine's own pages, and the peak
is then reset to what is resident (``reset_peak_rss``): ``peak_rss_mib`` is the engine run's peak
(imports, the input frame and the engine), not the generator's (``peak_rss_mib_after_inputs``). Fills span 50
assets, 4 connectors and a year, with USDT, USDC, BTC and ETH quotes and fees in the base, the quote
and BNB; text is what the fill store gives (``lib.queries.pnl_fills``): trade ids pandas' default ``str``
dtype, the few-valued columns (symbol, base, quote, side, fee currency) categorical. Fills come in
time order (as a query with ORDER BY returns them); the "shuffled" cases show the cost of unordered
input; the "resume" cases time ``lib.pnl.state.resume`` continuing a state of all fills but one with
one later fill (what a sync's new fill costs the P&L; ``start_seconds`` is the full run that made
the state), then 20 more one at a time, sells and buys in turn (``next_seconds_median``/``_max``).
Wall seconds and CPU seconds are both reported: on a busy machine the wall time includes waiting.

    .venv/bin/python bench/bench_pnl.py            # all cases, one JSON document
    .venv/bin/python bench/bench_pnl.py --case 1000000 fifo sorted
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.pnl import compute_pnl  # noqa: E402
from lib.pnl import state as pnl_state  # noqa: E402

CASES = [(n, method, "sorted") for n in (10_000, 100_000, 1_000_000) for method in ("fifo", "average")]
CASES += [(1_000_000, method, "shuffled") for method in ("fifo", "average")]
CASES += [(1_000_000, method, "resume") for method in ("fifo", "average")]
YEAR_MS = 365 * 24 * 3600 * 1000
START_MS = 1_704_067_200_000  # 2024-01-01


def _text(values: pa.Array) -> pd.api.extensions.ExtensionArray:
    """pandas' default ``str`` column straight from Arrow (no million Python strings on the way,
    which would count in the input's peak RSS rather than the engine's)."""
    return pd.array(pd.arrays.ArrowStringArray(values), dtype="str")


def _coded(codes: np.ndarray, names: list[str] | np.ndarray) -> pd.Series:
    """``names[codes]`` as the fill store hands its few-valued text columns out (``lib.queries``):
    categorical, of the values present, in order of first appearance."""
    labels = pa.array([str(name) for name in names], pa.large_string())
    return pc.dictionary_encode(pc.take(labels, pa.array(np.asarray(codes, np.int64)))).to_pandas()


def synthetic_fills(n: int, seed: int = 7) -> tuple[pd.DataFrame, dict[str, float]]:
    """n fills over 50 assets and the current marks (BTC and ETH get their own walk)."""
    rng = np.random.default_rng(seed)
    assets = np.array(["BTC", "ETH", "BNB"] + [f"C{i:02d}" for i in range(47)])
    start_price = np.exp(rng.uniform(np.log(0.01), np.log(60_000), len(assets)))
    start_price[:3] = (40_000, 2_500, 300)
    ts = np.sort(rng.integers(START_MS, START_MS + YEAR_MS, n))
    hours = start_price * np.cumprod(1 + rng.normal(0, 0.005, (24 * 365, len(assets))), axis=0)  # hourly walk
    hour = (ts - START_MS) // 3_600_000
    btc, eth, bnb = (hours[hour, i] for i in range(3))
    base = rng.integers(0, len(assets), n)
    quote_pick = rng.choice(4, n, p=[0.6, 0.1, 0.2, 0.1])  # USDT, USDC, BTC, ETH
    quote_pick[(quote_pick == 2) & (base == 0)] = 0
    quote_pick[(quote_pick == 3) & (base == 1)] = 0
    quotes = ["USDT", "USDC", "BTC", "ETH"]
    quote_usd = np.where(quote_pick == 2, btc, np.where(quote_pick == 3, eth, 1.0))
    base_usd = hours[hour, base]
    amount = np.round(rng.lognormal(0, 1, n) * 1000 / base_usd, 8) + 1e-8
    price = base_usd / quote_usd
    cost = amount * price
    sell = rng.random(n) >= 0.55
    fee_pick = rng.choice(3, n, p=[0.4, 0.3, 0.3])  # quote, base, BNB
    fee_code = np.where(fee_pick == 0, len(assets) + quote_pick, np.where(fee_pick == 1, base, 2))  # 2: BNB
    fee_cost = np.where(fee_pick == 0, cost * 0.001, np.where(fee_pick == 1, amount * 0.001, 1000 * 0.00075 / bnb))
    fee_usd = np.where(fee_pick == 0, quote_usd, np.where(fee_pick == 1, base_usd, bnb))
    connector = rng.integers(1, 5, n)
    fills = pd.DataFrame(
        {
            "connector_id": connector,
            "client_id": (connector + 1) // 2,
            "trade_id": _text(pc.cast(pa.array(np.arange(n)), pa.large_string())),
            "timestamp": ts,
            "symbol": _coded(base * 4 + quote_pick, [f"{a}/{q}" for a in assets for q in quotes]),
            "base": _coded(base, assets),
            "quote": _coded(quote_pick, quotes),
            "side": _coded(sell.astype(np.int64), ["buy", "sell"]),
            "amount": amount,
            "price": price,
            "cost": cost,
            "fee_cost": fee_cost,
            "fee_currency": _coded(fee_code, [*assets, *quotes]),
            "quote_usd": quote_usd,
            "fee_usd": fee_usd,
        }
    )
    return fills, dict(zip(assets.tolist(), hours[-1].tolist(), strict=True))


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def rss_now_mib() -> float:
    """Resident memory now (not the high-water mark): what the engine starts from."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def reset_peak_rss() -> None:
    """Set the peak RSS back to what is resident now (Linux's clear_refs; elsewhere it stays), so that
    the engine's peak is not hidden under the generator's temporaries, which peak higher than the
    frame they leave behind."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def release_freed_memory() -> None:
    """Hand the pages freed since the inputs were made back to the system, so that the engine starts
    from what is really held (imports and the input frame). Without this, the generator's freed
    temporaries (~130 MB at a million fills, kept by glibc's heap and Arrow's pool) stay resident:
    ``rss_mib_before_engine`` overstates the input, and the engine reuses those pages unseen, which
    understates ``engine_rss_mib`` by as much (it read 145 MB for an engine that needs ~260 MB)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    pa.default_memory_pool().release_unused()


def run_case(n: int, method: str, order: str) -> dict:
    fills, marks = synthetic_fills(n)
    if order == "shuffled":
        fills = fills.sample(frac=1, random_state=1).reset_index(drop=True)
    extra = {}
    if order == "resume":  # lib.pnl.state: all but one fill, then one fill later than all continues it
        history, new = fills.iloc[:-1], fills.iloc[-1:].assign(timestamp=int(fills["timestamp"].max()) + 1)
        began = time.perf_counter()
        _, state = pnl_state.start(history, marks=marks, method=method)
        extra["start_seconds"] = round(time.perf_counter() - began, 3)
    rss_inputs = peak_rss_mib()
    release_freed_memory()
    reset_peak_rss()
    rss_before = rss_now_mib()
    began, began_cpu = time.perf_counter(), time.process_time()
    if order == "resume":
        result, state = pnl_state.resume(state, new, marks)
    else:
        result = compute_pnl(fills, marks=marks, method=method)
    seconds, cpu = time.perf_counter() - began, time.process_time() - began_cpu
    peak = peak_rss_mib()
    if order == "resume":  # then one fill at a time as a sync brings them, sells and buys in turn
        later = []
        for step in range(20):
            one = new.assign(timestamp=int(new["timestamp"].iloc[0]) + 1 + step, trade_id=f"later-{step}",
                             side="sell" if step % 2 == 0 else "buy")
            began = time.perf_counter()
            _, state = pnl_state.resume(state, one, marks)
            later.append(time.perf_counter() - began)
        extra["next_seconds_median"] = round(float(np.median(later)), 4)
        extra["next_seconds_max"] = round(max(later), 4)
    return {
        "fills": n,
        "method": method,
        "order": order,
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu, 3),
        "peak_rss_mib": round(peak, 1),
        "peak_rss_mib_after_inputs": round(rss_inputs, 1),
        "rss_mib_before_engine": round(rss_before, 1),
        "engine_rss_mib": round(peak - rss_before, 1),  # peak minus what was resident at the call
        "disposals": len(result.disposals),
        "assets": len(result.per_asset),
        "realized_usd": round(result.totals.realized, 2),
        "unmatched_assets": len(result.unmatched),
        **extra,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", nargs=3, metavar=("FILLS", "METHOD", "ORDER"), help="run one case in this process")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(int(args.case[0]), args.case[1], args.case[2])))
        return
    cases = []
    for n, method, order in CASES:
        command = [sys.executable, __file__, "--case", str(n), method, order]
        cases.append(json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout))
    print(
        json.dumps(
            {
                "benchmark": "lib.pnl.compute_pnl",
                "cpus": os.cpu_count(),
                "load_average": os.getloadavg(),
                "cases": cases,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
