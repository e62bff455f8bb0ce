"""lib.pnl.arrays' bit picks give np.where's bits exactly (NaN, infinities and signed zeros too),
FIFO's lookup of lot ends among the disposals' bounds gives searchsorted's answers, and sides read
from Arrow's buffers are the values' own."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lib.pnl.arrays import kept, negated, select
from lib.pnl.ledger import _sides
from lib.pnl.matching import _lots_at

FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -0.0, float("nan"), -float("nan")])


def bits(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).tobytes()


@st.composite
def picks(draw: st.DrawFn, dtype: type) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = draw(st.integers(0, 60))
    elements = FLOATS if dtype is np.float64 else None
    a = draw(hnp.arrays(dtype, n, elements=elements))
    b = draw(hnp.arrays(dtype, n, elements=elements))
    return draw(hnp.arrays(np.bool_, n)), a, b


@settings(max_examples=200)
@given(picks(np.float64))
def test_float_picks_are_np_where_bit_for_bit(case: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    mask, a, b = case
    assert bits(select(mask, a, b)) == bits(np.where(mask, a, b))
    assert bits(kept(mask, a)) == bits(np.where(mask, a, 0.0))
    assert bits(negated(mask, a)) == bits(np.where(mask, np.negative(a), a))
    inplace = a.copy()
    kept(mask, inplace, inplace=True)
    assert bits(inplace) == bits(np.where(mask, a, 0.0))


@settings(max_examples=100)
@given(picks(np.int32), picks(np.bool_))
def test_integer_and_bool_picks_are_np_where(ints: tuple, flags: tuple) -> None:
    mask, a, b = ints
    assert select(mask, a, b).dtype == np.int32
    assert (select(mask, a, b) == np.where(mask, a, b)).all()
    mask, a, b = flags
    assert (select(mask, a, b) == np.where(mask, a, b)).all()


@settings(max_examples=200)
@given(st.lists(st.sampled_from([0.5, 1.0, 1e-20, 2.0, 3.0]), min_size=1, max_size=30),
       st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0, 1e-20, 2.0]), min_size=1, max_size=60))
def test_lot_ends_among_bounds_match_searchsorted(units: list[float], steps: list[float]) -> None:
    """Bounds that never decrease (each range starts at or after the last one ended), with ties at lot
    ends and ends that round to one another (1e-20 added to 1.0)."""
    ends = np.cumsum(units)
    edges = np.minimum(np.cumsum([0.0, *steps]), ends[-1])
    lo, hi = edges[:-1], edges[1:]
    keep = hi > lo
    lo, hi = lo[keep], hi[keep]
    first, last = _lots_at(ends, lo, hi)
    assert (first == np.searchsorted(ends, lo, side="right")).all()
    assert (last == np.searchsorted(ends, hi, side="left")).all()


@settings(max_examples=200)
@given(st.lists(st.sampled_from(["buy", "sell", "buy", "sell", "Buy", "buyer", "sel", "bu", "", None]), max_size=12),
       st.integers(0, 3), st.booleans())
def test_sides_from_arrow_buffers_match_the_values(values: list, cut: int, chunked: bool) -> None:
    """Values at the very end of the data buffer, sliced and chunked columns, and anything but
    'buy'/'sell' refused, as the plain comparison does."""
    text = pa.array(values, pa.large_string()).slice(min(cut, len(values)))
    array = pa.chunked_array([text, text]) if chunked else text
    column = pd.Series(pd.arrays.ArrowStringArray(array), dtype="str")
    as_text = column.tolist()
    if all(v in ("buy", "sell") for v in as_text):
        assert _sides(column).tolist() == [v == "buy" for v in as_text]
    else:
        with pytest.raises(ValueError, match="fill side"):
            _sides(column)
