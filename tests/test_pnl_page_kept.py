"""The P&L page's kept drawings (realized charts, equity, per-asset table): per viewer and picks,
drawn again after any write, never another scope's."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
import streamlit as st

from lib.db import session_scope
from lib.models import Trade
from lib.ui import scope
from tests.test_pages_portfolio import open_page, widget
from tests.test_queries import Seeded, ms, seed_portfolio


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    st.cache_data.clear()
    yield
    st.cache_data.clear()


@pytest.fixture
def seeded(database_url: str) -> Seeded:
    return seed_portfolio()


def _per_asset(at: object) -> pd.DataFrame:
    table = at.dataframe[-1].value  # type: ignore[attr-defined]
    return table.set_index(table["Asset"].str.extract(scope._SHOWN.pattern)[0])  # noqa: SLF001 - link text


def test_pnl_drawings_are_kept_per_viewer_and_picks_and_drawn_again_after_a_write(seeded: Seeded) -> None:
    admin = open_page("pnl", seeded.users["admin"])
    assert "XYZ" in _per_asset(admin).index  # Beta's asset, with every client in scope
    charts_before = len(admin.get("plotly_chart"))
    client = open_page("pnl", seeded.users["client"])  # the same process's cache
    assert "XYZ" not in _per_asset(client).index  # Alpha's user: a kept table of another scope is never replayed
    xyz = _per_asset(admin).loc["XYZ", "Quantity"]
    with session_scope() as session:  # a later fill: a new write version
        session.add(Trade(connector_id=seeded.beta_okx, trade_id="B-later", timestamp=ms("2024-04-01"),
                          symbol="XYZ/USDT", base="XYZ", quote="USDT", side="buy", amount=5.0, price=2.0, cost=10.0))
    admin.run()
    assert _per_asset(admin).loc["XYZ", "Quantity"] == xyz + 5.0  # not the kept table from before the write
    assert len(admin.get("plotly_chart")) == charts_before
    widget(admin.radio, "Method").set_value("average").run()  # another pick: its own drawing
    assert _per_asset(admin).loc["XYZ", "Quantity"] == xyz + 5.0
    assert not admin.exception and not client.exception
