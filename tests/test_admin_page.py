"""AppTest of the "Clients & keys" page: create, validate, list, edit, delete; no secret kept."""

from __future__ import annotations

import secrets

import pytest
from sqlalchemy import func, select, update
from streamlit.testing.v1 import AppTest

from lib.db import session_scope
from lib.models import AuditEvent, Client, Connector, User
from lib.settings import PROJECT_ROOT
from lib.ui import admin
from tests import table_cells
from tests.helpers import database_contents, session_state_dump

PAGE = str(PROJECT_ROOT / "pages/admin/clients.py")


def login(at: AppTest, role: str = "admin") -> AppTest:
    with session_scope() as session:
        user = User(username=f"{role}-{secrets.token_hex(3)}", role=role, password_hash=None)
        session.add(user)
        session.flush()
        at.session_state["auth_user_id"] = user.id
    return at


def widget(items, label: str):
    matches = [w for w in items if w.label == label]
    assert matches, f"no widget labelled {label!r}; have {[w.label for w in items]}"
    return matches[0]


def texts(at: AppTest) -> str:
    """Everything the page shows as text, to search for messages and leaks."""
    parts = [e.value for kind in ("error", "success", "warning", "info", "caption", "markdown", "title")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


@pytest.fixture
def page(database_url) -> AppTest:
    at = login(AppTest.from_file(PAGE, default_timeout=60))
    at.run()
    assert not at.exception
    return at


def create_client(at: AppTest, name: str) -> AppTest:
    widget(at.text_input, "New client name").input(name)
    widget(at.button, "Create client").click()
    return at.run()


def test_create_rename_delete_client(page):
    at = create_client(page, "Sharp Foundation")
    assert "Client 'Sharp Foundation' created." in texts(at)
    widget(at.text_input, "Rename to").input("Sharp Labs")
    widget(at.button, "Rename").click()
    at.run()
    with session_scope() as session:
        assert session.scalars(select(Client.name)).all() == ["Sharp Labs"]
    widget(at.checkbox, "Yes, delete 'Sharp Labs' with all its connectors and synced data").check()
    at.run()
    widget(at.button, "Delete client").click()
    at.run()
    with session_scope() as session:
        assert session.scalar(select(func.count(Client.id))) == 0


def test_blank_and_duplicate_client_names_show_errors(page, database_url):
    at = create_client(page, "Sharp Foundation")
    before = database_contents(database_url)
    for name in ("   ", "sharp foundation", "x" * 99 + "é" * 2):
        at = create_client(at, name)
        assert at.error, name
        assert database_contents(database_url) == before


def fill_connector(at: AppTest, exchange: str, credentials: dict[str, str], label: str = "main",
                   api_url: str = "") -> AppTest:
    widget(at.selectbox, "Exchange").set_value(exchange)
    at.run()
    widget(at.text_input, "Label").input(label)
    for field, value in credentials.items():
        widget(at.text_input, field).input(value)
    if api_url:
        widget(at.text_input, "API base URL override").input(api_url)
    return at


def test_connector_form_shows_exactly_the_required_fields(page):
    at = create_client(page, "Sharp")
    widget(at.selectbox, "Exchange").set_value("okx")
    at.run()
    labels = {w.label for w in at.text_input if w.proto.type == w.proto.PASSWORD}
    assert labels == {"API key", "API secret", "Passphrase / memo"}
    assert any(t.label == "Sandbox / testnet" for t in at.toggle)


def test_unreachable_exchange_is_reported_and_nothing_is_stored(page, database_url):
    at = create_client(page, "Sharp")
    marker = "MARK" + secrets.token_hex(10)
    at = fill_connector(at, "binance", {"API key": "key" + secrets.token_hex(4), "API secret": marker},
                        api_url="http://127.0.0.1:9/binance")
    before = database_contents(database_url)
    widget(at.button, "Save").click()
    at.run()
    assert not at.exception
    assert "Connection failed" in texts(at) and "Nothing was saved" in texts(at)
    assert database_contents(database_url) == before
    assert marker not in texts(at) and marker not in repr(at._tree)
    assert marker not in session_state_dump(at)


@pytest.mark.parametrize("fields, api_url, message", [
    ({"API key": "abcdefgh"}, "", "API secret is required"),
    ({"API key": "abcdefgh", "API secret": "abcdefgh"}, "ftp://x", "http"),
])
def test_invalid_connector_input_changes_nothing(page, database_url, fields, api_url, message):
    at = create_client(page, "Sharp")
    at = fill_connector(at, "binance", fields, api_url=api_url)
    before = database_contents(database_url)
    widget(at.button, "Save").click()
    at.run()
    assert message in "\n".join(e.value for e in at.error)
    assert database_contents(database_url) == before


def test_connector_list_marks_delisted_exchange_and_masks_key(page, database_url):
    from lib import clients, connectors
    from lib.access import SYSTEM
    from lib.vault import load_vault

    api_key = "key" + secrets.token_hex(6)
    with session_scope() as session:
        client = clients.create_client(session, SYSTEM, "Sharp")
        connectors.create_connector(session, SYSTEM, load_vault(), client.id, connectors.ConnectorInput(
            "binance", "desk", {"apiKey": api_key, "secret": secrets.token_hex(8)}))
        session.execute(update(Connector).values(exchange_id="mtgox"))
    page.run()
    assert not page.exception
    table = page.dataframe[0].value
    assert table.loc[0, "Status"] == "not supported by the installed ccxt"
    assert table.loc[0, "Key"] == "…" + api_key[-4:]
    assert api_key not in repr(page._tree)


HOSTILE_URL = "https://gw.example.com/**bold**/<b>x</b>/[click](javascript:alert(1))/$x$/a\u202eb"


def test_connector_list_shows_the_api_url_override_and_extra_symbols_as_text(page):
    from lib import clients, connectors
    from lib.access import SYSTEM
    from lib.vault import load_vault

    with session_scope() as session:
        client = clients.create_client(session, SYSTEM, "Sharp")
        for label, url in (("direct", None), ("gateway", HOSTILE_URL)):
            connector = connectors.create_connector(session, SYSTEM, load_vault(), client.id, connectors.ConnectorInput(
                "binance", label, {"apiKey": secrets.token_hex(6), "secret": secrets.token_hex(8)}, url))
        connectors.update_connector(session, SYSTEM, connector.id, extra_symbols="eth/btc, sol/usdt")
    page.run()
    assert not page.exception
    table = page.dataframe[0].value.set_index("Label")
    assert list(table.columns) == ["Client", "Exchange", "Status", "Last error", "Enabled", "Key", "API URL",
                                   "Updated", "Created", "Extra symbols"]
    assert table.loc["direct", "API URL"] == "(exchange default)"
    assert table.loc["direct", "Extra symbols"] == "—"
    # the admin's text, character for character; the text-direction override written out
    assert table.loc["gateway", "API URL"] == HOSTILE_URL.replace("\u202e", "\\u202e")
    assert table.loc["gateway", "Extra symbols"] == "ETH/BTC, SOL/USDT"
    assert "gw.example.com" not in texts(page)  # in no Markdown element


def test_connector_list_pins_the_connector_and_sizes_its_state_and_error_to_their_text(page):
    """Which connector pinned while the rest scrolls; its state and last error beside it, as wide as their
    text (the grid would cut one long error among empty cells to the header's width); Updated before
    Created, in view beside the sidebar at 1,400 px."""
    from lib import clients, connectors
    from lib.access import SYSTEM
    from lib.vault import load_vault

    error = "binance GET https://api.binance.com/api/v3/account 401 Unauthorized: invalid API-key, IP or permissions"
    with session_scope() as session:
        client = clients.create_client(session, SYSTEM, "Sharp Foundation")
        for label in ("desk", "main", "spare", "ops", "treasury", "hedge"):
            connectors.create_connector(session, SYSTEM, load_vault(), client.id, connectors.ConnectorInput(
                "binance", label, {"apiKey": secrets.token_hex(6), "secret": secrets.token_hex(8)}))
        session.execute(update(Connector).where(Connector.label == "hedge").values(last_error=error,
                                                                                  status="error"))
    page.run()
    assert not page.exception
    element = page.dataframe[0]
    shown, config = list(element.value.columns), table_cells.config(element)
    assert [column for column in shown if config.get(column, {}).get("pinned")] == ["Client", "Exchange", "Label"]
    assert shown[:5] == ["Client", "Exchange", "Label", "Status", "Last error"]
    assert shown.index("Updated") < shown.index("Created")
    assert config["Last error"]["width"] == min(7 * len(error) + 24, admin.TEXT_MAX_WIDTH)  # long: the grid's cap
    assert config["Status"]["width"] >= 7 * len("last sync failed")
    assert config["Client"]["width"] >= 7 * len("Sharp Foundation")


def test_connector_list_masks_a_password_in_an_api_url_stored_before_validation_refused_it(page):
    from lib import clients, connectors
    from lib.access import SYSTEM
    from lib.vault import load_vault

    password = "MARK" + secrets.token_hex(6)
    with session_scope() as session:
        client = clients.create_client(session, SYSTEM, "Sharp")
        connectors.create_connector(session, SYSTEM, load_vault(), client.id, connectors.ConnectorInput(
            "binance", "desk", {"apiKey": secrets.token_hex(6), "secret": secrets.token_hex(8)}))
        session.execute(update(Connector).values(api_url=f"https://admin:{password}@gw.example.com/api"))
    page.run()
    assert not page.exception
    table = page.dataframe[0].value
    assert table.loc[0, "API URL"] == "https://***@gw.example.com/api"
    assert password not in table.to_csv()
    # nor in the replace form, whose text field's value would sit in the session's state
    assert [w.value for w in page.text_input if w.label == "API base URL override"] == ["https://gw.example.com/api"]
    assert not [w.key for w in page.text_input if password in f"{w.key}{w.value}"]


def stored_key() -> tuple[bytes, str, str | None]:
    """(ciphertext, key hint, API URL) of the only connector: what a failed replace must keep."""
    with session_scope() as session:
        connector = session.scalar(select(Connector))
        return connector.credentials_ciphertext, connector.key_hint, connector.api_url


def replace_credentials(at: AppTest, api_key: str, secret: str, api_url: str | None = None) -> AppTest:
    password_inputs = [w for w in at.text_input if w.proto.type == w.proto.PASSWORD]
    password_inputs[0].input(api_key)
    password_inputs[1].input(secret)
    if api_url is not None:
        widget(at.text_input, "API base URL override").input(api_url)
    widget(at.button, "Replace credentials").click()
    return at.run()


def test_edit_and_delete_connector(page, database_url, simulator):
    from lib import clients, connectors
    from lib.access import SYSTEM
    from lib.vault import load_vault

    account = simulator.accounts[0]
    with session_scope() as session:
        client = clients.create_client(session, SYSTEM, "Sharp")
        connectors.create_connector(session, SYSTEM, load_vault(), client.id, connectors.ConnectorInput(
            account.dialect, "desk", {"apiKey": "k" + secrets.token_hex(6), "secret": secrets.token_hex(8)},
            account.api_url))
    at = page.run()
    edit_label = [w for w in at.text_input if w.label == "Label"][0]
    edit_label.input("treasury")
    widget(at.button, "Save settings").click()
    at.run()
    # the new key is tested first: one the exchange refuses leaves the old one in place
    old = stored_key()
    wrong = "MARK" + secrets.token_hex(8)
    at = replace_credentials(at, account.api_key, wrong)
    assert "Connection test failed" in texts(at) and "The old credentials were kept" in texts(at)
    assert stored_key() == old
    assert wrong not in session_state_dump(at)
    at = replace_credentials(at, account.api_key, account.secret)
    assert "Credentials replaced" in texts(at)
    assert stored_key()[1:] == (account.api_key[-4:], account.api_url)
    assert account.secret not in session_state_dump(at)
    with session_scope() as session:
        assert session.scalars(select(Connector.label)).all() == ["treasury"]
    widget(at.checkbox, "Yes, delete this connector and everything synced from it").check()
    at.run()
    widget(at.button, "Delete connector").click()
    at.run()
    with session_scope() as session:
        assert session.scalar(select(func.count(Connector.id))) == 0


@pytest.mark.parametrize("role", ["analyst", "client"])
def test_non_admins_are_refused(database_url, role):
    at = login(AppTest.from_file(PAGE, default_timeout=60), role)
    at.run()
    assert "You do not have access to this page." in [e.value for e in at.error]
    assert not at.text_input


@pytest.fixture(scope="module")
def simulator():
    from lib.simulator import Simulator, SimulatorConfig

    with Simulator(SimulatorConfig(seed=7, accounts=2, days=10, fills_per_account=60)) as sim:
        yield sim


def test_wrong_secret_then_right_secret_saves_and_syncs_at_once(page, database_url, simulator):
    from lib.models import BalanceSnapshot, Trade

    account = simulator.accounts[0]
    at = create_client(page, "Sharp")
    fields = {"API key": account.api_key, "API secret": "wrong" + secrets.token_hex(8)}
    at = fill_connector(at, account.dialect, fields, api_url=account.api_url)
    before = database_contents(database_url)
    widget(at.button, "Save").click()
    at.run()
    assert "Authentication failed" in "\n".join(e.value for e in at.error)
    assert database_contents(database_url) == before

    fields["API secret"] = account.secret
    at = fill_connector(at, account.dialect, fields, api_url=account.api_url)
    widget(at.button, "Save").click()
    at.run()
    assert not at.exception
    assert "First sync done" in texts(at), texts(at)
    truth = simulator.truth(account.id)
    with session_scope() as session:
        assert session.scalar(select(func.count(Trade.id))) == len(truth.fills)
        assets = set(session.scalars(select(BalanceSnapshot.asset)))
    assert assets == {asset for asset, row in truth.balances.items() if row["total"]}
    assert account.secret not in session_state_dump(at) and account.secret not in repr(at._tree)


def test_settings_form_edits_symbols_and_the_url_changes_only_with_new_credentials(page, database_url, simulator):
    from lib import clients, connectors
    from lib.access import SYSTEM
    from lib.vault import load_vault

    account = simulator.accounts[0]
    with session_scope() as session:
        client = clients.create_client(session, SYSTEM, "Sharp")
        connectors.create_connector(session, SYSTEM, load_vault(), client.id, connectors.ConnectorInput(
            account.dialect, "desk", {"apiKey": "k" + secrets.token_hex(6), "secret": secrets.token_hex(8)}))
    at = page.run()
    widget(at.text_input, "Extra symbols to sync").input("eth/btc, sol/usdt")
    widget(at.button, "Save settings").click()
    at.run()
    with session_scope() as session:
        stored = session.scalar(select(Connector))
        assert (stored.extra_symbols, stored.api_url) == ("ETH/BTC,SOL/USDT", None)
    # the URL sits with the credentials: it changes only when they are entered again
    url_input = widget(at.text_input, "API base URL override")
    url_input.input(account.api_url)
    widget(at.button, "Replace credentials").click()
    at.run()
    assert "API key is required" in "\n".join(e.value for e in at.error), [e.value for e in at.error]
    with session_scope() as session:
        assert session.scalar(select(Connector.api_url)) is None
    # a key the new host refuses: neither the key nor the URL changes
    old = stored_key()
    at = replace_credentials(at, account.api_key, "wrong" + secrets.token_hex(8), account.api_url)
    assert "The old credentials were kept" in texts(at)
    assert stored_key() == old
    at = replace_credentials(at, account.api_key, account.secret, account.api_url)
    assert "Credentials replaced" in texts(at), texts(at)
    with session_scope() as session:
        assert (session.scalar(select(Connector.api_url)), session.scalar(select(Connector.key_hint))) == (
            account.api_url, account.api_key[-4:])
        detail = session.scalar(select(AuditEvent.detail).where(AuditEvent.action == "credentials.replaced"))
        assert detail == f"API URL (exchange default) -> {account.api_url}"
    before = database_contents(database_url)
    widget(at.text_input, "Extra symbols to sync").input("ETHBTC")
    widget(at.button, "Save settings").click()
    at.run()
    assert "BASE/QUOTE" in "\n".join(e.value for e in at.error)
    assert database_contents(database_url) == before



@pytest.mark.parametrize(("status", "shown"), [("new", "not synced yet"), ("ok", "synced"),
                                               ("error", "last sync failed"), ("attention", "needs attention")])
def test_connector_status_reads_as_words(page, database_url, status, shown):
    from lib import clients, connectors
    from lib.access import SYSTEM
    from lib.vault import load_vault

    with session_scope() as session:
        client = clients.create_client(session, SYSTEM, "Sharp")
        connectors.create_connector(session, SYSTEM, load_vault(), client.id, connectors.ConnectorInput(
            "binance", "desk", {"apiKey": secrets.token_hex(6), "secret": secrets.token_hex(8)}))
        session.execute(update(Connector).values(status=status))
    page.run()
    assert not page.exception
    assert page.dataframe[0].value.loc[0, "Status"] == shown
