"""The audit page words every action code that lib/ or pages/ writes (lib.ui.user_admin.AUDIT_ACTIONS).

The codes are found by reading the source, not listed here again: every ``audit.record(...)``
call and every ``AuditEvent(...)`` outside lib/audit.py. A code that cannot be read from the
source (a variable) fails the test, so no call escapes it.
"""

from __future__ import annotations

import ast
import itertools
from inspect import signature

import pytest

from lib import audit, db, imports
from lib.access import SYSTEM
from lib.settings import PROJECT_ROOT
from lib.ui import user_admin
from lib.ui.format import csv_bytes

#: The values a name inside an f-string action code takes (f"history.imported.{kind}").
PLACEHOLDERS: dict[str, tuple[str, ...]] = {"kind": imports.KINDS}
ACTION_INDEX = list(signature(audit.record).parameters).index("action")


def _action_node(call: ast.Call) -> ast.expr | None:
    keyword = next((k.value for k in call.keywords if k.arg == "action"), None)
    if keyword is not None:
        return keyword
    return call.args[ACTION_INDEX] if len(call.args) > ACTION_INDEX else None


def _is_record(call: ast.Call, imported_record: bool) -> bool:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr == "record" and isinstance(func.value, ast.Name) and func.value.id == "audit"
    return imported_record and isinstance(func, ast.Name) and func.id == "record"


def _codes(node: ast.expr | None, where: str) -> list[str]:
    """Every code an action argument can be."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _codes(node.body, where) + _codes(node.orelse, where)
    if isinstance(node, ast.JoinedStr):
        parts: list[tuple[str, ...]] = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append((str(value.value),))
            elif (isinstance(value, ast.FormattedValue) and isinstance(value.value, ast.Name)
                  and value.value.id in PLACEHOLDERS and value.format_spec is None):
                parts.append(tuple(PLACEHOLDERS[value.value.id]))
            else:
                pytest.fail(f"{where}: add the values of {ast.unparse(value)} to PLACEHOLDERS")
        return ["".join(choice) for choice in itertools.product(*parts)]
    shown = "nothing" if node is None else ast.unparse(node)
    pytest.fail(f"{where}: the audit action {shown} is not a literal code; write it as one (or an f-string "
                "over PLACEHOLDERS) so the audit page can word it")


def recorded_codes() -> dict[str, str]:
    """Each action code written anywhere in lib/ and pages/, with one place that writes it."""
    found: dict[str, str] = {}
    for path in sorted([*(PROJECT_ROOT / "lib").rglob("*.py"), *(PROJECT_ROOT / "pages").rglob("*.py")]):
        relative = path.relative_to(PROJECT_ROOT).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=relative)
        imported_record = any(isinstance(n, ast.ImportFrom) and n.module == "lib.audit"
                              and any(a.name == "record" for a in n.names) for n in ast.walk(tree))
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
            where = f"{relative}:{call.lineno}"
            if _is_record(call, imported_record):
                node = _action_node(call)
            elif (isinstance(call.func, ast.Name) and call.func.id == "AuditEvent"
                  and relative != "lib/audit.py"):  # lib/audit.record's own AuditEvent takes its argument
                node = next((k.value for k in call.keywords if k.arg == "action"), None)
            else:
                continue
            for code in _codes(node, where):
                found.setdefault(code, where)
    return found


def test_the_scan_finds_the_calls() -> None:
    """Not vacuous: a plain call, one of two codes, and each code of an f-string are found."""
    codes = recorded_codes()
    assert {"user.clients_changed", "user.disabled", "user.enabled", "logout"} <= set(codes)
    assert {f"history.imported.{kind}" for kind in imports.KINDS} <= set(codes)
    assert len(codes) >= 20


def test_every_recorded_code_has_words() -> None:
    missing = {code: where for code, where in recorded_codes().items() if code not in user_admin.AUDIT_ACTIONS}
    assert not missing, f"add these to lib.ui.user_admin.AUDIT_ACTIONS: {missing}"


def test_words_are_plain_short_and_distinct() -> None:
    words = list(user_admin.AUDIT_ACTIONS.values())
    assert all(w and w == w.strip() and len(w) <= 40 and w[0].isupper() for w in words)
    assert len(set(words)) == len(words)  # two codes never read the same in the filter
    assert not set(words) & set(user_admin.AUDIT_ACTIONS)  # words never pass for a code


def test_unknown_codes_show_as_themselves_and_stay_text() -> None:
    assert user_admin.audit_action("user.clients_changed") == "Client access changed"
    assert user_admin.audit_action("report.exported") == "report.exported"  # a future code
    assert user_admin.audit_action("") == user_admin.NOTHING  # never blank
    assert user_admin.audit_action("x\u202eevil") == "x\\u202eevil"  # invisible characters written out


def test_table_words_and_csv_codes(sqlite_url: str) -> None:
    with db.session_scope() as session:
        audit.record(session, "ann", "user.clients_changed", "bob")
        audit.record(session, "ann", "old.code\u200b")
    frame = user_admin.audit_frame(SYSTEM, [], None, None, None)
    assert list(user_admin.audit_table(frame)["Action"]) == ["old.code\\u200b", "Client access changed"]
    assert list(frame.columns) == ["When", "Who", "Action", "Target", "Detail"]
    csv = csv_bytes(frame).decode()
    assert "user.clients_changed" in csv and "Client access changed" not in csv  # machines read the codes
    only = user_admin.audit_frame(SYSTEM, ["user.clients_changed"], None, None, None)
    assert list(only["Action"]) == ["user.clients_changed"]


def test_filter_options_are_ordered_by_their_words(sqlite_url: str) -> None:
    with db.session_scope() as session:
        for code in ("user.created", "login", "client.created"):
            audit.record(session, "ann", code)
    actions, _actors = user_admin.audit_filters(SYSTEM)
    assert [user_admin.audit_action(a) for a in actions] == ["Client added", "Logged in", "User added"]

