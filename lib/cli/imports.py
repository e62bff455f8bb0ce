"""``import fills|transfers --connector ID FILE [--json]``: history the exchange no longer serves.

The file is checked row by row (lib.imports) before anything is written; a bad row is one
``error: Line N, column C: ...`` line and exit 2, and nothing of the file is stored. The
import and its audit event are recorded as the CLI's ``system`` admin.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lib import imports
from lib.access import SYSTEM
from lib.cli import CommandError, record_id
from lib.db import session_scope


def register(subparsers: argparse._SubParsersAction) -> None:
    command = subparsers.add_parser("import", help="import a CSV of fills or deposits/withdrawals for a connector")
    command.add_argument("kind", choices=imports.KINDS)
    command.add_argument("--connector", required=True, type=record_id("connector"))
    command.add_argument("file", help="the CSV file (format: README, 'Importing history')")
    command.add_argument("--json", action="store_true")
    command.set_defaults(handler=_import)


def _read(path: Path) -> bytes:
    """The file's bytes, read no further than the import limit (a device or a huge file is refused)."""
    try:
        if not path.is_file():
            raise CommandError(f"{path.name or path}: {'not a file' if path.exists() else 'no such file'}.")
        with path.open("rb") as handle:
            return handle.read(imports.MAX_BYTES + 1)
    except OSError as error:
        raise CommandError(f"{path.name or path}: cannot be read ({error.strerror or type(error).__name__}).") from None


def _import(args: argparse.Namespace) -> int:
    path = Path(args.file)
    data = _read(path)
    with session_scope() as session:
        result = imports.import_file(session, SYSTEM, args.connector, args.kind, path.name, data, via="cli")
    if args.json:
        print(json.dumps({"import_id": result.import_id, "connector_id": args.connector, "kind": result.kind,
                          "rows": result.rows, "new_rows": result.new_rows,
                          "first_timestamp": result.first_timestamp, "last_timestamp": result.last_timestamp,
                          "previous_import_id": result.previous_id}))
    else:
        print(result.message())
    return 0
