"""Prices per source: two connectors on one exchange id through different API hosts, each valued
with its own host's prices, and a connector of the exchange's own API never revalued by them.

Two simulators with different seeds (so different price paths) both speak Binance's dialect;
each connector reaches its own through an API URL override (``binance@127.0.0.1:<port>``). A
third connector has no override (source ``binance``); it cannot reach the real exchange from a
test, so its balances and prices are written as its sync would write them.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pandas as pd
import pytest
from sqlalchemy import select

from lib import equity, reports
from lib.access import SYSTEM, Role, Viewer
from lib.db import session_scope
from lib.models import BalanceSnapshot, Candle, Client, Connector, OpeningBalance, Ticker, utcnow
from lib.prices import price_source, source_words
from lib.simulator import Simulator, SimulatorConfig
from lib.sync import markets, store, sync_connectors
from lib.vault import load_vault
from tests.sync_helpers import add_connectors

DAY_MS = 86_400_000
#: what the default source (the exchange's own API) quotes, far from either simulator's path
OWN_BTC, OWN_BTC_CLOSE = 48_179.19, 47_000.0
ANALYST = Viewer("analyst-user", Role.ANALYST)


@pytest.fixture
def sims() -> Iterator[tuple[Simulator, Simulator]]:
    markets.forget()
    config = {"accounts": 1, "days": 20, "fills_per_account": 40, "dialects": ["binance"]}
    first = Simulator(SimulatorConfig(seed=11, **config)).start()
    second = Simulator(SimulatorConfig(seed=12, **config)).start()
    yield first, second
    first.stop()
    second.stop()


@dataclass(frozen=True)
class World:
    gateway: int  # connector ids
    testnet: int
    direct: int
    sources: dict[int, str]  # connector id -> price source


def _direct_connector(now_ms: int) -> int:
    """A connector of Binance's own API holding 1 BTC (an opening lot), 2 ETH and cash, with its
    source's prices (BTC only: no ETH price there) as its sync would have stored them."""
    with session_scope() as session:
        client = Client(name="Direct")
        dummy = {"apiKey": secrets.token_hex(8), "secret": secrets.token_hex(16)}
        connector = Connector(client=client, exchange_id="binance", label="main",
                              credentials_ciphertext=load_vault().encrypt(dummy), key_hint=dummy["apiKey"][-4:])
        session.add_all([client, connector])
        session.flush()
        for taken_at in (utcnow() - timedelta(hours=30), utcnow()):
            session.add_all([BalanceSnapshot(connector_id=connector.id, taken_at=taken_at, asset=asset, free=total,
                                             used=0.0, total=total)
                             for asset, total in (("BTC", 1.0), ("ETH", 2.0), ("USDT", 500.0))])
        session.add(OpeningBalance(connector_id=connector.id, asset="BTC", amount=1.0, usd_price=40_000.0,
                                   timestamp=now_ms - 30 * 3_600_000))
        direct = connector.id
    store.save_tickers("binance", "binance", [{"symbol": "BTC/USDT", "last": OWN_BTC, "bid": None, "ask": None,
                                               "timestamp": now_ms}])
    days = [now_ms // DAY_MS * DAY_MS - n * DAY_MS for n in range(1, 4)]
    store.save_candles("binance", "binance", "BTC/USDT", "1d", [[d, OWN_BTC_CLOSE, OWN_BTC_CLOSE, OWN_BTC_CLOSE,
                                                                 OWN_BTC_CLOSE, 1.0] for d in days])
    return direct


@pytest.fixture
def world(database_url: str, sims: tuple[Simulator, Simulator]) -> World:
    gateway_sim, testnet_sim = sims
    direct = _direct_connector(int(utcnow().timestamp() * 1000))
    gateway = next(iter(add_connectors(gateway_sim, client="Gateway").values()))
    testnet = next(iter(add_connectors(testnet_sim, client="Testnet").values()))
    report = sync_connectors(SYSTEM, connector_ids=[gateway, testnet])
    assert report.successful == 2, [r.error for r in report.results]
    sources = {gateway: price_source("binance", gateway_sim.accounts[0].api_url),
               testnet: price_source("binance", testnet_sim.accounts[0].api_url), direct: "binance"}
    return World(gateway, testnet, direct, sources)


def _tickers() -> dict[tuple[str, str], float]:
    with session_scope() as session:
        return {(row.source, row.symbol): float(row.last) for row in session.scalars(select(Ticker))}


def test_each_host_keeps_its_own_prices(world: World) -> None:
    gateway, testnet = world.sources[world.gateway], world.sources[world.testnet]
    assert gateway.startswith("binance@127.0.0.1:") and testnet.startswith("binance@127.0.0.1:")
    assert gateway != testnet
    lasts = _tickers()
    assert lasts[(gateway, "BTC/USDT")] != lasts[(testnet, "BTC/USDT")]  # two price paths, both kept
    assert lasts[("binance", "BTC/USDT")] == OWN_BTC  # the exchange's own price was not overwritten
    assert {source for source, _ in lasts} == {"binance", gateway, testnet}
    with session_scope() as session:
        closes = pd.DataFrame(session.execute(select(Candle.source, Candle.symbol, Candle.timestamp, Candle.close)
                                              .where(Candle.symbol == "BTC/USDT")).all(),
                              columns=["source", "symbol", "timestamp", "close"]).astype({"close": float})
    own = closes[closes["source"] == "binance"]
    assert len(own) == 3 and set(own["close"]) == {OWN_BTC_CLOSE}  # kept, not mixed with the hosts' days
    both = closes.pivot_table(index="timestamp", columns="source", values="close").dropna()
    assert not both.empty and (both[gateway] != both[testnet]).all()


def test_balances_value_each_connector_with_its_own_source(world: World) -> None:
    lasts = _tickers()
    rows = reports.balances_report(ANALYST).rows
    btc = rows[rows["asset"] == "BTC"].set_index("connector_id")
    for connector in (world.gateway, world.testnet, world.direct):
        source = world.sources[connector]
        assert btc.loc[connector, "source"] == source
        assert btc.loc[connector, "price"] == pytest.approx(lasts[(source, "BTC/USDT")])
        assert btc.loc[connector, "priced_from"] == source
        total = float(btc.loc[connector, "total"])
        assert btc.loc[connector, "usd"] == pytest.approx(total * btc.loc[connector, "price"])
    # Direct's own source has no ETH price: the hosts' median, and the row says so
    eth = rows[(rows["asset"] == "ETH") & (rows["connector_id"] == world.direct)].iloc[0]
    hosts = sorted([world.sources[world.gateway], world.sources[world.testnet]])
    ethers = [lasts[(s, "ETH/USDT")] for s in hosts]
    assert eth["price"] == pytest.approx(sum(ethers) / 2)
    assert eth["priced_from"] == "median of " + ", ".join(hosts)
    # the client's own view is the same figure as the analyst's
    mine = reports.balances_report(ANALYST, client_id=_client_of(world.direct)).rows.set_index("asset")
    assert mine.loc["BTC", "price"] == OWN_BTC and mine.loc["BTC", "priced_from"] == "binance"


def _client_of(connector_id: int) -> int:
    with session_scope() as session:
        return session.get(Connector, connector_id).client_id


def test_value_changes_use_the_connectors_own_candles(world: World) -> None:
    """Direct's 24 h ago value: its history (the opening BTC) at its own source's close then,
    though both hosts have that day too; now at its own ticker."""
    changes = equity.value_changes(ANALYST, client_id=_client_of(world.direct))
    assert changes["24h"]["left_out"] == 0 and changes["24h"]["unpriced"] == []
    assert changes["24h"]["value"] == pytest.approx(OWN_BTC_CLOSE)
    assert changes["now"]["value"] == pytest.approx(OWN_BTC)
    everyone = equity.value_changes(ANALYST)  # the hosts' 20 days of history are compared too
    assert everyone["24h"]["left_out"] == 0 and everyone["24h"]["value"] > OWN_BTC_CLOSE


@pytest.mark.parametrize("pool", ["connector", "scope"])
def test_pnl_marks_each_connectors_units_at_its_own_source(world: World, pool: str) -> None:
    lasts = _tickers()
    alone = {}
    for connector in (world.gateway, world.testnet, world.direct):
        report = reports.pnl_report(None, ANALYST, connector_id=connector)
        assert report.marks["BTC"] == pytest.approx(lasts[(world.sources[connector], "BTC/USDT")])
        alone[connector] = report.result.per_asset.set_index("asset").loc["BTC", "market_value"]
    assert alone[world.direct] == pytest.approx(OWN_BTC)  # its opening lot, at its own source's price
    pooled = reports.pnl_report(None, ANALYST, pool=pool)
    btc = pooled.result.per_asset.set_index("asset").loc["BTC"]
    # pooled, every connector's BTC is still worth what its own source quotes
    assert btc["market_value"] == pytest.approx(sum(alone.values()), rel=1e-9)
    note = next(w for w in pooled.result.warnings if w.startswith("BTC is priced per account"))
    assert all(source_words(source) in note for source in world.sources.values())


def test_open_orders_compare_with_their_own_hosts_last_price(world: World) -> None:
    lasts = _tickers()
    orders, _ = reports.orders_report(ANALYST)
    assert not orders.empty
    for row in orders.itertuples():
        expected = lasts.get((world.sources[int(row.connector_id)], row.symbol))
        assert (math.isnan(row.last) if expected is None else row.last == pytest.approx(expected))
    assert set(orders["source"]) <= {world.sources[world.gateway], world.sources[world.testnet]}
