"""Clients and connectors: valid input is stored encrypted; bad input changes nothing."""

from __future__ import annotations

import secrets
import socket
from collections import Counter
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from lib import clients, connectors
from lib.access import SYSTEM, Role, Viewer
from lib.db import session_scope
from lib.models import AuditEvent, Client, Connector
from lib.simulator import Simulator, SimulatorConfig
from lib.simulator.accounts import SimAccount
from lib.validation import ValidationError
from lib.vault import load_vault
from tests.helpers import database_contents


def _binance_input(label: str = "main", **overrides) -> connectors.ConnectorInput:
    values = {"exchange_id": "binance", "label": label,
              "credentials": {"apiKey": "key" + secrets.token_hex(8), "secret": secrets.token_hex(16)}}
    values.update(overrides)
    return connectors.ConnectorInput(**values)


@pytest.fixture
def client_id(database_url) -> int:
    with session_scope() as session:
        return clients.create_client(session, SYSTEM, "Sharp Foundation").id


def test_connector_is_stored_encrypted_with_masked_key(database_url, client_id):
    data = _binance_input()
    with session_scope() as session:
        connector = connectors.create_connector(session, SYSTEM, load_vault(), client_id, data)
        connector_id = connector.id
    with session_scope() as session:
        stored = session.get(Connector, connector_id)
        assert data.credentials["secret"].encode() not in stored.credentials_ciphertext
        assert load_vault().decrypt(stored.credentials_ciphertext) == dict(data.credentials)
        assert connectors.masked_key(stored) == "…" + data.credentials["apiKey"][-4:]
        actions = session.scalars(select(AuditEvent.action)).all()
    assert "credentials.added" in actions


BAD_CONNECTORS = {
    "empty label": dict(label="   "),
    "long label": dict(label="x" * 101),
    "unknown exchange": dict(exchange_id="notanexchange"),
    "delisted exchange": dict(exchange_id="mtgox"),
    "empty exchange": dict(exchange_id=""),
    "missing secret": dict(credentials={"apiKey": "abcdefgh"}),
    "blank key": dict(credentials={"apiKey": "   ", "secret": "abcdef"}),
    "secret with spaces": dict(credentials={"apiKey": "abcdefgh", "secret": "ab cd"}),
    "ftp url": dict(api_url="ftp://example.com"),
    "url without host": dict(api_url="https://"),
    "javascript url": dict(api_url="javascript:alert(1)"),
    "url with credentials": dict(api_url="https://user:hunter2@gw.example.com"),
    "okx without passphrase": dict(exchange_id="okx"),
}


@pytest.mark.parametrize("case", BAD_CONNECTORS)
def test_bad_connector_input_changes_nothing(database_url, client_id, case):
    before = database_contents(database_url)
    with pytest.raises(ValidationError) as caught, session_scope() as session:
        connectors.create_connector(session, SYSTEM, load_vault(), client_id, _binance_input(**BAD_CONNECTORS[case]))
    assert str(caught.value)
    assert database_contents(database_url) == before


def test_unknown_exchange_message_says_not_supported(database_url, client_id):
    with pytest.raises(ValidationError, match="not supported by the installed ccxt"), session_scope() as session:
        connectors.create_connector(session, SYSTEM, load_vault(), client_id, _binance_input(exchange_id="mtgox"))


def test_duplicate_label_is_refused_and_changes_nothing(database_url, client_id):
    with session_scope() as session:
        connectors.create_connector(session, SYSTEM, load_vault(), client_id, _binance_input("desk"))
    before = database_contents(database_url)
    with pytest.raises(ValidationError, match="already has"), session_scope() as session:
        connectors.create_connector(session, SYSTEM, load_vault(), client_id, _binance_input("desk"))
    assert database_contents(database_url) == before


@pytest.mark.parametrize("name", ["", "   ", "x" * 500, "tab\tinside"])
def test_bad_client_names_change_nothing(database_url, name):
    before = database_contents(database_url)
    with pytest.raises(ValidationError), session_scope() as session:
        clients.create_client(session, SYSTEM, name)
    assert database_contents(database_url) == before


def test_duplicate_client_name_is_refused(database_url, client_id):
    before = database_contents(database_url)
    with pytest.raises(ValidationError, match="already exists"), session_scope() as session:
        clients.create_client(session, SYSTEM, "  Sharp Foundation ")
    assert database_contents(database_url) == before


