"""``reports.disk_cached``: a value is kept on disk under the data version it was computed at, and
read back there; a value whose computing overlapped a write is returned but never kept, so no file
holds figures of another version than its key's."""

from __future__ import annotations

from pathlib import Path

from lib import reports
from lib.access import Role, Viewer
from lib.db import session_scope
from lib.models import Client
from lib.settings import get_settings

ADMIN = Viewer("admin-user", Role.ADMIN)


def _cached(compute: object) -> str:
    return reports.disk_cached("test-kind", ADMIN, None, None, [], "code", compute,  # type: ignore[arg-type]
                               lambda value: f'"{value}"', lambda text: text.strip('"'))


def _files() -> list[str]:
    return sorted(p.name for p in (get_settings().data_dir / "cache").glob("test-kind-*"))


def test_a_value_is_kept_at_its_version_and_read_back(database_url: str) -> None:
    computed: list[int] = []

    def compute() -> str:
        computed.append(1)
        return "figures"

    assert _cached(compute) == "figures" and _cached(compute) == "figures"
    assert len(computed) == 1 and len(_files()) == 1


def test_a_value_computed_across_a_write_is_not_kept(database_url: str) -> None:
    def compute_while_a_sync_writes() -> str:
        with session_scope() as session:
            session.add(Client(name="Written meanwhile"))
        return "mixed"

    assert _cached(compute_while_a_sync_writes) == "mixed"
    assert _files() == []
    assert _cached(lambda: "fresh") == "fresh"  # the version now: computed again, and kept
    assert len(_files()) == 1


def test_the_code_version_moves_with_any_module_of_the_package(tmp_path: Path) -> None:
    """Files on disk are keyed by every module of lib, so a change to a helper a figure calls (not
    only to the modules a list would name) makes them computed again."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.py").write_text("A = 1\n")
    (tmp_path / "sub" / "b.py").write_text("B = 1\n")
    first = reports.code_version(tmp_path)
    assert reports.code_version(tmp_path) == first
    (tmp_path / "sub" / "b.py").write_text("B = 2\n")
    second = reports.code_version(tmp_path)
    assert second != first
    (tmp_path / "c.py").write_text("")
    assert reports.code_version(tmp_path) != second
    assert reports.code_version(Path(reports.__file__).parent) == reports.CODE_VERSION
