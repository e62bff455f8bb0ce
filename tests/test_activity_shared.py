"""``activity.sharing_priced_fills``: inside the block the Clients table's volume and the Trades page's
totals value every fill once, with the figures of two separate valuations; a write in between values
them again; outside the block, or in another thread, nothing is shared or kept."""

from __future__ import annotations

import threading

import pandas as pd
import pytest

from lib import activity
from lib.db import session_scope
from lib.models import Trade
from tests.test_queries import Seeded, ms, seed_portfolio


@pytest.fixture
def seeded(database_url: str) -> Seeded:
    return seed_portfolio()


@pytest.fixture
def valued(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per valuation of fills (``_store_priced_fills``)."""
    calls: list[int] = []
    real = activity._store_priced_fills

    def spy(*args: object) -> pd.DataFrame:
        calls.append(1)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(activity, "_store_priced_fills", spy)
    return calls


def _both(seeded: Seeded) -> tuple[pd.DataFrame, activity.FillTotals]:
    viewer = seeded.viewer("admin")
    with session_scope() as session:
        return (activity.volume_and_fees(session, viewer, None, None),
                activity.fill_totals(session, viewer, None, None))


def test_inside_the_block_every_fill_is_valued_once_with_the_same_figures(seeded: Seeded, valued: list[int]) -> None:
    alone = _both(seeded)
    assert len(valued) == 2
    valued.clear()
    with activity.sharing_priced_fills():
        shared = _both(seeded)
        assert len(valued) == 1
        with session_scope() as session:  # a new fill: a new write version, valued again
            session.add(Trade(connector_id=seeded.alpha_binance, trade_id="late", timestamp=ms("2024-03-20"),
                              symbol="BTC/USDT", base="BTC", quote="USDT", side="buy", amount=0.01, price=60000.0,
                              cost=600.0, fee_cost=0.6, fee_currency="USDT"))
        after = _both(seeded)
        assert len(valued) == 2
        seen: list[int] = []
        thread = threading.Thread(target=lambda: seen.append(len(_both(seeded)[0])))
        thread.start()
        thread.join()
        assert len(valued) == 4  # another thread shares nothing
    pd.testing.assert_frame_equal(shared[0], alone[0])
    assert shared[1] == alone[1]
    assert after[1].fills == alone[1].fills + 1
    _both(seeded)
    assert len(valued) == 6  # the block ended: nothing kept
