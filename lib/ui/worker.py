"""The dashboard's own sync worker: scheduled sync with nothing but ``make run``.

``ensure_background_worker()`` is called once per script run from app.py; the thread
starts once per server process (``st.cache_resource``), never again on reruns. On SQLite
it holds the same lock as ``python -m lib.cli worker``, so a second worker refuses.
"""

from __future__ import annotations

import hashlib

import streamlit as st

from lib.settings import get_settings
from lib.sync.worker import BackgroundWorker, start_background_worker


@st.cache_resource(show_spinner=False)
def _worker(database_fingerprint: str) -> BackgroundWorker:
    """One worker per server process and database (keyed by a hash: the URL may hold a password)."""
    return start_background_worker()


def ensure_background_worker() -> BackgroundWorker | None:
    """Start the in-app worker if RUN_WORKER_IN_APP (default true); None when turned off."""
    settings = get_settings()
    if not settings.run_worker_in_app:
        return None
    return _worker(hashlib.sha256(settings.database_url.encode()).hexdigest())
