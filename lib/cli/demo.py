"""``demo``: load the demo clients from the local exchange simulator, or bring it back."""

from __future__ import annotations

import argparse
import sys

from lib.access import SYSTEM
from lib.cli import CommandError, port_number


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser("demo", help="load demo clients backed by the local exchange simulator")
    demo.add_argument("--port", type=port_number, default=None, help="simulator port (default 8900)")
    demo.add_argument("--resume", action="store_true",
                      help="only restart the simulator of a demo loaded earlier (used by `make run`)")
    demo.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from lib import demo  # imports the sync engine; keep the other commands light

    if args.resume:  # part of `make run`: a demo that cannot come back must not stop the dashboard
        try:
            if demo.resume():
                print("demo exchange simulator is running")
        except demo.DemoError as error:
            print(f"warning: {error} The demo connectors will show as unreachable.", file=sys.stderr)
        return 0
    try:
        result = demo.load_demo(SYSTEM, port=args.port)
    except demo.DemoError as error:
        raise CommandError(str(error)) from None
    report = result.report
    print(f"demo loaded: {', '.join(result.clients)} with {result.connectors} connector(s); "
          f"synced {report.successful}/{report.total}")
    return 0 if report.failed == 0 else 1
