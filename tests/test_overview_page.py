"""AppTest of the Overview's reading: change cards that say deposits count in them, an allocation
title naming the rings drawn, and connector health for the sidebar's account alone."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

import pytest
from streamlit.testing.v1 import AppTest

from lib.db import session_scope
from lib.models import Connector, Transfer, utcnow
from lib.ui import scope
from tests.test_pages_portfolio import metric, open_page, texts
from tests.test_queries import Seeded, seed_portfolio


@pytest.fixture
def seeded(database_url: str) -> Seeded:
    return seed_portfolio()


def pick_account(at: AppTest, connector_id: int) -> AppTest:
    """The sidebar's account picked, as a click there."""
    at.session_state[scope.ACCOUNT_KEY] = connector_id
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def card_delta(at: AppTest, label: str) -> str | None:
    return next(m.proto.delta or None for m in at.metric if m.label == label)


def card_help(at: AppTest, label: str) -> str:
    return next(m.proto.help for m in at.metric if m.label == label)


def allocation_title(at: AppTest) -> str:
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    return next(title for title in titles if title.startswith("Allocation by"))


def test_change_cards_say_deposits_count_and_how_much_came_in(seeded: Seeded) -> None:
    now = utcnow()
    with session_scope() as session:  # Alpha: 5,000 USDT in two hours ago, 1,000 out three days ago
        session.add_all([
            Transfer(connector_id=seeded.alpha_binance, transfer_id="in", type="deposit", currency="USDT",
                     amount=5000.0, status="ok", timestamp=int((now - timedelta(hours=2)).timestamp() * 1000)),
            Transfer(connector_id=seeded.alpha_binance, transfer_id="out", type="withdrawal", currency="USDT",
                     amount=1000.0, status="ok", timestamp=int((now - timedelta(days=3)).timestamp() * 1000)),
        ])
    at = open_page("overview", seeded.users["admin"], client_id=seeded.alpha)
    assert [metric(at, f"Change {w}") for w in ("24h", "7d", "30d")] == ["+$5,000.00", "+$4,000.00", "+$4,000.00"]
    for window, net in (("24h", "+$5,000.00"), ("7d", "+$4,000.00"), ("30d", "+$4,000.00")):
        said = card_help(at, f"Change {window}").replace("\\", "")  # as read: Markdown's escapes drawn
        assert "Not profit" in said and "deposits and withdrawals in the window count in it" in said
        assert f"Deposits less withdrawals in this window: {net}, each valued when it happened" in said
        ends = re.search(r"From (\S+ \S+) UTC to (\S+ \S+) UTC, by the balances", said)
        assert ends, said  # the window the change and the flows share, named
        assert (datetime.fromisoformat(ends[2]) - datetime.fromisoformat(ends[1])
                == {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}[window])
        # the change was all deposits: nothing left for trading and prices, and no "+x%" return
        assert card_delta(at, f"Change {window}") == "$0.00 net of flows"
        assert "The figure under the change takes them off" in said
    beta = open_page("overview", seeded.users["admin"], client_id=seeded.beta)
    assert "No deposit or withdrawal in this window." in card_help(beta, "Change 24h")
    assert card_delta(beta, "Change 24h") is None or card_delta(beta, "Change 24h").endswith("%")
    assert "Open derivatives positions" in card_help(at, "Total value")  # not valued on their own: said



def test_allocation_title_names_the_rings_of_each_scope(seeded: Seeded) -> None:
    assert allocation_title(open_page("overview", seeded.users["admin"])) == "Allocation by client, exchange and asset"
    alpha = open_page("overview", seeded.users["admin"], client_id=seeded.alpha)
    assert allocation_title(alpha) == "Allocation by exchange, account and asset"
    assert allocation_title(pick_account(alpha, seeded.alpha_binance)) == "Allocation by asset"
    client = open_page("overview", seeded.users["client"])  # may see Alpha alone: no client ring
    assert allocation_title(client) == "Allocation by exchange, account and asset"
    spec = next(json.loads(c.proto.spec) for c in client.get("plotly_chart") if "Allocation by" in c.proto.spec)
    assert "Alpha" not in spec["data"][0]["labels"]


def test_connector_health_counts_the_picked_account_alone(seeded: Seeded) -> None:
    with session_scope() as session:  # Alpha gets a second account, never synced
        alpha = session.get(Connector, seeded.alpha_binance)
        session.add(Connector(client_id=seeded.alpha, exchange_id="kraken", label="spare",
                              credentials_ciphertext=alpha.credentials_ciphertext))
    at = open_page("overview", seeded.users["admin"], client_id=seeded.alpha)
    assert [metric(at, label) for label in ("Fresh", "Overdue", "Failing")] == ["1", "1", "0"]
    pick_account(at, seeded.alpha_binance)
    assert [metric(at, label) for label in ("Fresh", "Overdue", "Failing")] == ["1", "0", "0"]
    assert not any("Last sync" in frame.value.columns for frame in at.dataframe)  # the spare one is not listed
    assert "Connector health" in texts(at)
