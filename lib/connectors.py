"""Create, validate, test, replace and remove connectors (a client's exchange API key).

Validation happens before anything touches the database, and each change is one
transaction with its audit event, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass

import ccxt
from sqlalchemy import select
from sqlalchemy.orm import Session

from lib import audit, exchanges
from lib.access import Role, Viewer
from lib.clients import get_client
from lib.exchanges import ConnectionSpec, UnsupportedExchange
from lib.models import EXCHANGE_ID_MAX, LABEL_MAX, URL_MAX, Connector
from lib.validation import ValidationError, clean_secret, clean_text, clean_url, look_alikes, same_names
from lib.vault import Vault, VaultError

log = logging.getLogger(__name__)

TEST_TIMEOUT_MS = 8_000
#: a key test retries like a sync but briefly, since someone waits at the form: at most
#: 3 x 8 s of requests and 2 x 4 s of waiting
TEST_ATTEMPTS = 3
TEST_BASE_DELAY = 0.5
TEST_MAX_DELAY = 4.0


@dataclass(frozen=True)
class ConnectorInput:
    """What an admin typed; credentials use ccxt attribute names."""

    exchange_id: str
    label: str
    credentials: Mapping[str, str]
    api_url: str | None = None
    sandbox: bool = False

    def __repr__(self) -> str:
        return f"ConnectorInput(exchange_id={self.exchange_id!r}, label={self.label!r}, credentials=<hidden>)"


def check_exchange(exchange_id: str) -> str:
    exchange_id = (exchange_id or "").strip().lower()
    if not exchange_id:
        raise ValidationError("exchange", "Pick an exchange.")
    if len(exchange_id) > EXCHANGE_ID_MAX or not exchanges.is_supported(exchange_id):
        raise ValidationError("exchange", str(UnsupportedExchange(exchange_id[:EXCHANGE_ID_MAX])))
    return exchange_id


def check_credentials(exchange_id: str, credentials: Mapping[str, str]) -> dict[str, str]:
    """Exactly the credentials ccxt requires for this exchange, each present and clean."""
    labels = exchanges.credential_labels(exchange_id)
    return {
        name: clean_secret(credentials.get(name), labels[name])
        for name in exchanges.required_credentials(exchange_id)
    }


def validate(data: ConnectorInput) -> tuple[str, str, dict[str, str], str | None, bool]:
    """Check every field; returns the cleaned values or raises ValidationError."""
    exchange_id = check_exchange(data.exchange_id)
    label = clean_text(data.label, "label", LABEL_MAX)
    credentials = check_credentials(exchange_id, data.credentials)
    api_url = clean_url(data.api_url, URL_MAX)
    if data.sandbox and not exchanges.supports_sandbox(exchange_id):
        raise ValidationError("sandbox", f"{exchange_id} has no sandbox/testnet in ccxt.")
    return exchange_id, label, credentials, api_url, data.sandbox


def _check_label_free(session: Session, client_id: int, exchange_id: str, label: str,
                      current: Connector | None = None) -> None:
    """A label is unique per (client, exchange), ignoring case and Unicode form (see name_key),
    and looks like no other there (see look_alikes); a connector keeping its label is not
    compared for look-alikes, so those from before keep working."""
    taken = list(session.scalars(select(Connector.label).where(
        Connector.client_id == client_id, Connector.exchange_id == exchange_id,
        Connector.id != (current.id if current is not None else None))))
    same = same_names(taken, label, lambda name: name)
    if same:
        raise ValidationError("label", f"This client already has a {exchange_id} connector labelled '{same[0]}'.")
    alike = [] if current is not None and label == current.label else look_alikes(taken, label, lambda name: name)
    if alike:
        raise ValidationError("label", f"The label '{label}' looks like this client's {exchange_id} connector "
                                       f"'{alike[0]}' (characters that look alike); choose a clearly different label.")


def _check_key_unused(session: Session, vault: Vault, exchange_id: str, credentials: Mapping[str, str],
                      except_id: int | None = None) -> None:
    """One exchange account, one connector: the same key twice would count its money twice.

    Keys are only stored encrypted, so the comparison decrypts this exchange's connectors
    in memory (a few hundred at most); rows the configured keys cannot open are skipped.
    """
    api_key = credentials.get("apiKey")
    if not api_key:
        return
    query = select(Connector).where(Connector.exchange_id == exchange_id, Connector.key_hint == api_key[-4:])
    for other in session.scalars(query):
        if other.id != except_id and vault.can_decrypt(other.credentials_ciphertext) \
                and vault.decrypt(other.credentials_ciphertext).get("apiKey") == api_key:
            raise ValidationError(
                "credentials", f"This API key is already stored as {other.describe()}; "
                "one exchange account must not be counted twice.")


@dataclass(frozen=True)
class ConnectionCheck:
    ok: bool
    message: str
    assets: int = 0


def check_connection(spec: ConnectionSpec) -> ConnectionCheck:
    """A real ``fetch_balance`` with a short timeout, transient errors retried as a sync
    retries them (``exchanges.retry_delay``); the answer in plain words."""
    try:
        exchange = exchanges.build_exchange(
            ConnectionSpec(spec.exchange_id, spec.credentials, spec.api_url, spec.sandbox, TEST_TIMEOUT_MS)
        )
        balance = exchanges.call_with_retry_blocking(
            exchange.fetch_balance, attempts=TEST_ATTEMPTS, base_delay=TEST_BASE_DELAY, max_delay=TEST_MAX_DELAY,
            last_headers=lambda: exchange.last_response_headers,
        )
    except Exception as error:  # noqa: BLE001 - every failure becomes a message
        log.info("connection test for %s failed: %s", spec.exchange_id, type(error).__name__)
        return ConnectionCheck(False, _test_failure(error, spec.api_url))
    assets = sum(1 for amount in (balance.get("total") or {}).values() if amount)
    return ConnectionCheck(True, f"Connected: the account holds {assets} asset(s).", assets)


def _test_failure(error: Exception, api_url: str | None = None) -> str:
    """What went wrong, and for a transient error that the test gave up and when to test again.

    Nothing here retries later (that is the sync's promise in ``describe_error``): the
    person at the form has to press the button again. With an API URL of the form's own,
    a host that does not answer is more likely a wrong URL than an exchange down: say so.
    """
    reason = exchanges.describe_error(error, retried_later=False)
    if isinstance(error, exchanges.RetryAfterTooLong):
        return f"{reason} The test stopped; try again in {math.ceil(error.seconds)} s or later."
    if api_url and _no_answer(error):
        return f"{reason} Nothing answered at the API URL {api_url}: check it, or clear it to use the exchange's own."
    if exchanges.is_retryable(error):
        return f"{reason} The test tried {TEST_ATTEMPTS} times; try again in a few minutes."
    return reason


def _no_answer(error: Exception) -> bool:
    """No HTTP answer at all: the connection was refused or timed out (not a 503 or maintenance)."""
    return (isinstance(error, ccxt.NetworkError) and exchanges.http_status(error) is None
            and not isinstance(error, ccxt.RateLimitExceeded | ccxt.DDoSProtection | ccxt.OnMaintenance))


def check_input(data: ConnectorInput) -> ConnectionCheck:
    """Validate what was typed, then test it against the exchange."""
    exchange_id, _label, credentials, api_url, sandbox = validate(data)
    return check_connection(ConnectionSpec(exchange_id, credentials, api_url, sandbox))


def create_connector(session: Session, viewer: Viewer, vault: Vault, client_id: int,
                     data: ConnectorInput) -> Connector:
    """Validate, encrypt and add a connector in the caller's transaction."""
    viewer.require(Role.ADMIN)
    client = get_client(session, client_id)
    exchange_id, label, credentials, api_url, sandbox = validate(data)
    _check_label_free(session, client.id, exchange_id, label)
    _check_key_unused(session, vault, exchange_id, credentials)
    connector = Connector(
        client_id=client.id, exchange_id=exchange_id, label=label,
        credentials_ciphertext=vault.encrypt(credentials), key_hint=credentials["apiKey"][-4:]
        if "apiKey" in credentials else "", api_url=api_url, sandbox=sandbox,
    )
    session.add(connector)
    session.flush()
    audit.record(session, viewer.username, "credentials.added", connector.describe())
    return connector


def update_connector(session: Session, viewer: Viewer, connector_id: int, *, label: str | None = None,
                     enabled: bool | None = None, extra_symbols: str | None = None) -> Connector:
    """Change what is not secret: label, enabled flag, extra symbols.

    Not the API URL: the stored key would be sent to the new host, so a URL changes only
    with re-entered credentials (``replace_credentials``).
    """
    viewer.require(Role.ADMIN)
    connector = get_connector(session, connector_id)
    changes = []
    if label is not None:
        label = clean_text(label, "label", LABEL_MAX)
        _check_label_free(session, connector.client_id, connector.exchange_id, label, connector)
        if label != connector.label:
            changes.append(f"label {connector.label!r} -> {label!r}")
            connector.label = label
    if enabled is not None and enabled != connector.enabled:
        changes.append("enabled" if enabled else "disabled")
        connector.enabled = enabled
    if extra_symbols is not None:
        symbols = [s.strip().upper() for s in extra_symbols.split(",") if s.strip()]
        if any("/" not in s or len(s) > 50 for s in symbols):
            raise ValidationError("extra_symbols", "Symbols look like BASE/QUOTE, e.g. ETH/BTC, comma-separated.")
        if ",".join(symbols) != connector.extra_symbols:
            connector.extra_symbols = ",".join(symbols)
            changes.append("symbols changed")
    if changes:
        audit.record(session, viewer.username, "connector.updated",
                     connector.describe(), "; ".join(changes))
    return connector


def replace_credentials(session: Session, viewer: Viewer, vault: Vault, connector_id: int,
                        credentials: Mapping[str, str], api_url: str | None = None) -> Connector:
    """Test new credentials (re-entered, never shown) like a new key, then store them;
    clears "needs attention".

    ``api_url`` changes the API base URL with them ("" for the exchange's own URLs; None
    keeps it): only a key entered now may go to a new host. A key the exchange refuses
    is not stored: the old one keeps syncing (ValidationError, nothing changed).
    """
    viewer.require(Role.ADMIN)
    connector = get_connector(session, connector_id)
    if not exchanges.is_supported(connector.exchange_id):
        raise ValidationError("exchange", str(UnsupportedExchange(connector.exchange_id)))
    cleaned = check_credentials(connector.exchange_id, credentials)
    new_url = connector.api_url if api_url is None else clean_url(api_url, URL_MAX)
    _check_key_unused(session, vault, connector.exchange_id, cleaned, except_id=connector.id)
    result = check_connection(ConnectionSpec(connector.exchange_id, cleaned, new_url, connector.sandbox))
    if not result.ok:
        raise ValidationError("credentials", f"Connection test failed: {result.message} "
                                             "The old credentials were kept.")
    connector.credentials_ciphertext = vault.encrypt(cleaned)
    connector.key_hint = cleaned.get("apiKey", "")[-4:]
    connector.status = "new"
    connector.last_error = None
    connector.consecutive_failures = 0
    detail = ""
    if new_url != connector.api_url:
        detail = f"API URL {connector.api_url or '(exchange default)'} -> {new_url or '(exchange default)'}"
        connector.api_url = new_url
    audit.record(session, viewer.username, "credentials.replaced", connector.describe(),
                 detail)
    return connector


def delete_connector(session: Session, viewer: Viewer, connector_id: int) -> None:
    viewer.require(Role.ADMIN)
    connector = get_connector(session, connector_id)
    audit.record(session, viewer.username, "credentials.removed", connector.describe())
    session.delete(connector)


def get_connector(session: Session, connector_id: int) -> Connector:
    connector = session.get(Connector, connector_id)
    if connector is None:
        raise ValidationError("connector", f"No connector with id {connector_id}.")
    return connector


def connection_spec(connector: Connector, vault: Vault,
                    timeout_ms: int = exchanges.DEFAULT_TIMEOUT_MS) -> ConnectionSpec:
    """Decrypt a stored connector into what ``lib.exchanges`` needs (memory only)."""
    if not exchanges.is_supported(connector.exchange_id):
        raise UnsupportedExchange(connector.exchange_id)
    credentials = vault.decrypt(connector.credentials_ciphertext)
    return ConnectionSpec(connector.exchange_id, credentials, connector.api_url, connector.sandbox, timeout_ms)


def masked_key(connector: Connector) -> str:
    """The API key as shown anywhere: its last four characters only."""
    return "…" + connector.key_hint if connector.key_hint else "—"


def support_note(connector: Connector) -> str | None:
    """Why a stored connector cannot be used, or None when it can."""
    if not exchanges.is_supported(connector.exchange_id):
        return "not supported by the installed ccxt"
    return None


def undecryptable(session: Session, vault: Vault) -> list[Connector]:
    """Connectors whose credentials the configured keys cannot open."""
    return [c for c in session.scalars(select(Connector)) if not vault.can_decrypt(c.credentials_ciphertext)]


def rotate_all(session: Session, viewer: Viewer, vault: Vault) -> int:
    """Re-encrypt every stored credential with the newest key, all or nothing."""
    viewer.require(Role.ADMIN)
    connectors = list(session.scalars(select(Connector).order_by(Connector.id)))
    broken = [c for c in connectors if not vault.can_decrypt(c.credentials_ciphertext)]
    if broken:
        names = ", ".join(f"#{c.id} {c.label}" for c in broken)
        raise VaultError(f"Cannot decrypt connector(s) {names} with the configured keys; nothing was changed.")
    for connector in connectors:
        connector.credentials_ciphertext = vault.rotate(connector.credentials_ciphertext)
    audit.record(session, viewer.username, "vault.rotated", f"{len(connectors)} connector(s)")
    return len(connectors)
