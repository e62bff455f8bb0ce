"""lib.pnl.ledger.factorize_ids: the lookup-table factorization must give pandas' codes and ids, in
the same order, since holdings' and flows' row order follows it; likewise the Arrow path for text
columns, and the processing rank of input that is already in order (no sort)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from lib.pnl.ledger import _factorize_text, factorize_ids, processing_rank


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


@pytest.mark.parametrize(
    "column",
    [
        pd.Series(["ETH", None, "BTC", "ETH", ""], dtype="str"),  # Arrow-backed, a missing value
        # two chunks
        pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array([["b", "a"], ["a", None, "c"]])), dtype="str"),
        pd.Series(["ETH", None, "BTC"], dtype=object),  # not Arrow: pandas
        pd.Series([], dtype="str"),
    ],
)
def test_factorize_text_matches_pandas(column: pd.Series) -> None:
    codes, uniques = _factorize_text(column)
    expected_codes, expected_uniques = pd.factorize(column)
    np.testing.assert_array_equal(codes, expected_codes)
    assert uniques == list(expected_uniques)


def test_processing_rank_same_for_presorted_and_shuffled_input() -> None:
    """Sorted input skips the sort; ties (same timestamp and order) still go by id either way."""
    timestamp = np.array([1, 2, 2, 2, 5, 7, 7], np.int64)
    order = np.array([1, 0, 1, 1, 1, 1, 2], np.int8)
    ids = pd.Series(["9", "4", "12", "3", "x", "1", "0"], dtype="str")
    shuffle = np.random.default_rng(3).permutation(len(ids))
    rank = processing_rank(timestamp, order, ids)
    shuffled = processing_rank(timestamp[shuffle], order[shuffle], ids.iloc[shuffle])
    np.testing.assert_array_equal(shuffled, rank[shuffle])
    np.testing.assert_array_equal(rank, [0, 1, 3, 2, 4, 5, 6])
