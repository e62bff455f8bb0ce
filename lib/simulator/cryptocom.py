"""The cryptocom REST dialect: not written yet (see issue 12)."""

from __future__ import annotations

from collections.abc import Mapping

from lib.simulator.protocol import Call, Reply


def api_key(headers: Mapping[str, str]) -> str | None:
    return None


def rate_limited() -> Reply:
    return Reply(429, {"code": 429, "msg": "rate limited"})


def server_error() -> Reply:
    return Reply(500, {"code": 500, "msg": "server error"})


def permission_denied() -> Reply:
    return Reply(403, {"code": 403, "msg": "denied"})


def handle(call: Call) -> Reply:
    return Reply(404, {"code": 404, "msg": "not implemented"})
