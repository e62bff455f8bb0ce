"""Command line on the same lib code as the pages: ``python -m lib.cli --help``.

Each module of this package adds its commands with ``register(subparsers)``; errors are
one clear line on stderr and a non-zero exit code, never a traceback or a secret. Bad
input (an empty name, an id no column can hold, nan seconds, port 99999, a database
without tables) is refused before anything is written.
"""

from __future__ import annotations

import argparse
import importlib
import math
import pkgutil
import re
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from sqlalchemy.exc import SQLAlchemyError

from lib.db import DatabaseNotReady, describe_failure
from lib.exchanges import UnsupportedExchange
from lib.settings import MAX_INTERVAL_SECONDS, SettingsError, configure_logging, get_settings
from lib.validation import ValidationError
from lib.vault import VaultError

#: ids are INTEGER columns: a larger number names no row (and PostgreSQL refuses to compare with it)
MAX_ID = 2**31 - 1


class CommandError(RuntimeError):
    """A failure to report as one line on stderr.

    Raised by the argument types below too: argparse turns only ``ArgumentTypeError``,
    ``TypeError`` and ``ValueError`` from a type into its usage message
    (https://docs.python.org/3/library/argparse.html#type), so this sentence reaches
    stderr as written.
    """


class OneLineParser(argparse.ArgumentParser):
    """argparse's own errors (a missing argument, an unknown choice) as one line too."""

    def error(self, message: str) -> NoReturn:
        raise CommandError(f"{message} (see {self.prog} --help)")


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "…")


def record_id(kind: str) -> Callable[[str], int]:
    """An argument type for the id of a ``kind`` (connector, ...): a whole number a row can have."""
    def parse(text: str) -> int:
        if not re.fullmatch(r"\s*[+-]?[0-9]+\s*", text):
            raise CommandError(f"A {kind} id is a whole number, not {_shown(text)}.")
        value = int(text)
        if not 1 <= value <= MAX_ID:
            raise CommandError(f"No {kind} with id {value}.")
        return value
    return parse


def given(option: str, what: str) -> Callable[[str], str]:
    """An argument type for a value that must not be empty (``--client ""`` must not mean "all")."""
    def parse(text: str) -> str:
        if not text.strip():
            raise CommandError(f"{option} needs {what}; it was empty.")
        return text
    return parse


def interval_seconds(text: str) -> float:
    """Seconds between worker runs: a finite number from 1 to a day (nan would spin, inf overflow)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 1 <= value <= MAX_INTERVAL_SECONDS):
        raise CommandError(f"--interval must be a positive number of seconds from 1 to {MAX_INTERVAL_SECONDS}, "
                           f"not {_shown(text)}.")
    return value


def port_number(text: str) -> int:
    if not re.fullmatch(r"\s*[0-9]{1,5}\s*", text) or not 1 <= int(text) <= 65_535:
        raise CommandError(f"--port must be a whole number from 1 to 65535, not {_shown(text)}.")
    return int(text)


def _check_text(position: int, text: str) -> None:
    """Bytes that are not UTF-8 reach Python as lone surrogates (PEP 383), which no database
    can store: refuse them before anything is written."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise CommandError(f"Argument {position} is not valid UTF-8 text.") from None


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m lib.cli", description=__doc__.splitlines()[0])
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
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        for position, text in enumerate(argv, start=1):
            _check_text(position, text)
        args = build_parser().parse_args(argv)
        return int(args.handler(args) or 0)
    except (CommandError, ValidationError, PermissionError, VaultError, UnsupportedExchange,
            DatabaseNotReady) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - one line; the message may quote a secret
        database = _database_cause(error)
        if database is not None:  # unreachable or unmigrated: say which, not the driver's text
            print(f"error: {describe_failure(database)}", file=sys.stderr)
            return 2
        print(f"error: unexpected {type(error).__name__}", file=sys.stderr)
        return 1


def _database_cause(error: BaseException | None) -> SQLAlchemyError | None:
    """The database error behind ``error``, also where a library wrapped it (pandas' read_sql
    raises its own DatabaseError from it)."""
    while error is not None and not isinstance(error, SQLAlchemyError):
        error = error.__cause__
    return error
