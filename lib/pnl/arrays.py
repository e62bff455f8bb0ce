"""Exact, branch-free stand-ins for ``np.where`` over the engine's million-row arrays.

``np.where`` with a mask that changes from row to row (buys and sells, acquisitions and disposals
interleaved) costs ~4 ms a million rows in branch mispredictions; picking the bits through an
integer mask costs a quarter of that and gives the same bits (NaN payloads and signed zeros too).
"""

from __future__ import annotations

import numpy as np

_INTS = {1: np.int8, 2: np.int16, 4: np.int32, 8: np.int64}


def _mask(mask: np.ndarray, size: int) -> np.ndarray:
    """All ones where ``mask``, zeros elsewhere, as signed integers of ``size`` bytes."""
    bits = mask.astype(_INTS[size])
    np.negative(bits, out=bits)
    return bits


def select(mask: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.where(mask, a, b)`` for two arrays of one numeric or bool dtype, bit for bit."""
    if a.dtype == np.bool_:
        return (mask & a) | (b & ~mask)
    size = a.dtype.itemsize
    ints = _INTS[size]
    ai, bi = a.view(ints), b.view(ints)
    out = np.bitwise_xor(ai, bi)
    out &= _mask(mask, size)
    out ^= bi
    return out.view(a.dtype)


def kept(mask: np.ndarray, a: np.ndarray, *, inplace: bool = False) -> np.ndarray:
    """``np.where(mask, a, 0)`` for a float64 array (+0.0 where not ``mask``), bit for bit; with
    ``inplace``, ``a[~mask] = 0.0`` (a boolean assignment over many rows takes several times longer)."""
    bits = _mask(mask, 8)
    if inplace:
        a.view(np.int64)[...] &= bits
        return a
    bits &= a.view(np.int64)
    return bits.view(np.float64)


def negated(mask: np.ndarray, a: np.ndarray) -> np.ndarray:
    """A float64 array's values negated where ``mask`` (its sign bit flipped, as ``np.negative`` does),
    as a new array."""
    out = mask.astype(np.int64)
    out <<= 63
    out ^= a.view(np.int64)
    return out.view(np.float64)
