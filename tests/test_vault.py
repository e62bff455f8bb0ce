"""The vault: round trip, rotation, wrong keys, the generated development key."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from lib.settings import get_settings
from lib.vault import VaultError, load_vault


def _vault(monkeypatch: pytest.MonkeyPatch, keys: str | None, tmp_path: Path):
    monkeypatch.setenv("DOTENV_PATH", str(tmp_path / "none.env"))
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    if keys is None:
        monkeypatch.delenv("ENCRYPTION_KEYS", raising=False)
        monkeypatch.delenv("ENCRYPTION_KEY", raising=False)
    else:
        monkeypatch.setenv("ENCRYPTION_KEYS", keys)
    get_settings.cache_clear()
    try:
        return load_vault()
    finally:
        get_settings.cache_clear()


def test_round_trip_never_contains_plaintext(monkeypatch, tmp_path):
    vault = _vault(monkeypatch, Fernet.generate_key().decode(), tmp_path)
    secret = os.urandom(16).hex()
    token = vault.encrypt({"apiKey": "k" + secret, "secret": secret})
    assert secret.encode() not in token
    assert vault.decrypt(token) == {"apiKey": "k" + secret, "secret": secret}
    assert not vault.generated


def test_rotation_moves_tokens_to_the_newest_key(monkeypatch, tmp_path):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = _vault(monkeypatch, old, tmp_path).encrypt({"secret": "s3"})
    both = _vault(monkeypatch, f"{new},{old}", tmp_path)
    rotated = both.rotate(token)
    only_new = _vault(monkeypatch, new, tmp_path)
    assert only_new.decrypt(rotated) == {"secret": "s3"}
    assert not only_new.can_decrypt(token)


def test_wrong_key_gives_clear_error_without_secret(monkeypatch, tmp_path):
    token = _vault(monkeypatch, Fernet.generate_key().decode(), tmp_path).encrypt({"secret": "marker-xyz"})
    other = _vault(monkeypatch, Fernet.generate_key().decode(), tmp_path)
    with pytest.raises(VaultError) as caught:
        other.decrypt(token)
    assert "cannot be decrypted" in str(caught.value)
    assert "marker-xyz" not in str(caught.value)


def test_malformed_key_is_refused_with_its_position(monkeypatch, tmp_path):
    with pytest.raises(VaultError, match="entry 2"):
        _vault(monkeypatch, f"{Fernet.generate_key().decode()},not-a-key", tmp_path)


def test_generated_development_key_is_private_and_stable(monkeypatch, tmp_path, caplog):
    first = _vault(monkeypatch, None, tmp_path)
    key_file = tmp_path / "encryption.key"
    assert first.generated
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "generated a development key" in caplog.text
    second = _vault(monkeypatch, None, tmp_path)
    assert second.decrypt(first.encrypt({"a": "b"})) == {"a": "b"}
