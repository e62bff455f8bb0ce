"""lib.pnl.ledger.factorize_ids: the lookup-table factorization must give pandas' codes and ids, in
the same order, since holdings' and flows' row order follows it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lib.pnl.ledger import factorize_ids


@pytest.mark.parametrize(
    "ids",
    [
        np.array([7, 3, 7, 7, 1, 3, 9], np.int64),  # few connectors, first appearance not sorted
        np.array([5, -1, 5, 2, -1], np.int64),  # the -1 of a resumed state's carried lots
        np.random.default_rng(1).integers(0, 200, 5_000),  # more than 64 distinct: pandas
        np.array([2, 10**12, 2, 3], np.int64),  # a range too wide for a table: pandas
        np.zeros(0, np.int64),
    ],
)
def test_factorize_ids_matches_pandas(ids: np.ndarray) -> None:
    codes, uniques = factorize_ids(ids)
    expected_codes, expected_uniques = pd.factorize(ids)
    np.testing.assert_array_equal(codes, expected_codes)
    np.testing.assert_array_equal(uniques, expected_uniques)
    assert codes.dtype == np.intp and uniques.dtype == np.int64
