"""Look-alike names (UTS #39 skeletons): a new client name, connector label or username that
reads like an existing one is refused, naming it; names that already look alike keep working."""

from __future__ import annotations

import secrets
import unicodedata

import pytest
from sqlalchemy import select

from lib import clients, connectors, users
from lib.access import SYSTEM, Role
from lib.cli import main as cli
from lib.db import session_scope
from lib.models import Client, Connector, User
from lib.validation import ValidationError, _prototypes, look_alikes, skeleton
from lib.vault import load_vault
from tests.helpers import database_contents

PASSWORD = "correct horse battery"  # a test fixture, not a credential

#: (existing, new look-alike): Cyrillic А; capital I for l; Cyrillic capitals spelling a Latin
#: name in another case; a Cyrillic small а against capitals; Greek α; m for rn
LOOK_ALIKES = [
    ("Acme", "\u0410cme"),
    ("paypal", "paypaI"),
    ("Acme", "\u0410\u0421\u041c\u0415"),
    ("ACME", "\u0430cme"),
    ("Sharp", "Sh\u03b1rp"),
    ("Modern", "Modem"),
]


def _input(label: str, exchange_id: str = "binance") -> connectors.ConnectorInput:
    credentials = {"apiKey": "key" + secrets.token_hex(8), "secret": secrets.token_hex(16)}
    if exchange_id == "okx":
        credentials["password"] = secrets.token_hex(8)
    return connectors.ConnectorInput(exchange_id=exchange_id, label=label, credentials=credentials)


def test_skeleton_is_the_uts39_mapping() -> None:
    """The table rebuilt from confusable_homoglyphs maps sources to prototypes, not back:
    a prototype is never a source (a skeleton of a skeleton is itself)."""
    table = _prototypes()
    assert table["\u0410"] == "A" and table["I"] == "l" and table["m"] == "rn" and table["0"] == "O"
    assert "A" not in table and "l" not in table
    # a prototype with a single source: U+05AD HEBREW ACCENT DEHI -> U+0596 HEBREW ACCENT TIPEHA
    assert table["\u05ad"] == "\u0596" and "\u0596" not in table
    # right-to-left characters are stored between U+200E marks: HEBREW PUNCTUATION PASEQ -> l
    assert table["\u05c0"] == "l"
    assert not [ch for target in table.values() for ch in target if ch in table]
    for name in ("paypaI", "\u0410cme", "ﬁnance", "Straße"):
        assert skeleton(skeleton(name)) == skeleton(name)
    assert skeleton("\u0410cme") == skeleton("Acme") != skeleton("Acme 2")
    assert skeleton("Cafe\u0301") == skeleton("Café")  # NFD on both sides


@pytest.mark.parametrize(("existing", "new"), LOOK_ALIKES)
def test_look_alikes_are_found_and_different_names_are_not(existing: str, new: str) -> None:
    assert unicodedata.normalize("NFKC", new).casefold() != existing.casefold()
    assert look_alikes([existing], new, str) == [existing]
    assert look_alikes([new], existing, str) == [new]
    for other in (existing + " 2", existing + "s", "The " + existing):
        assert look_alikes([existing], other, str) == []


def test_only_like_for_like_forms_are_compared() -> None:
    """'Ian' reads like 'lan' (capital I, small L) but not like 'Lan'; the same name in
    another case is a duplicate, not a look-alike."""
    assert look_alikes(["lan", "Lan", "IAN"], "Ian", str) == ["lan"]


@pytest.mark.parametrize(("existing", "new"), LOOK_ALIKES)
def test_look_alike_client_names_are_refused(database_url: str, existing: str, new: str) -> None:
    with session_scope() as session:
        clients.create_client(session, SYSTEM, existing)
        other_id = clients.create_client(session, SYSTEM, "Other").id
    before = database_contents(database_url)
    with pytest.raises(ValidationError, match=f"looks like the existing client '{existing}'"), \
            session_scope() as session:
        clients.create_client(session, SYSTEM, new)
    with pytest.raises(ValidationError, match=f"looks like the existing client '{existing}'"), \
            session_scope() as session:
        clients.rename_client(session, SYSTEM, other_id, f"  {new} ")
    assert database_contents(database_url) == before
    with session_scope() as session:
        clients.create_client(session, SYSTEM, existing + " 2")
        assert clients.rename_client(session, SYSTEM, other_id, "Other Fund").name == "Other Fund"


