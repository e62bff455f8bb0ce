"""``connector coverage``: what each history stream of a synced connector holds, as text and JSON."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from lib.access import SYSTEM
from lib.capabilities import DAY_MS
from lib.cli import main
from lib.clients import create_client
from lib.connectors import ConnectorInput, create_connector
from lib.db import session_scope
from lib.reports import STREAM_LABELS
from lib.simulator import Simulator, SimulatorConfig
from lib.sync import markets, store, sync_connectors
from lib.vault import load_vault
from tests.sync_helpers import add_connectors

FIELDS = ["connector_id", "stream", "kind", "symbol", "oldest_available", "lookback_source", "fetched_from",
          "fetched_to", "complete_at", "failed_from", "failed_to", "failed_error"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


@pytest.fixture
def synced(request: pytest.FixtureRequest, database_url: str) -> Iterator[tuple[Simulator, int, int, int]]:
    """One simulator account of the dialect in ``request.param``, synced once; (sim, connector id,
    time before and after the sync)."""
    markets.forget()
    config = SimulatorConfig(seed=5, accounts=1, dialects=[request.param], days=20, fills_per_account=40)
    with Simulator(config) as simulator:
        ids = add_connectors(simulator)
        before = int(time.time() * 1000)
        report = sync_connectors(SYSTEM)
        after = int(time.time() * 1000)
        assert report.failed == 0, [r.error for r in report.results]
        yield simulator, next(iter(ids.values())), before, after


@pytest.mark.parametrize("synced", ["binance"], indirect=True)
def test_per_market_streams_paged_by_id(synced: tuple[Simulator, int, int, int],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    simulator, connector_id, _, _ = synced
    fills = simulator.truth("binance-1").fills
    code, out, err = run(capsys, "connector", "coverage", str(connector_id), "--json")
    assert code == 0 and err == ""
    rows = json.loads(out)
    assert all(list(row) == FIELDS for row in rows)
    order = [*STREAM_LABELS, "balance"]  # as the Sync page lists them; a stream it does not name comes last
    rank = {name: i for i, name in enumerate(order)}
    assert [r["stream"] for r in rows] == [c["stream"] for c in sorted(
        store.coverage(connector_id), key=lambda c: (rank.get(c["stream"].split(":")[0], len(order)), c["stream"]))]
    by_stream = {r["stream"]: r for r in rows}
    walked = {r["symbol"] for r in rows if r["kind"] == "trades"}
    assert {f["symbol"] for f in fills} <= walked and None not in walked  # one stream per market
    for symbol in {f["symbol"] for f in fills}:
        row = by_stream[f"trades:{symbol}"]
        stamps = [f["timestamp"] for f in fills if f["symbol"] == symbol]
        # paged from the first trade id: no look-back, the range is the fills' own
        assert row["oldest_available"] is None and "fromId" in row["lookback_source"]
        assert (row["fetched_from"], row["fetched_to"]) == (iso(min(stamps)), iso(max(stamps)))
        assert row["complete_at"] and row["failed_error"] is None
    assert by_stream["deposits"]["lookback_source"] == "unknown" and by_stream["deposits"]["oldest_available"] is None
    balances = [r for r in rows if r["kind"] == "balance"]
    assert {r["stream"] for r in balances} >= {"balance:default"}
    assert all(r["symbol"] is None and r["fetched_to"] for r in balances)

    code, out, err = run(capsys, "connector", "coverage", str(connector_id))
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == f"History coverage of Acme / binance / binance-1 (#{connector_id})"
    at = next(i for i, line in enumerate(lines) if line.startswith("Fills "))
    assert "whole history (paged by id)" in lines[at]
    assert lines[at + 1] == f"  markets walked ({len(walked)}): {', '.join(sorted(walked))}"
    assert next(line for line in lines if line.startswith("Deposits ")).split()[1] == "unknown"
    assert any(line.startswith("Balances: default account ") and "last read " in line for line in lines)

    # an id-paged walk records the trade id it failed from, not a time: no window in the JSON
    stream = f"trades:{fills[0]['symbol']}"
    store.save_coverage(connector_id, stream, "trades", {"failed_from": 1234, "failed_to": int(time.time() * 1000),
                                                         "failed_error": "The exchange is under maintenance."})
    row = next(r for r in json.loads(run(capsys, "connector", "coverage", str(connector_id), "--json")[1])
               if r["stream"] == stream)
    assert (row["failed_from"], row["failed_to"], row["failed_error"]) == (
        None, None, "The exchange is under maintenance.")


@pytest.mark.parametrize("synced", ["okx"], indirect=True)
def test_look_back_range_and_a_failed_window(synced: tuple[Simulator, int, int, int],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    _, connector_id, before, after = synced
    rows = {r["stream"]: r for r in json.loads(run(capsys, "connector", "coverage", str(connector_id), "--json")[1])}
    fills = rows["trades"]
    # OKX keeps 3 months of fills (the override table), measured from the sync
    assert before - 90 * DAY_MS <= ms(fills["oldest_available"]) <= after - 90 * DAY_MS + 1
    assert fills["lookback_source"].startswith("override: okx.com")
    assert fills["symbol"] is None and fills["complete_at"]
    assert before <= ms(rows["deposits"]["fetched_to"]) <= after

    failed_from, failed_to = after - 30 * DAY_MS, after - 20 * DAY_MS
    store.save_coverage(connector_id, "deposits", "deposits", {
        "failed_from": failed_from, "failed_to": failed_to,
        "failed_error": "The exchange answered with a temporary error (HTTP 503)."})
    deposits = next(r for r in json.loads(run(capsys, "connector", "coverage", str(connector_id), "--json")[1])
                    if r["stream"] == "deposits")
    assert (deposits["failed_from"], deposits["failed_to"]) == (iso(failed_from), iso(failed_to))
    assert deposits["failed_error"] == "The exchange answered with a temporary error (HTTP 503)."

    code, out, _ = run(capsys, "connector", "coverage", str(connector_id))
    lines = out.splitlines()
    assert code == 0
    fills_line = next(line for line in lines if line.startswith("Fills "))
    assert fills_line.split()[1] == fills["oldest_available"][:10] and "override: okx.com" in fills_line
    for stream in rows:  # OKX needs no symbol: one line per stream, by its label
        name, _, account_type = stream.partition(":")
        label = f"Balances: {account_type} account" if name == "balance" else STREAM_LABELS.get(name, name)
        assert sum(line.startswith(label + " ") for line in lines) == 1, label
    failure = lines[lines.index(next(line for line in lines if line.startswith("Deposits "))) + 1]
    days = [datetime.fromtimestamp(t / 1000, UTC).strftime("%Y-%m-%d") for t in (failed_from, failed_to)]
    assert failure == f"  failed: {days[0]} – {days[1]}: The exchange answered with a temporary error (HTTP 503)."


@pytest.mark.parametrize("argv, message", [
    (["abc"], "whole number"),
    (["1.5"], "whole number"),
    (["7"], "No connector with id 7."),
    (["0"], "No connector with id 0."),
    (["-1"], "No connector with id -1."),
    (["99999999999999999999", "--json"], "No connector with id 99999999999999999999."),
])
def test_bad_ids_are_one_line(database_url: str, capsys: pytest.CaptureFixture[str], argv: list[str],
                              message: str) -> None:
    code, out, err = run(capsys, "connector", "coverage", *argv)
    assert (code, out) == (2, "") and err.startswith("error: ") and message in err and err.count("\n") == 1


def test_a_connector_never_synced(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with session_scope() as session:
        owner = create_client(session, SYSTEM, "Acme")
        connector_id = create_connector(session, SYSTEM, load_vault(), owner.id, ConnectorInput(
            "bybit", "main", {"apiKey": "k" * 18, "secret": "s" * 36}, "http://127.0.0.1:9/bybit")).id
    assert run(capsys, "connector", "coverage", str(connector_id), "--json")[:2] == (0, "[]\n")
    code, out, _ = run(capsys, "connector", "coverage", str(connector_id))
    assert code == 0 and out == f"Acme / bybit / main (#{connector_id}): no history coverage yet (not synced).\n"
