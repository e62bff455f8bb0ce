"""The equity curve's sums per price source and asset (lib.equity._held_by_source): summed down
each group's keys, bit for bit what a per-cell running sum over every (key, moment) gives (the
reference below, its earlier form), with keys before their first move, dust, NaN and groups of
many keys in every order."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from lib import equity


def _reference(history: SimpleNamespace, times: np.ndarray, sources: dict[int, str], codes: np.ndarray,
               balance: np.ndarray, turnover: np.ndarray) -> pd.DataFrame:
    index = history.index
    code, moment = np.repeat(codes, len(times)), np.tile(times, len(codes))
    balance, turnover = balance.ravel(), turnover.ravel()
    key_source = pd.Series(index.connector).map(sources).fillna("").to_numpy(object)
    group, pairs = pd.MultiIndex.from_arrays([key_source, index.asset]).factorize()
    key_first = history.first.reindex(index.connector).to_numpy(float)
    counted = moment >= key_first[code]
    balance = np.where(np.abs(balance) > equity.DUST * turnover, balance, 0.0)[counted]
    slot = np.tile(np.arange(len(times)), len(code) // len(times))[counted]
    cell = group[code[counted]] * len(times) + slot
    size = len(pairs) * len(times)
    where = np.flatnonzero(np.bincount(cell, minlength=size) > 0)
    return pd.DataFrame({
        "source": pairs.get_level_values(0).to_numpy(object)[where // len(times)],
        "asset": pairs.get_level_values(1).to_numpy(object)[where // len(times)],
        "moment": times[where % len(times)],
        "balance": np.bincount(cell, weights=balance, minlength=size)[where],
        "holders": np.bincount(cell, weights=balance != 0, minlength=size)[where],
    })


@pytest.mark.parametrize(("seed", "moments"), [(1, 40), (2, 40), (3, 40), (4, 1)])
def test_sums_down_the_keys_are_the_running_sums(seed: int, moments: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(seed)
    connectors, assets = 60, ["BTC", "ETH", "USDT", "SOL", "XYZ"]
    connector = np.repeat(np.arange(1, connectors + 1), len(assets))
    connector = connector[rng.permutation(len(connector))]  # keys of one group far apart, in any order
    asset = np.array(assets * connectors, dtype=object)[rng.permutation(len(connector))]
    index = SimpleNamespace(connector=connector, asset=asset)
    times = np.sort(rng.choice(np.arange(1_000, 100_000, 7), moments, replace=False)).astype(np.int64)
    first = pd.Series(rng.integers(0, 120_000, connectors), index=np.arange(1, connectors + 1), dtype=np.int64)
    ids = sorted(rng.choice(np.arange(1, connectors + 1), connectors - 5, replace=False).tolist())
    first = first[first.index.isin(ids)]  # the others: not in scope (NaN first move)
    codes = np.sort(rng.choice(len(connector), len(connector) - 20, replace=False))
    balance = rng.normal(0, 1e4, (len(codes), moments)) * rng.random((len(codes), moments)) ** 4
    balance[rng.random(balance.shape) < 0.2] = 0.0
    balance[rng.random(balance.shape) < 0.01] = np.nan
    turnover = np.abs(balance) * rng.choice([1.0, 1e12], balance.shape, p=[0.9, 0.1])  # some dust
    sources = {c: ("binance", "okx", "kraken")[c % 3] for c in range(1, connectors)}  # one without a source
    monkeypatch.setattr(equity, "_grid", lambda *args: (codes, balance.copy(), turnover.copy()))
    history = SimpleNamespace(index=index, ids=ids, first=first)
    found = equity._held_by_source(history, times, sources)  # type: ignore[arg-type]
    expected = _reference(history, times, sources, codes, balance, turnover)
    assert len(found) > 10 * moments
    pd.testing.assert_frame_equal(found, expected, check_exact=True)