def test_look_alike_labels_are_refused_per_client_and_exchange(database_url: str) -> None:
    vault = load_vault()
    with session_scope() as session:
        client_id = clients.create_client(session, SYSTEM, "Sharp").id
        other_client_id = clients.create_client(session, SYSTEM, "Northwind").id
        connectors.create_connector(session, SYSTEM, vault, client_id, _input("paypal"))
        second_id = connectors.create_connector(session, SYSTEM, vault, client_id, _input("desk")).id
    before = database_contents(database_url)
    message = "looks like this client's binance connector 'paypal'"
    with pytest.raises(ValidationError, match=message), session_scope() as session:
        connectors.create_connector(session, SYSTEM, vault, client_id, _input("paypaI"))
    with pytest.raises(ValidationError, match=message), session_scope() as session:
        connectors.update_connector(session, SYSTEM, second_id, label="paypaI")
    assert database_contents(database_url) == before
    with session_scope() as session:  # another exchange, another client, a different label
        connectors.create_connector(session, SYSTEM, vault, client_id, _input("paypaI", "okx"))
        connectors.create_connector(session, SYSTEM, vault, other_client_id, _input("paypaI"))
        connectors.update_connector(session, SYSTEM, second_id, label="paypal 2")
    with session_scope() as session:
        labels = sorted(session.scalars(select(Connector.label)))
    assert labels == ["paypaI", "paypaI", "paypal", "paypal 2"]


def test_look_alike_usernames_are_refused(database_url: str) -> None:
    with session_scope() as session:
        users.create_first_admin(session, "\u0430dmin", PASSWORD)  # Cyrillic а: the first takes it
    before = database_contents(database_url)
    with pytest.raises(ValidationError, match="looks like the existing user '\u0430dmin'"), \
            session_scope() as session:
        users.create_user(session, SYSTEM, "admin", Role.ADMIN, PASSWORD)
    assert database_contents(database_url) == before
    with session_scope() as session:
        users.create_user(session, SYSTEM, "admin2", Role.ANALYST, PASSWORD)


def test_cli_refuses_look_alikes_in_one_line(database_url: str, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHBOARD_PASSWORD", PASSWORD)
    assert cli(["client", "add", "Acme"]) == 0
    assert cli(["user", "add", "paypal", "--role", "analyst"]) == 0
    capsys.readouterr()
    before = database_contents(database_url)
    assert cli(["client", "add", "\u0410cme"]) == 2
    assert cli(["user", "add", "paypaI", "--role", "analyst"]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert database_contents(database_url) == before
    assert len(errors) == 2 and "looks like the existing client 'Acme'" in errors[0]
    assert "looks like the existing user 'paypal'" in errors[1]


def test_names_that_looked_alike_before_keep_working(database_url: str) -> None:
    """Rows stored before this check: exact lookups find each, and each keeps its own name
    when edited; only a new name or a rename is compared."""
    vault = load_vault()
    with session_scope() as session:
        session.add_all([Client(name="paypal"), Client(name="paypaI"),
                         User(username="paypal", role="analyst"), User(username="paypaI", role="analyst")])
    with session_scope() as session:
        ell, eye = clients.find_client(session, "paypal"), clients.find_client(session, "paypaI")
        assert (ell.name, eye.name) == ("paypal", "paypaI")
        assert clients.rename_client(session, SYSTEM, eye.id, "paypaI").name == "paypaI"
        assert users.find_user(session, "paypaI").username == "paypaI"
        assert users.find_user(session, "PAYPAL").username == "paypal"
        connectors.create_connector(session, SYSTEM, vault, ell.id, _input("main"))
        connector = connectors.create_connector(session, SYSTEM, vault, ell.id, _input("desk"))
        connector.label = "rnain"  # looks like "main": stored before the check existed
        connector_id, eye_id = connector.id, eye.id
    with session_scope() as session:
        updated = connectors.update_connector(session, SYSTEM, connector_id, label="rnain", enabled=False)
        assert (updated.label, updated.enabled) == ("rnain", False)
    before = database_contents(database_url)
    with pytest.raises(ValidationError, match="looks like the existing client 'paypal'"), \
            session_scope() as session:
        clients.rename_client(session, SYSTEM, eye_id, "paypa1")
    assert database_contents(database_url) == before
