"""Exact, branch-free stand-ins for ``np.where`` over the engine's million-row arrays.

``np.where`` with a mask that changes from row to row (buys and sells, acquisitions and disposals
interleaved) costs ~4 ms a million rows in branch mispredictions; picking the bits by an integer
multiply with the mask (x 1 keeps them, x 0 clears them) costs a quarter of that, makes no mask
temporary and gives the same bits (NaN payloads and signed zeros too).
"""

from __future__ import annotations

import numpy as np

_INTS = {1: np.int8, 2: np.int16, 4: np.int32, 8: np.int64}


def select(mask: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.where(mask, a, b)`` for two arrays of one numeric or bool dtype, bit for bit."""
    if a.dtype == np.bool_:
        return (mask & a) | (b & ~mask)
    ints = _INTS[a.dtype.itemsize]
    ai, bi = a.view(ints), b.view(ints)
    out = np.bitwise_xor(ai, bi)
    np.multiply(out, mask, out=out)
    out ^= bi
    return out.view(a.dtype)


def kept(mask: np.ndarray, a: np.ndarray, *, inplace: bool = False) -> np.ndarray:
    """``np.where(mask, a, 0)`` for a float64 array (+0.0 where not ``mask``), bit for bit; with
    ``inplace``, ``a[~mask] = 0.0`` (a boolean assignment over many rows takes several times longer)."""
    bits = a.view(np.int64)
    return np.multiply(bits, mask, out=bits if inplace else None).view(np.float64)


def negated(mask: np.ndarray, a: np.ndarray) -> np.ndarray:
    """A float64 array's values negated where ``mask`` (its sign bit flipped, as ``np.negative`` does),
    as a new array."""
    out = np.left_shift(mask, 63, dtype=np.int64)
    out ^= a.view(np.int64)
    return out.view(np.float64)
