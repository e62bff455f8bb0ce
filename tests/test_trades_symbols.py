"""queries.fill_symbols (the Trades page's symbol filter) walks the (connector, symbol, trade id)
index one symbol at a time: it lists exactly what a DISTINCT over every fill in scope lists, for
every client, account and role, including symbols one account alone traded and accounts with none."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from lib import queries
from lib.db import session_scope
from lib.models import Client, Connector, Trade
from tests.test_queries import Seeded, _connector, ms, seed_portfolio


@pytest.fixture
def seeded(database_url: str) -> Seeded:
    seeded = seed_portfolio()
    with session_scope() as session:
        alpha = session.get(Client, seeded.alpha)
        session.add(_connector(alpha, "okx"))  # an account with no fills
        session.add_all([  # "AAA/USDT" sorts before every other symbol; one account alone trades "ZZZ/USDC"
            Trade(connector_id=seeded.beta_okx, trade_id=f"S{n}", timestamp=ms("2024-03-01"), symbol=symbol,
                  base=symbol.split("/")[0], quote=symbol.split("/")[1], side="buy", amount="1", price="1", cost="1")
            for n, symbol in enumerate(["AAA/USDT", "ZZZ/USDC", "ZZZ/USDC", "BTC/USDT"])])
    return seeded


def _distinct(session: object, ids: list[int] | None) -> list[str]:
    query = select(Trade.symbol).distinct().order_by(Trade.symbol)
    return list(session.scalars(query if ids is None else query.where(Trade.connector_id.in_(ids))))


def test_symbols_are_those_a_distinct_read_finds_in_every_scope(seeded: Seeded) -> None:
    with session_scope() as session:
        connectors = list(session.scalars(select(Connector.id)))
        for role in ("admin", "client"):
            viewer = seeded.viewer(role)
            scopes = [(None, None), (seeded.alpha, None), (seeded.beta, None)] + [(None, c) for c in connectors]
            for client_id, connector_id in scopes:
                ids = queries.connector_ids(session, viewer, client_id, connector_id)
                expected = [] if ids == [] else _distinct(session, ids)
                assert queries.fill_symbols(session, viewer, client_id, connector_id) == expected, \
                    (role, client_id, connector_id)
        every = queries.fill_symbols(session, seeded.viewer("admin"))
        beta = queries.fill_symbols(session, seeded.viewer("admin"), seeded.beta)
    assert every[0] == "AAA/USDT" and "ZZZ/USDC" in every and len(every) == len(set(every))
    assert "ZZZ/USDC" in beta and "BNB/USDT" not in beta
