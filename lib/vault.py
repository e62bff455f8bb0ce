"""Encryption of exchange credentials with Fernet, rotatable through MultiFernet.

``ENCRYPTION_KEYS`` lists Fernet keys newest first: the first encrypts, all decrypt.
Without a configured key a development key is generated into a 0600 key file beside the
database, and ``Vault.generated`` says so, so every page can warn about it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from lib.settings import Settings, get_settings

log = logging.getLogger(__name__)


class VaultError(RuntimeError):
    """The vault cannot do its job (bad key, undecryptable row); never carries a secret."""


@dataclass(frozen=True)
class Vault:
    fernet: MultiFernet
    generated: bool  # True when running on a generated development key

    def encrypt(self, credentials: Mapping[str, str]) -> bytes:
        """Encrypt a credentials mapping (ccxt attribute names) with the newest key."""
        payload = json.dumps(dict(credentials), sort_keys=True).encode()
        return self.fernet.encrypt(payload)

    def decrypt(self, token: bytes) -> dict[str, str]:
        try:
            return json.loads(self.fernet.decrypt(token))
        except InvalidToken:
            raise VaultError(
                "stored credentials cannot be decrypted with the configured ENCRYPTION_KEYS"
            ) from None

    def can_decrypt(self, token: bytes) -> bool:
        try:
            self.fernet.decrypt(token)
        except InvalidToken:
            return False
        return True

    def rotate(self, token: bytes) -> bytes:
        """Re-encrypt a token with the newest key (raises VaultError when no key fits)."""
        try:
            return self.fernet.rotate(token)
        except InvalidToken:
            raise VaultError("token cannot be decrypted with any configured key") from None


def _parse_keys(keys: tuple[str, ...]) -> list[Fernet]:
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key.encode()))
        except (ValueError, TypeError):
            raise VaultError(
                f"ENCRYPTION_KEYS entry {position} is not a valid Fernet key "
                "(32 url-safe base64-encoded bytes; see the README to make one)"
            ) from None
    return fernets


def _generated_key(path: Path) -> str:
    """The development key, created 0600 in a 0700 folder; a key file an older version left
    readable by others is tightened, and one another process created first is read."""
    if path.is_file():
        with suppress(PermissionError):  # another user's file: reading it is all we may do
            if path.stat().st_mode & 0o077:
                path.chmod(0o600)
        return path.read_text().strip()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = Fernet.generate_key().decode()
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # the app and a worker starting at once: the first key wins
        return path.read_text().strip()
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key + "\n")
    log.warning(
        "No ENCRYPTION_KEYS configured: generated a development key in %s. "
        "Set ENCRYPTION_KEYS for production.",
        path,
    )
    return key


def load_vault(settings: Settings | None = None) -> Vault:
    settings = settings or get_settings()
    if settings.encryption_keys:
        return Vault(MultiFernet(_parse_keys(settings.encryption_keys)), generated=False)
    key = _generated_key(settings.key_file)
    return Vault(MultiFernet(_parse_keys((key,))), generated=True)


