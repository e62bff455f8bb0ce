"""Command line on the same lib code as the pages: ``python -m lib.cli --help``.

Each module of this package adds its commands with ``register(subparsers)``; errors are
one clear line on stderr and a non-zero exit code, never a traceback or a secret.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence

from lib.exchanges import UnsupportedExchange
from lib.settings import get_settings
from lib.validation import ValidationError
from lib.vault import VaultError


class CommandError(RuntimeError):
    """A failure to report as one line on stderr."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lib.cli", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module.name.startswith("_"):
            continue
        importlib.import_module(f"{__name__}.{module.name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=get_settings().log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # set before the commands import it
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (CommandError, ValidationError, PermissionError, VaultError, UnsupportedExchange) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - one line; the message may quote a secret
        print(f"error: unexpected {type(error).__name__}", file=sys.stderr)
        return 1
