"""lib.pnl.arrays' bit picks give np.where's bits exactly (NaN, infinities and signed zeros too), and
FIFO's lookup of lot ends among the disposals' bounds gives searchsorted's answers."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lib.pnl.arrays import kept, negated, select
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