@pytest.mark.parametrize(("first", "second"), [("École Fund", "ÉCOLE FUND"), ("Straße", "STRASSE"),
                                               ("Cafe\u0301", "CAFÉ")])
def test_client_names_and_labels_are_unique_ignoring_unicode_case(database_url, first, second):
    """SQLite's lower() folds ASCII only: the check must not depend on the database."""
    with session_scope() as session:
        client = clients.create_client(session, SYSTEM, first)
        connectors.create_connector(session, SYSTEM, load_vault(), client.id, _binance_input(first))
        client_id = client.id
    before = database_contents(database_url)
    with pytest.raises(ValidationError, match="already exists"), session_scope() as session:
        clients.create_client(session, SYSTEM, second)
    with pytest.raises(ValidationError, match="already has"), session_scope() as session:
        connectors.create_connector(session, SYSTEM, load_vault(), client_id, _binance_input(second))
    assert database_contents(database_url) == before
    with session_scope() as session:
        assert clients.find_client(session, second).id == client_id


def test_names_that_collide_from_before_are_told_apart_or_refused(database_url):
    """Rows created before names were compared ignoring case: an exact name still finds its
    own client; a lookup that cannot tell them apart refuses rather than guess."""
    with session_scope() as session:
        session.add_all([Client(name="École"), Client(name="ÉCOLE")])
    with session_scope() as session:
        assert clients.find_client(session, "ÉCOLE").name == "ÉCOLE"
        assert clients.find_client(session, " École ").name == "École"
        with pytest.raises(ValidationError, match="No client named"):
            clients.find_client(session, "école")
        with pytest.raises(ValidationError, match="already exists"):
            clients.create_client(session, SYSTEM, "ecole".replace("e", "é", 1))


def test_unicode_names_are_stored_and_read_back(database_url):
    name = "Fondation Ünïcödé 株式会社 🚀"
    with session_scope() as session:
        client = clients.create_client(session, SYSTEM, name)
        connectors.create_connector(session, SYSTEM, load_vault(), client.id, _binance_input("desk ✓"))
    with session_scope() as session:
        stored = session.scalar(select(Client).where(Client.name == name))
        assert stored is not None and stored.connectors[0].label == "desk ✓"


def test_rename_and_delete_client_cascades(database_url, client_id):
    with session_scope() as session:
        connector_id = connectors.create_connector(session, SYSTEM, load_vault(), client_id, _binance_input()).id
        clients.rename_client(session, SYSTEM, client_id, "Sharp Labs")
    with session_scope() as session:
        assert session.get(Client, client_id).name == "Sharp Labs"
        clients.delete_client(session, SYSTEM, client_id)
    with session_scope() as session:
        assert session.scalars(select(Connector)).all() == []
        removed = session.execute(select(AuditEvent.target, AuditEvent.detail).where(
            AuditEvent.action == "credentials.removed")).all()
    assert removed == [(f"Sharp Labs / binance / main (#{connector_id})", "client deleted")]


def test_only_admins_change_keys(database_url, client_id):
    analyst = Viewer("ann", Role.ANALYST)
    before = database_contents(database_url)
    with pytest.raises(PermissionError), session_scope() as session:
        connectors.create_connector(session, analyst, load_vault(), client_id, _binance_input())
    with pytest.raises(PermissionError), session_scope() as session:
        clients.create_client(session, analyst, "Other")
    assert database_contents(database_url) == before


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(SimulatorConfig(seed=13, accounts=1, days=3, fills_per_account=5, dialects=["binance"])) as sim:
        yield sim


@pytest.fixture
def account(sim: Simulator) -> Iterator[SimAccount]:
    """The simulator's Binance account; the faults a test sets end with it."""
    yield sim.accounts[0]
    sim.faults.clear()


