"""Lot matching over sorted events, FIFO or average cost, without a Python loop per event.

Within a segment (one pool of one asset), with ``A`` the cumulative units acquired and
``U`` the cumulative units disposed (withdrawals count as disposals here):

- ``s = running max of max(0, U - A)`` is the cumulative shortfall: units disposed with
  no lot to take them from. They get zero basis and are reported as unmatched.
- ``pos = U - s`` is how far into the acquisition queue disposals have eaten, and
  ``held = A - pos`` is the pool's quantity. Both methods share these numbers.
- FIFO: a disposal takes queue positions ``(pos_{k-1}, pos_k]``; ``searchsorted`` on the
  lots' cumulative units finds the lots at both ends (the piecewise-linear cumulative
  cost function). End pieces are priced at their lot's unit cost, whole lots in between
  are summed exactly with ``reduceat`` (a difference of cumulative costs would lose
  precision against a long history).
- Average cost: the pool's cost follows ``C_k = C_{k-1} * held_k / held_{k-1} + b_k``.
  Disposals leave the unit cost unchanged, so the recurrence is run over acquisitions
  only (``C_m = C_{m-1} * shrink_m + b_m``, shrink = pool units before acquisition m over
  units after acquisition m-1, 0 when the pool emptied), solved by a recursive-doubling
  scan (log2 n vectorised passes); a disposal takes ``matched x C_m / held_m`` of its
  latest acquisition m.

Cumulative sums are exact per segment (one numpy call per segment, not per event).
Float round-off can leave dust such as 5e-17 units; anything below ``DUST`` times the
segment's turnover so far is treated as zero, so "sold everything" really is everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from lib.pnl.arrays import kept
from lib.pnl.ledger import ACQUIRE, OPENING, Events

Method = Literal["fifo", "average"]
DUST = 1e-10  # relative to cumulative units acquired + disposed in the segment


@dataclass(frozen=True)
class Matched:
    basis: np.ndarray  # per event: cost basis taken by a disposal or withdrawal (0 for acquisitions)
    unmatched: np.ndarray  # per event: units disposed with no lot behind them (zero basis)
    quantity: np.ndarray  # per segment: units held at the end
    cost: np.ndarray  # per segment: remaining cost basis
    opening: np.ndarray  # per segment: units held that came from opening lots
    ghost: np.ndarray | None = None  # per segment: held before the dust rule minus held, at the end


def _spans(starts: np.ndarray, n: int) -> zip:
    return zip(starts.tolist(), np.append(starts[1:], n).tolist(), strict=True)


def _accumulate(ufunc: np.ufunc, x: np.ndarray, starts: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Segmented ``ufunc.accumulate`` (cumsum, running max), exact within each segment; ``out=x`` runs
    in place (each element is read before it is written: no copy is made)."""
    out = np.empty_like(x) if out is None else out
    for lo, hi in _spans(starts, len(x)):
        ufunc.accumulate(x[lo:hi], axis=0, out=out[lo:hi])
    return out


def _running_max(x: np.ndarray, starts: np.ndarray) -> None:
    """Segmented running maximum, in place; a segment already in order (queue positions, as a rule)
    is left as it is: one comparison pass instead of the running maximum's sequential one."""
    for lo, hi in _spans(starts, len(x)):
        part = x[lo:hi]
        if not (part[1:] >= part[:-1]).all():
            np.maximum.accumulate(part, out=part)


def _less_previous(x: np.ndarray, starts: np.ndarray, block: int = 1 << 16) -> None:
    """Each value less the one at the previous event of the same segment (less 0 at a segment's first),
    in place: from the end a block at a time, each block less a copy of the block one place before it
    (not yet changed), so no full-length temporary is made."""
    first = x[starts]  # a copy: a segment's first value stays
    for hi in range(len(x), 1, -block):
        lo = max(hi - block, 1)
        x[lo:hi] -= x[lo - 1 : hi - 1].copy()
    x[starts] = first


