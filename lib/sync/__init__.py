"""The sync engine: concurrent, incremental, crash-safe sync of exchange accounts.

Public API (everything else in this package is internal):

* ``sync_connectors(viewer, *, connector_ids=None, client_id=None, trigger="cli",
  on_progress=None, concurrency=256, stop=None, due_seconds=None, timeout_ms=10000) -> RunReport``
* ``sync_connector(viewer, connector_id, *, trigger="save", on_progress=None) -> ConnectorResult``
* ``sync_async(...)``: the same as ``sync_connectors`` for code already inside an event loop.
* ``lib.sync.worker``: the scheduled loop (``run_worker``, ``start_background_worker``).
* ``lib.sync.status``: freshness and recent runs for pages.
"""

from lib.sync.runner import (
    DEFAULT_CONCURRENCY,
    ConnectorResult,
    Progress,
    RunReport,
    sync_async,
    sync_connector,
    sync_connectors,
)

__all__ = [
    "DEFAULT_CONCURRENCY", "ConnectorResult", "Progress", "RunReport",
    "sync_async", "sync_connector", "sync_connectors",
]
