"""lib.prices: marks from tickers, as-of prices from candles, routes, price sources."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lib.prices import (
    DEFAULT_USD_LIKE,
    add_fill_usd,
    add_transfer_usd,
    marks_by_source,
    marks_from_tickers,
    own_marks,
    pooled_marks,
    price_source,
    split_symbol,
    usd_at,
    usd_at_sources,
    usd_quotes,
)

CANDLES = pd.DataFrame(
    [
        ("BTC/USDT", 1000, 40000.0),
        ("BTC/USDT", 2000, 50000.0),
        ("BTC/USDT:USDT", 1000, 1.0),
        ("ETH/BTC", 1000, 0.05),
        ("ETH/BTC", 3000, 0.06),
        ("BNB/ETH", 500, 0.1),
        ("ETH/USDC", 500, 2000.0),
        ("SOL/USDT", 1500, 100.0),
        ("SOL/BUSD", 1000, 90.0),
        ("USDT/DAI", 1000, 0.5),
    ],
    columns=["symbol", "timestamp", "close"],
)


def test_split_symbol_and_quote_order() -> None:
    assert split_symbol("BTC/USDT") == ("BTC", "USDT")
    assert split_symbol("BTC/USDT:USDT") == ("BTC", "USDT")
    assert usd_quotes(DEFAULT_USD_LIKE)[:3] == ["USDT", "USDC", "USD"]
    assert usd_quotes({"ZUSD", "USDT"}) == ["USDT", "ZUSD"]


def test_marks_direct_then_bridges_and_cash_is_one() -> None:
    tickers = {
        "BTC/USDT": 60000.0,
        "ETH/BTC": 0.05,
        "XRP/ETH": 0.0002,
        "ETH/USDT": 3000.0,
        "USDT/USD": 0.98,
        "DOGE/BTC": None,
        "PEPE/USDT": 0.0,
        "PERP/USDT:USDT": 5.0,
    }
    marks = marks_from_tickers(tickers, ["BTC", "ETH", "XRP", "USDT", "DOGE", "PEPE", "PERP", "BTC"])
    assert marks == {"BTC": 60000.0, "ETH": 3000.0, "XRP": pytest.approx(0.0002 * 3000.0), "USDT": 1.0}


def test_marks_via_btc_when_no_direct_pair_and_from_a_frame() -> None:
    tickers = pd.DataFrame({"symbol": ["BTC/USDC", "ETH/BTC"], "last": [50000.0, 0.04]})
    assert marks_from_tickers(tickers, ["ETH"]) == {"ETH": pytest.approx(2000.0)}
    assert marks_from_tickers(tickers, ["ETH"], usd_like=frozenset({"USDT"})) == {}


def test_usd_at_is_as_of_the_latest_candle_at_or_before() -> None:
    assets = ["BTC", "BTC", "BTC", "BTC", "USDT", "DAI", None]
    times = [999, 1000, 1999, 2500, 5, 5, 1000]
    got = usd_at(CANDLES, assets, times)
    np.testing.assert_allclose(got, [np.nan, 40000.0, 40000.0, 50000.0, 1.0, 1.0, np.nan])


def test_usd_at_routes() -> None:
    got = usd_at(CANDLES, ["ETH", "ETH", "BNB", "SOL", "SOL", "XRP"], [1500, 3000, 600, 1200, 1600, 2000])
    # ETH: no direct USD-like candle before 1500 except ETH/USDC at 500, which is direct and wins
    np.testing.assert_allclose(got[:2], [2000.0, 2000.0])
    assert got[2] == pytest.approx(0.1 * 2000.0)  # BNB via ETH
    assert got[3] == pytest.approx(90.0)  # SOL/USDT starts at 1500, so BUSD fills in before it
    assert got[4] == pytest.approx(100.0)  # USDT preferred once it exists
    assert math.isnan(got[5])


def test_usd_at_via_btc() -> None:
    candles = pd.DataFrame({"symbol": ["BTC/USDT", "ETH/BTC"], "timestamp": [0, 0], "close": [50000.0, 0.05]})
    assert usd_at(candles, ["ETH"], [10])[0] == pytest.approx(2500.0)


def test_add_fill_and_transfer_usd() -> None:
    fills = pd.DataFrame(
        {
            "timestamp": [1000, 2000, 2000],
            "quote": ["USDT", "BTC", "BTC"],
            "fee_currency": ["BTC", None, "DOGE"],
            "fee_cost": [0.001, 0.0, 1.0],
        }
    )
    out = add_fill_usd(fills, CANDLES)
    np.testing.assert_allclose(out["quote_usd"], [1.0, 50000.0, 50000.0])
    np.testing.assert_allclose(out["fee_usd"], [40000.0, np.nan, np.nan])
    assert "quote_usd" not in fills.columns  # the input is not modified
    transfers = pd.DataFrame({"timestamp": [1500, 1500], "currency": ["BTC", "USDC"]})
    np.testing.assert_allclose(add_transfer_usd(transfers, CANDLES)["usd"], [40000.0, 1.0])
    opening = pd.DataFrame({"timestamp": [3000], "asset": ["ETH"]})
    assert add_transfer_usd(opening, CANDLES, asset_column="asset")["usd"].iloc[0] == pytest.approx(2000.0)


def test_cash_is_never_priced_from_data() -> None:
    # USDT/DAI says 0.5, but both are cash: exactly 1.0
    assert usd_at(CANDLES, ["USDT"], [2000])[0] == 1.0
    assert marks_from_tickers({"USDT/DAI": 0.5}, ["USDT"]) == {"USDT": 1.0}


def test_price_path_is_what_the_sync_fetches_and_the_marks_use() -> None:
    from lib.prices import price_path

    symbols = {"BTC/USDT", "ETH/BTC", "SOL/USDC", "SOL/USDT", "XYZ/ETH"}
    assert price_path("USDT", symbols) == ()
    assert price_path("SOL", symbols) == ("SOL/USDT",)  # the most liquid quote first
    assert price_path("ETH", symbols) == ("ETH/BTC", "BTC/USDT")
    assert price_path("XYZ", symbols) is None  # ETH itself has no USD leg here
    assert price_path("XYZ", symbols | {"ETH/USDC"}) == ("XYZ/ETH", "ETH/USDC")


def test_price_source_is_exchange_host_and_sandbox_in_one_canonical_string() -> None:
    assert price_source("binance") == "binance"  # the exchange's own public API
    assert price_source("binance", None, True) == "binance#sandbox"
    assert price_source("binance", "http://127.0.0.1:8900/binance") == "binance@127.0.0.1:8900"
    assert price_source("binance", "http://localhost:8900/binance") == "binance@localhost:8900"
    # host only: lower-cased, default port, path and credentials dropped; paths on one host are one source
    assert price_source("okx", "HTTPS://User:pw@GW.Example.com:443/okx/", True) == "okx@gw.example.com#sandbox"
    assert price_source("okx", "https://gw.example.com/other") == "okx@gw.example.com"
    assert price_source("okx", "http://gw.example.com:443") == "okx@gw.example.com:443"  # not http's default
    assert price_source("bybit", "http://[::1]:80/bybit") == "bybit@[::1]"
    assert price_source("bybit", "http://[::1") == "bybit@[::1"  # a malformed stored URL still names a source


SOURCES = pd.DataFrame([
    ("binance", "BTC/USDT", 48000.0), ("binance@gw:1", "BTC/USDT", 75000.0), ("binance@gw:1", "ETH/USDT", 3000.0),
    ("okx", "BTC/USDT", 47000.0), ("okx", "ETH/USDT", 2900.0), ("okx", "XRP/USDT", None),
], columns=["source", "symbol", "last"])


def test_own_marks_keep_sources_apart_and_name_a_fallback() -> None:
    marks = marks_by_source(SOURCES, ["BTC", "ETH", "XRP", "USDT"])
    assert marks["binance"] == {"BTC": 48000.0, "USDT": 1.0}
    price, origin = own_marks(marks, ["binance", "binance@gw:1", "binance", "okx", "binance", "nowhere"],
                              ["BTC", "BTC", "ETH", "ETH", "USDT", "XRP"])
    np.testing.assert_allclose(price[:5], [48000.0, 75000.0, 2950.0, 2900.0, 1.0])
    assert math.isnan(price[5])
    assert origin == ["binance", "binance@gw:1", "median of binance@gw:1, okx", "okx", "", ""]


def test_pooled_marks_weight_each_sources_price_by_its_units_and_say_so() -> None:
    marks = marks_by_source(SOURCES, ["BTC", "ETH"])
    held = pd.DataFrame([("binance", "BTC", 1.0), ("binance@gw:1", "BTC", 3.0), ("okx", "BTC", 0.0),
                         ("okx", "ETH", 2.0), ("okx", "ETH", 2.0)], columns=["source", "asset", "units"])
    pooled, notes = pooled_marks(marks, held, ["BTC", "ETH", "SOL"])
    assert pooled["BTC"] == pytest.approx((48000.0 + 3 * 75000.0) / 4)  # okx holds none: no weight
    assert pooled["ETH"] == 2900.0 and "SOL" not in pooled
    assert notes == ["BTC is priced per account from its own source: binance 48,000.00 (1 BTC); binance via gw:1 "
                     "75,000.00 (3 BTC); the P&L values it at their average weighted by units, 68,250.00."]
    nobody, _ = pooled_marks(marks, held.iloc[:0], ["BTC"])
    assert nobody["BTC"] == 48000.0  # held nowhere: the median over sources


def test_usd_at_sources_prices_each_row_from_its_own_candles() -> None:
    candles = pd.DataFrame([("binance", "BTC/USDT", 1000, 40000.0), ("gw", "BTC/USDT", 1000, 70000.0),
                            ("gw", "ETH/USDT", 1000, 3000.0), ("okx", "ETH/USDT", 1000, 2000.0)],
                           columns=["source", "symbol", "timestamp", "close"])
    got = usd_at_sources(candles, ["binance", "gw", "binance", "gw"], ["BTC", "BTC", "ETH", "ETH"],
                         [1500, 1500, 1500, 500])
    np.testing.assert_allclose(got[:3], [40000.0, 70000.0, 2500.0])  # binance has no ETH: the others' median
    assert math.isnan(got[3])  # no candle that old anywhere
    alone = usd_at_sources(candles, ["binance"], ["ETH"], [1500], others=False)
    assert math.isnan(alone[0])
    fills = pd.DataFrame({"source": ["binance", "gw"], "timestamp": [1500, 1500], "quote": ["BTC", "BTC"],
                          "fee_currency": [None, "ETH"], "fee_cost": [0.0, 1.0]})
    out = add_fill_usd(fills, candles)
    np.testing.assert_allclose(out["quote_usd"], [40000.0, 70000.0])
    np.testing.assert_allclose(out["fee_usd"], [np.nan, 3000.0])


def test_price_sources_read_as_words() -> None:
    from lib.prices import price_source, source_words

    assert source_words(price_source("binance")) == "binance"
    assert source_words(price_source("okx", "https://gw.example.com:8443/api")) == "okx via gw.example.com:8443"
    assert source_words(price_source("binance", None, sandbox=True)) == "binance sandbox"
    assert source_words("median of binance@127.0.0.1:8900, okx#sandbox") == \
        "median of binance via 127.0.0.1:8900, okx sandbox"