def affine_scan(alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Solve ``x_k = alpha_k * x_{k-1} + beta_k`` (``x_{-1} = 0``) by recursive doubling.

    ``beta`` may be 2-D (one column per quantity carried). Each pass composes every
    element's affine map with the one ``step`` earlier; it stops once every map reaches a
    zero multiplier (a segment start) or the array start. With ``alpha`` in [0, 1] and
    ``beta`` >= 0 all terms are non-negative, so there is no cancellation.
    """
    return _affine_scan(alpha.astype(np.float64), beta.astype(np.float64))


def _affine_scan(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``affine_scan`` of float64 ``alpha`` and ``beta`` in their own arrays (both are overwritten; the
    result is ``x``): two copies fewer where the caller's arrays are its own temporaries. A 1-D ``x``
    passes through one scratch array (each pass's product, then the multipliers it composes with)
    instead of two fresh temporaries a pass."""
    n, step = len(a), 1
    scratch = np.empty(n) if x.ndim == 1 else None
    while step < n and a[step:].any():
        if scratch is None:
            x[step:] += a[step:].reshape((-1,) + (1,) * (x.ndim - 1)) * x[:-step]
            a[step:] *= a[:-step]
        else:
            part = scratch[: n - step]
            np.multiply(a[step:], x[:-step], out=part)
            x[step:] += part
            np.copyto(part, a[:-step])  # the multipliers before this pass: ``a`` is overwritten in place
            a[step:] *= part
        step *= 2
    return x


def _lots_at(ends: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each (lo, hi]: the lot holding ``lo`` (ends <= lo, counted) and the lot holding ``hi``
    (ends < hi), as ``searchsorted`` right and left would give them.

    A disposal's range starts where the one before it ended, so the bounds in turn (lo as the least
    float above it, which counts the same ends) never decrease: then each lot end is looked up among
    the bounds instead (fewer look-ups, in a shorter array) and counted into place. Queue positions
    are not negative, so the float above is the next bit pattern (a fifth of ``np.nextafter``'s time;
    a NaN or infinity breaks the order and takes the searches)."""
    bounds = np.empty(2 * len(lo))
    bounds[0::2] = (lo.view(np.int64) + 1).view(np.float64)
    bounds[1::2] = hi
    if len(bounds) <= len(ends) or not (bounds[1:] >= bounds[:-1]).all():
        return np.searchsorted(ends, lo, side="right"), np.searchsorted(ends, hi, side="left")
    counts = np.bincount(np.searchsorted(bounds, ends, side="right"), minlength=len(bounds) + 1)
    below = np.cumsum(counts[:-1])  # per bound: lot ends below it
    return below[0::2], below[1::2]


def _taken(ends: np.ndarray, starts: np.ndarray, unit_cost: np.ndarray, cost: np.ndarray, lo: np.ndarray,
           hi: np.ndarray) -> np.ndarray:
    """Basis of taking queue positions (lo, hi] from lots with these cumulative units at their ends and
    starts, unit costs and costs.

    The two end pieces are priced at their lot's unit cost and whole lots in between are
    summed with ``reduceat``, so the error is relative to the disposal, not to history.
    """
    first, last = _lots_at(ends, lo, hi)
    np.minimum(first, len(ends) - 1, out=first)  # lot holding lo
    single = first == last
    # the piece of the first lot taken, at its unit cost: up to hi when one lot holds the range (then
    # its end is not below hi), else up to that lot's end (then below hi)
    basis = np.minimum(hi, ends[first])
    basis -= lo
    basis *= unit_cost[first]
    piece = hi - starts[last]  # from where the last lot starts
    piece *= unit_cost[last]
    basis += kept(~single, piece)
    middle = ~single & (last > first + 1)
    if middle.any():
        bounds = np.column_stack([first[middle] + 1, last[middle]]).ravel()
        basis[middle] += np.add.reduceat(cost, bounds)[::2]
    return basis


def _fifo(ev: Events, pos: np.ndarray, acquired: np.ndarray) -> tuple[np.ndarray, ...]:
    """FIFO: each disposal's basis (its queue positions' lots), and per segment the remaining basis and
    units from opening lots, from the queue positions and the units each segment acquired."""
    acq = ev.kind == ACQUIRE
    basis = np.zeros(len(pos))
    remaining = np.zeros(len(ev.starts))
    opening = np.zeros(len(ev.starts))
    for seg, (lo, hi) in enumerate(_spans(ev.starts, len(pos))):
        lots = lo + np.flatnonzero(acq[lo:hi])
        if len(lots) == 0:
            continue
        units, cost = ev.units[lots], ev.value[lots]
        ends = np.cumsum(units)
        starts = np.concatenate([[0.0], ends[:-1]])
        unit_cost = cost / units
        at = pos[lo:hi]
        before = np.concatenate([[0.0], at[:-1]])  # the segment's queue position before each event
        taking = at > before
        taking &= ~acq[lo:hi]
        rows = np.flatnonzero(taking)
        basis[lo + rows] = _taken(ends, starts, unit_cost, cost, before[rows], at[rows])
        consumed, total = at[-1:], acquired[seg : seg + 1]
        if consumed[0] < total[0]:
            remaining[seg] = _taken(ends, starts, unit_cost, cost, consumed, total)[0]
        from_opening = ev.label[lots] == OPENING
        if from_opening.any():  # each lot's units left = its part of the queue past the consumed position
            left = np.clip(ends - np.maximum(ends - units, consumed[0]), 0.0, None)
            opening[seg] = left[from_opening].sum()
    return basis, remaining, opening


def _average(ev: Events, held: np.ndarray, matched: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, ...]:
    """Average cost. The unit cost changes only at acquisitions, so the recurrence runs over them:
    ``C_m = C_{m-1} * (held before m / held after m-1) + b_m``; disposals take ``matched x C_m / held_m``.
    ``matched`` is spent: the basis is written in its array.
    """
    n = len(held)
    acq = ev.kind == ACQUIRE
    lots = np.flatnonzero(acq)
    if len(lots) == 0:
        return np.zeros(n), np.zeros(len(last)), np.zeros(len(last))
    first_lot = np.searchsorted(lots, ev.starts)  # per segment: lots before it (its first lot's index)
    lot_seg = np.searchsorted(ev.starts, lots, side="right") - 1
    new_run = np.r_[True, lot_seg[1:] != lot_seg[:-1]]
    del lot_seg
    held_after = held[lots]
    at_start = np.zeros(n, bool)
    at_start[ev.starts] = True
    held_before = held[np.maximum(lots - 1, 0)]  # each lot's previous event's (0 at a segment's start)
    held_before[at_start[lots]] = 0.0
    del at_start
    prev_after = np.r_[0.0, held_after[:-1]]
    shrink = np.divide(held_before, prev_after, out=np.zeros(len(lots)), where=(prev_after > 0) & ~new_run)
    del held_before, prev_after, new_run
    opening_lot = ev.label[lots] == OPENING
    pool_opening: np.ndarray | None = None
    if opening_lot.any() or not np.isfinite(shrink).all():
        pool = _affine_scan(shrink, np.column_stack([ev.value[lots], np.where(opening_lot, ev.units[lots], 0.0)]))
        pool_cost, pool_opening = pool[:, 0], pool[:, 1]  # cost, opening units
    else:  # no opening lots (usual): that column would stay 0 through every pass, so scan the cost alone
        pool_cost = _affine_scan(shrink, ev.value[lots])  # shrink and the gathered values: its own
    del shrink, opening_lot
    positive = held_after > 0
    cost_per_unit = np.divide(pool_cost, held_after, out=np.zeros(len(lots)), where=positive)
    opening_per_unit = None if pool_opening is None else np.divide(pool_opening, held_after, out=np.zeros(len(lots)),
                                                                   where=positive)
    del pool_cost, pool_opening, held_after, positive

    latest = np.cumsum(acq, dtype=np.int32 if len(lots) < 2**31 else np.int64)
    latest -= 1  # each event's latest acquisition (global lot index), if in its segment
    has_lot = np.empty(n, bool)
    for segment, (lo, hi) in enumerate(_spans(ev.starts, n)):
        np.greater_equal(latest[lo:hi], first_lot[segment], out=has_lot[lo:hi])
    np.maximum(latest, 0, out=latest)
    basis = matched  # spent here: each event's basis is written over its matched units, a block at a time
    for lo in range(0, n, 1 << 16):
        part = basis[lo : lo + (1 << 16)]
        np.multiply(cost_per_unit[latest[lo : lo + (1 << 16)]], part, out=part)
    kept(has_lot & ~acq, basis, inplace=True)  # 0 for acquisitions and disposals with no lot
    end_lot, end_has = latest[last], has_lot[last]
    cost = np.where(end_has, held[last] * cost_per_unit[end_lot], 0.0)
    opening = np.where(end_has, held[last] * (0.0 if opening_per_unit is None else opening_per_unit[end_lot]), 0.0)
    return basis, cost, opening


def match(ev: Events, method: Method, turnover: np.ndarray | None = None, ghost: np.ndarray | None = None,
          carried: np.ndarray | None = None) -> Matched:
    """Match every disposal and withdrawal against the lots of its segment.

    A resumed run (``lib.pnl.state``) passes, per segment, ``turnover`` (units acquired and disposed
    before these events and not among them: dust is measured against the whole history) and
    ``ghost`` (units the dust rule took from the queue while the shortfall arithmetic still counts
    them, ``Matched.ghost`` of the run before), and per event ``carried`` (the lots carried in,
    which the dust rule must not take again): its figures are then a full run's.
    """
    if method not in ("fifo", "average"):
        raise ValueError(f"method must be 'fifo' or 'average', got {method!r}")
    n = len(ev.kind)
    if n == 0:
        empty = np.zeros(0)
        return Matched(empty, empty, empty, empty, empty)
    # The arithmetic runs in place where it can: a million fills' events make each array ~13 MB.
    acq = ev.kind == ACQUIRE
    cum_acquired = kept(acq, ev.units)
    _accumulate(np.add, cum_acquired, ev.starts, out=cum_acquired)
    cum_disposed = kept(~acq, ev.units)
    _accumulate(np.add, cum_disposed, ev.starts, out=cum_disposed)
    lengths = np.diff(np.append(ev.starts, n))
    last = np.append(ev.starts[1:], n) - 1
    dust = cum_acquired + cum_disposed
    dust *= DUST
    if turnover is not None:
        dust += DUST * np.repeat(turnover, lengths)
    shortfall = cum_disposed - cum_acquired
    extra = None if ghost is None else np.repeat(ghost, lengths)
    if extra is not None:  # no ghost units: nothing to take off or add back (held is never -0.0)
        shortfall -= extra
    np.maximum(shortfall, 0.0, out=shortfall)
    _running_max(shortfall, ev.starts)
    held = np.subtract(cum_acquired, cum_disposed, out=cum_disposed)  # in the spent array
    del cum_disposed
    held += shortfall
    if extra is not None:
        held += extra
    del extra
    true_held = held[last]
    dusty = held <= dust
    if carried is not None:
        dusty &= ~carried
    kept(~dusty, held, inplace=True)  # held[dusty] = 0.0
    del dusty
    pos = np.subtract(cum_acquired, held, out=held)  # in the spent array again
    del held
    _running_max(pos, ev.starts)
    np.maximum(pos, 0.0, out=pos)
    if method == "fifo":  # FIFO needs only the queue positions and each segment's units acquired from here
        acquired = cum_acquired[last]  # (the disposals after a segment's last lot add +0.0 to it)
        del cum_acquired
        quantity = acquired - pos[last]
    else:
        held = np.subtract(cum_acquired, pos, out=cum_acquired)
        del cum_acquired
        quantity = held[last]
    unmatched = shortfall
    _less_previous(unmatched, ev.starts)
    kept(~(unmatched <= dust), unmatched, inplace=True)  # unmatched[unmatched <= dust] = 0.0
    del dust
    if method == "fifo":
        basis, cost, opening = _fifo(ev, pos, acquired)
    else:
        _less_previous(pos, ev.starts)
        basis, cost, opening = _average(ev, held, pos, last)
    return Matched(basis=basis, unmatched=unmatched, quantity=quantity, cost=cost, opening=opening,
                   ghost=true_held - quantity)
