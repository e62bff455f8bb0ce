"""Command line on the same lib code as the pages: ``python -m lib.cli --help``.

Each module of this package adds its commands with ``register(subparsers)``; errors are
one clear line on stderr and a non-zero exit code, never a traceback or a secret.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from lib.exchanges import UnsupportedExchange
from lib.settings import SettingsError, configure_logging, get_settings
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
    try:
        settings = get_settings()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, "%(asctime)s %(levelname)s %(name)s: %(message)s")
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
