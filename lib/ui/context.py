"""Process-wide resources for the pages: migrations run once per database."""

from __future__ import annotations

import hashlib

import streamlit as st

from lib.db import migrate
from lib.settings import configure_logging, get_settings
from lib.vault import Vault, load_vault


@st.cache_resource(show_spinner=False)
def _migrated(database_fingerprint: str) -> bool:
    """Migrate once per server process and database (keyed by a hash: the URL may hold a password)."""
    settings = get_settings()
    configure_logging(settings.log_level)
    migrate(settings.database_url)
    return True


def ready_database() -> None:
    _migrated(hashlib.sha256(get_settings().database_url.encode()).hexdigest())


def vault() -> Vault:
    """Loaded per run (cheap) rather than cached, so no key material sits in a cache key."""
    return load_vault()