def _count_faults(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """The simulator's answers by fault kind ("none": a normal answer), so a test knows its fault happened."""
    answered: Counter[str] = Counter()
    decide = sim.faults.decide

    def counted(account_id: str | None, path: str):  # noqa: ANN202 - the simulator's Decision
        decision = decide(account_id, path)
        answered[decision.kind or "none"] += 1
        return decision

    monkeypatch.setattr(sim.faults, "decide", counted)
    return answered


def _sim_input(account: SimAccount, **credentials: str) -> connectors.ConnectorInput:
    return connectors.ConnectorInput("binance", "main", {**account.credentials(), **credentials}, account.api_url)


def test_the_key_test_retries_a_transient_error_then_succeeds(account, sim, monkeypatch):
    answered = _count_faults(sim, monkeypatch)
    sim.faults.set(rate=1.0, kinds=("5xx",), path="/api/v3/account", times=1)
    result = connectors.check_input(_sim_input(account))
    assert result.ok, result.message
    assert answered["5xx"] == 1


def test_a_key_test_still_rate_limited_says_it_failed_and_to_try_again(account, sim, monkeypatch):
    answered = _count_faults(sim, monkeypatch)
    sim.faults.set(rate=1.0, kinds=("429",), path="/api/v3/account")
    result = connectors.check_input(_sim_input(account))
    assert not result.ok
    assert answered["429"] == connectors.TEST_ATTEMPTS
    assert result.message == ("The exchange is rate-limiting requests. "
                              f"The test tried {connectors.TEST_ATTEMPTS} times; try again in a few minutes.")


def test_a_key_test_where_nothing_answers_names_the_api_url_to_check(account, monkeypatch):
    monkeypatch.setattr(connectors, "TEST_BASE_DELAY", 0.01)
    with socket.socket() as probe:  # a port nothing listens on: the connection is refused
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    result = connectors.check_input(connectors.ConnectorInput("binance", "main", account.credentials(), closed))
    assert not result.ok
    assert f"Nothing answered at the API URL {closed}: check it" in result.message
    assert account.secret not in result.message


def test_a_key_test_answered_with_errors_does_not_blame_the_api_url(account, sim, monkeypatch):
    _count_faults(sim, monkeypatch)
    monkeypatch.setattr(connectors, "TEST_BASE_DELAY", 0.01)
    sim.faults.set(rate=1.0, kinds=("5xx",), path="/api/v3/account")
    result = connectors.check_input(_sim_input(account))
    assert not result.ok and "Nothing answered" not in result.message


def test_replace_credentials_tests_the_new_key_then_stores_it(database_url, client_id, account):
    with session_scope() as session:
        connector_id = connectors.create_connector(session, SYSTEM, load_vault(), client_id, connectors.ConnectorInput(
            "binance", "main", {"apiKey": "old" + secrets.token_hex(6), "secret": secrets.token_hex(12)},
            account.api_url)).id
    with session_scope() as session:
        connectors.replace_credentials(session, SYSTEM, load_vault(), connector_id, account.credentials())
        connectors.update_connector(session, SYSTEM, connector_id, label="renamed", enabled=False)
    with session_scope() as session:
        stored = session.get(Connector, connector_id)
        assert load_vault().decrypt(stored.credentials_ciphertext) == account.credentials()
        assert (stored.label, stored.enabled, stored.key_hint) == ("renamed", False, account.api_key[-4:])


@pytest.mark.parametrize("fault", [None, "5xx"])
def test_replace_credentials_keeps_the_old_key_when_the_new_one_fails_its_test(database_url, client_id, account, sim,
                                                                                fault):
    """A refused key, or an exchange still failing after the test's retries: nothing changes."""
    with session_scope() as session:
        connector_id = connectors.create_connector(session, SYSTEM, load_vault(), client_id, _sim_input(account)).id
    new = {"apiKey": account.api_key, "secret": "wrong" + secrets.token_hex(8)}
    if fault:
        new["secret"] = account.secret
        sim.faults.set(rate=1.0, kinds=(fault,), path="/api/v3/account")
    before = database_contents(database_url)
    with pytest.raises(ValidationError, match="Connection test failed: .* The old credentials were kept."), \
            session_scope() as session:
        connectors.replace_credentials(session, SYSTEM, load_vault(), connector_id, new)
    assert database_contents(database_url) == before
    with session_scope() as session:
        stored = session.get(Connector, connector_id)
        assert load_vault().decrypt(stored.credentials_ciphertext) == account.credentials()


BAD_UPDATES = {
    "empty label": lambda s, cid: connectors.update_connector(s, SYSTEM, cid, label=" "),
    "long label": lambda s, cid: connectors.update_connector(s, SYSTEM, cid, label="x" * 101),
    "label of the other connector": lambda s, cid: connectors.update_connector(s, SYSTEM, cid, label="OTHER"),
    "symbol without slash": lambda s, cid: connectors.update_connector(s, SYSTEM, cid, extra_symbols="ETHBTC"),
    "credentials missing the secret": lambda s, cid: connectors.replace_credentials(
        s, SYSTEM, load_vault(), cid, {"apiKey": "abcdefgh"}),
    "new url with credentials in it": lambda s, cid: connectors.replace_credentials(
        s, SYSTEM, load_vault(), cid, {"apiKey": "abcdefgh", "secret": "abcdef"}, "https://u:p@gw.example.com"),
    "over-long url": lambda s, cid: connectors.replace_credentials(
        s, SYSTEM, load_vault(), cid, {"apiKey": "abcdefgh", "secret": "abcdef"},
        "https://gw.example.com/" + "x" * 500),
    "over-long secret": lambda s, cid: connectors.replace_credentials(
        s, SYSTEM, load_vault(), cid, {"apiKey": "abcdefgh", "secret": "x" * 4097}),
}


@pytest.mark.parametrize("case", BAD_UPDATES)
def test_bad_updates_change_nothing(database_url, client_id, case):
    with session_scope() as session:
        connector_id = connectors.create_connector(session, SYSTEM, load_vault(), client_id, _binance_input()).id
        connectors.create_connector(session, SYSTEM, load_vault(), client_id, _binance_input("other"))
    before = database_contents(database_url)
    with pytest.raises(ValidationError), session_scope() as session:
        BAD_UPDATES[case](session, connector_id)
    assert database_contents(database_url) == before


def test_an_unchanged_label_writes_no_audit_event(database_url, client_id):
    with session_scope() as session:
        connector_id = connectors.create_connector(session, SYSTEM, load_vault(), client_id, _binance_input()).id
    before = database_contents(database_url)
    with session_scope() as session:
        connectors.update_connector(session, SYSTEM, connector_id, label=" main ", enabled=True, extra_symbols="")
    assert database_contents(database_url) == before


def test_rotate_all_and_undecryptable_rows_are_named(database_url, client_id, monkeypatch):
    from cryptography.fernet import Fernet

    from lib.settings import get_settings
    from lib.vault import VaultError

    with session_scope() as session:
        connectors.create_connector(session, SYSTEM, load_vault(), client_id, _binance_input("a"))
    old = get_settings().encryption_keys[0]
    new = Fernet.generate_key().decode()
    monkeypatch.setenv("ENCRYPTION_KEYS", f"{new},{old}")
    get_settings.cache_clear()
    with session_scope() as session:
        assert connectors.rotate_all(session, SYSTEM, load_vault()) == 1
    monkeypatch.setenv("ENCRYPTION_KEYS", new)
    get_settings.cache_clear()
    with session_scope() as session:
        assert connectors.undecryptable(session, load_vault()) == []
    monkeypatch.setenv("ENCRYPTION_KEYS", Fernet.generate_key().decode())
    get_settings.cache_clear()
    before = database_contents(database_url)
    with pytest.raises(VaultError, match="#1 a"), session_scope() as session:
        connectors.rotate_all(session, SYSTEM, load_vault())
    assert database_contents(database_url) == before


def test_the_same_api_key_cannot_be_stored_twice(database_url, client_id):
    data = _binance_input("desk")
    with session_scope() as session:
        other = clients.create_client(session, SYSTEM, "Other client")
        connectors.create_connector(session, SYSTEM, load_vault(), client_id, data)
        other_id = other.id
    before = database_contents(database_url)
    with pytest.raises(ValidationError, match="already stored as Sharp Foundation / binance / desk"), \
            session_scope() as session:
        connectors.create_connector(session, SYSTEM, load_vault(), other_id, _binance_input("main", credentials={
            "apiKey": data.credentials["apiKey"], "secret": secrets.token_hex(16)}))
    assert database_contents(database_url) == before
    with session_scope() as session:  # the same key on another exchange is another account
        connectors.create_connector(session, SYSTEM, load_vault(), other_id, _binance_input(
            "main", exchange_id="kraken", credentials=dict(data.credentials)))
