"""lib.pnl on the fill store's frames: categorical text columns give exactly the figures, rows and notes
of the same fills as strings, and the fills' table worked in chunks gives those of one pass."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from lib.pnl import compute_pnl, ledger
from lib.pnl.ledger import _factorize_text

TEXT = ("symbol", "base", "quote", "side", "fee_currency")


def _fills(n: int = 300, seed: int = 5) -> pd.DataFrame:
    """Spot fills of a few assets against cash and BTC, fees in the base, the quote or BNB (some none),
    a few contract fills (some without their realised P&L) and a few fills with no USD price."""
    rng = np.random.default_rng(seed)
    base = rng.choice(["ETH", "XRP", "BNB", "SOL"], n)
    quote = rng.choice(["USDT", "BTC"], n)
    symbol = np.char.add(np.char.add(base, "/"), quote).astype(object)
    contract = np.arange(n) % 37 == 5
    symbol[contract] = "BTC/USDT:USDT"
    fee_currency = np.where(rng.random(n) < 0.5, quote, np.where(rng.random(n) < 0.5, base, "BNB")).astype(object)
    fee_currency[np.arange(n) % 11 == 3] = None
    amount = rng.uniform(0.1, 5, n)
    price = rng.uniform(1, 100, n)
    quote_usd = np.where(quote == "USDT", 1.0, 60_000.0)
    quote_usd[np.arange(n) % 53 == 7] = np.nan
    return pd.DataFrame({
        "connector_id": rng.integers(1, 4, n), "client_id": 1, "trade_id": pd.array([str(i) for i in range(n)],
                                                                                    dtype="str"),
        "timestamp": np.sort(rng.integers(0, 10**9, n)), "symbol": pd.array(symbol, dtype="str"),
        "base": pd.array(base, dtype="str"), "quote": pd.array(quote, dtype="str"),
        "side": pd.array(rng.choice(["buy", "sell"], n), dtype="str"), "amount": amount, "price": price,
        "cost": amount * price, "fee_cost": np.where(pd.isna(fee_currency), 0.0, amount * 0.001),
        "fee_currency": pd.array(fee_currency, dtype="str"), "quote_usd": quote_usd,
        "fee_usd": rng.uniform(1, 500, n), "realized_pnl": np.where(contract & (np.arange(n) % 2 == 0), 3.0, np.nan),
    })


def _categorical(fills: pd.DataFrame) -> pd.DataFrame:
    """The text columns as the fill store holds them, each with a category no row holds (a store narrowed
    to a scope keeps every category)."""
    return fills.assign(**{c: fills[c].astype("category").cat.add_categories(["ZZZ/UNUSED" if c == "symbol"
                                                                              else "ZZZ"]) for c in TEXT})


def _same(a: object, b: object) -> None:
    for field in dataclasses.fields(a):
        left, right = getattr(a, field.name), getattr(b, field.name)
        if isinstance(left, pd.DataFrame):
            pd.testing.assert_frame_equal(left, right, check_exact=True)
        else:
            assert left == right, field.name


def test_factorize_text_of_a_categorical_names_only_the_values_present() -> None:
    column = pd.Series(["ETH", None, "BTC", "ETH"], dtype="str").astype("category").cat.add_categories(["XRP"])
    codes, uniques = _factorize_text(column)
    assert [None if c < 0 else uniques[c] for c in codes] == ["ETH", None, "BTC", "ETH"]
    assert sorted(u for u in uniques if u is not None) == ["BTC", "ETH"]


@pytest.mark.parametrize("method", ["fifo", "average"])
@pytest.mark.parametrize("pool", ["scope", "connector"])
def test_categorical_text_gives_the_figures_of_strings(method: str, pool: str) -> None:
    fills = _fills()
    marks = {"ETH": 3000.0, "XRP": 0.5, "BNB": 300.0, "BTC": 60_000.0}
    as_text = compute_pnl(fills, marks=marks, method=method, pool=pool)
    _same(compute_pnl(_categorical(fills), marks=marks, method=method, pool=pool), as_text)
    assert any("contract fill(s) carry no realised P&L" in w for w in as_text.warnings)
    assert any("could not be valued in USD" in w for w in as_text.warnings)


def test_a_bad_side_in_a_categorical_is_refused() -> None:
    fills = _categorical(_fills(20))
    fills["side"] = fills["side"].cat.add_categories(["hold"])
    fills.loc[3, "side"] = "hold"
    with pytest.raises(ValueError, match="hold"):
        compute_pnl(fills, marks={})


@pytest.mark.parametrize("method", ["fifo", "average"])
def test_fills_in_chunks_give_what_one_pass_gives(method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fills = _categorical(_fills())
    marks = {"ETH": 3000.0, "BTC": 60_000.0}
    whole = compute_pnl(fills, marks=marks, method=method)
    monkeypatch.setattr(ledger, "FILL_CHUNK", 16)  # unvalued and contract fills in several chunks
    _same(compute_pnl(fills, marks=marks, method=method), whole)
