"""``python -m lib.simulator``: run the exchange simulator in the foreground.

Prints where it listens and where loopback clients find the credentials; never the
credentials themselves.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from datetime import UTC, datetime

from lib.simulator.accounts import SimulatorConfig
from lib.simulator.faults import FAULT_KINDS
from lib.simulator.server import Simulator


def _anchor_ms(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC).timestamp() * 1000)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lib.simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--accounts", type=int, default=3)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--fills-per-account", type=int, default=500)
    parser.add_argument("--open-orders", type=int, default=None,
                        help="resting orders per account (default: 2 to 5); over 100 makes OKX page them")
    parser.add_argument("--positions", action="store_true",
                        help="OKX accounts also hold perpetual positions (the demo)")
    parser.add_argument("--scenarios", action="store_true",
                        help="histories also hold the hard cases (quiet gap, same-ms bursts, fills on UTC "
                             "midnights, a token that comes and goes, canceled orders, a funding balance); "
                             "needs --days 40 or more")
    parser.add_argument("--anchor", type=_anchor_ms, default=None,
                        help="UTC date (YYYY-MM-DD) the histories end at; default: today 00:00 UTC")
    parser.add_argument("--dialects", default="", help="comma-separated cycle, e.g. binance,okx,okx")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--fault-rate", type=float, default=0.0, help=f"0..1, picks among {', '.join(FAULT_KINDS)}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    config = SimulatorConfig(
        seed=args.seed, accounts=args.accounts, days=args.days, fills_per_account=args.fills_per_account,
        latency_ms=args.latency_ms, fault_rate=args.fault_rate, anchor_ms=args.anchor, open_orders=args.open_orders,
        positions=args.positions, scenarios=args.scenarios,
        dialects=[d.strip() for d in args.dialects.split(",") if d.strip()] or None,
    )
    simulator = Simulator(config)

    def announce(url: str) -> None:
        served = ", ".join(f"/{d}" for d in dict.fromkeys(a.dialect for a in simulator.accounts))
        print(f"exchange simulator listening on {url} (dialects under {served}); "
              f"credentials: GET {url}/_sim/accounts from loopback", flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(simulator.serve(args.host, args.port, ready=announce))


if __name__ == "__main__":
    main()
