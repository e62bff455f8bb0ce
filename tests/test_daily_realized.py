"""The P&L summary's daily realized continued from kept disposals (lib.reports._daily_realized):
always the frame a full sum gives, bit for bit, whether the disposals continue kept ones (a
resumed P&L state's), reach back into their last days, go back in time, hold a NaN gain,
or differ from them in one bit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lib import reports

DAY = 86_400_000


@pytest.fixture(autouse=True)
def nothing_kept() -> None:
    reports._DAILY.clear()


def _disposals(rng: np.random.Generator, count: int, start: int, days: int) -> pd.DataFrame:
    timestamps = np.sort(rng.integers(start, start + days * DAY, count))
    return pd.DataFrame({"timestamp": timestamps.astype(np.int64), "asset": "BTC",
                         "gain": rng.normal(0, 1000, count) * rng.random(count) ** 3})


def _assert_full(disposals: pd.DataFrame) -> pd.DataFrame:
    found = reports._daily_realized(disposals)
    pd.testing.assert_frame_equal(found, reports._daily_sums(disposals), check_exact=True)
    return found


def test_continued_disposals_sum_as_in_full() -> None:
    rng = np.random.default_rng(3)
    first = _disposals(rng, 20_000, 1_700_000_000_000, 300)
    _assert_full(first)
    later = _disposals(rng, 50, int(first["timestamp"].iloc[-1]), 2)  # the last day again, and the next
    grown = pd.concat([first, later], ignore_index=True)
    kept = reports._DAILY.values()[-1]
    found = _assert_full(grown)
    assert len(found) > len(kept.daily) - 1 and reports._DAILY.values()[-1].daily is not kept.daily
    assert _assert_full(grown) is not None  # the same disposals again: the kept days


def test_a_changed_gain_or_earlier_row_sums_everything_again() -> None:
    rng = np.random.default_rng(5)
    first = _disposals(rng, 5_000, 1_700_000_000_000, 100)
    _assert_full(first)
    changed = first.copy()
    changed.loc[10, "gain"] = np.nextafter(changed.loc[10, "gain"], np.inf)  # one bit
    grown = pd.concat([changed, _disposals(rng, 5, int(first["timestamp"].iloc[-1]), 1)], ignore_index=True)
    _assert_full(grown)
    back = pd.concat([first, _disposals(rng, 5, 1_700_000_000_000, 3)], ignore_index=True)  # out of time order
    _assert_full(back)
    nan = pd.concat([first, pd.DataFrame({"timestamp": [int(first["timestamp"].iloc[-1]) + 1], "asset": ["BTC"],
                                          "gain": [np.nan]})], ignore_index=True)
    _assert_full(nan)
    _assert_full(first.iloc[:0])
