"""lib.pnl's client pooling: one run pooled per client gives every client what a scope-pooled run
over that client's own fills, transfers and opening lots gives (the Clients page's single pass)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings

from lib.pnl import compute_pnl, summarise
from tests.test_pnl_reference import Ledger, ledgers, random_ledger

FIGURES = ["realized", "unrealized", "market_value", "cost_basis", "fees", "net_cash_flow"]


def _own(ledger: Ledger, client: int) -> Ledger:
    def mine(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[frame["client_id"].to_numpy() == client].reset_index(drop=True)

    return Ledger(mine(ledger.fills), mine(ledger.transfers), mine(ledger.opening), ledger.marks)


def _holdings(frame: pd.DataFrame) -> pd.DataFrame:
    columns = ["connector_id", "asset", "quantity", "cost_basis", "market_value"]
    return frame[columns].sort_values(["connector_id", "asset"]).reset_index(drop=True)


def assert_client_pools_agree(ledger: Ledger, method: str, start: int | None = None) -> None:
    both = compute_pnl(ledger.fills, ledger.transfers, ledger.opening, ledger.marks, method=method, pool="client",
                       start=start)
    rows = summarise(both, "client_id").set_index("client_id")
    clients = set(ledger.fills["client_id"]) | set(ledger.transfers["client_id"]) | set(ledger.opening["client_id"])
    assert len(clients) > 1
    for client in sorted(clients):
        own = _own(ledger, client)
        alone = compute_pnl(own.fills, own.transfers, own.opening, own.marks, method=method, pool="scope", start=start)
        for figure in FIGURES:  # the client's own run's totals (a pool no connector holds counts there too)
            got = rows[figure].get(client, 0.0)
            want = getattr(alone.totals, figure) if figure != "cost_basis" else alone.holdings["cost_basis"].sum()
            assert got == pytest.approx(want, rel=1e-9, abs=1e-6), (client, figure)
        held = both.holdings[both.holdings["client_id"] == client]
        pd.testing.assert_frame_equal(_holdings(held), _holdings(alone.holdings), check_dtype=False, atol=1e-6)
        assert (held["client_id"] == client).all()
        mine = both.disposals[both.disposals["client_id"] == client].reset_index(drop=True)
        assert np.allclose(mine["gain"], alone.disposals["gain"], atol=1e-6)
        assert list(mine["source_id"]) == list(alone.disposals["source_id"])


@pytest.mark.parametrize("method", ["fifo", "average"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_client_pools_equal_one_run_per_client(method: str, seed: int) -> None:
    ledger = random_ledger(seed, 400)
    assert_client_pools_agree(ledger, method)
    held = compute_pnl(ledger.fills, ledger.transfers, ledger.opening, ledger.marks, pool="client").holdings
    assert held["client_id"].nunique() == 2  # both clients hold something: the split is exercised
    assert_client_pools_agree(random_ledger(seed, 400), method, start=50_000)


@settings(max_examples=30, deadline=None)
@given(ledger=ledgers(max_fills=30))
def test_client_pools_equal_one_run_per_client_on_drawn_ledgers(ledger: Ledger) -> None:
    clients = set(ledger.fills["client_id"]) | set(ledger.transfers["client_id"]) | set(ledger.opening["client_id"])
    if len(clients) < 2:
        return
    for method in ("fifo", "average"):
        assert_client_pools_agree(ledger, method)


def test_client_pool_is_refused_nowhere_and_a_bad_pool_is() -> None:
    ledger = random_ledger(4, 50)
    assert compute_pnl(ledger.fills, marks=ledger.marks, pool="client").pool == "client"
    with pytest.raises(ValueError, match="pool must be"):
        compute_pnl(ledger.fills, marks=ledger.marks, pool="account")  # type: ignore[arg-type]
