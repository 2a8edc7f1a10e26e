"""The plan arithmetic shared by every sampler: per-index copy counts from weights, with caps and rounding.

``plan_counts`` turns weights into copy counts that sum to exactly the number of slots. Expected counts are
``slots * w / sum(w)``, capped at ``max_repeats`` with the excess water-filled onto the rest. Rounding is
stratified by weight level, so that no index layout can alias with it: every set of indices sharing a
weight gets the floor or the ceiling of its expected total in every epoch, wherever its indices lie.

- Few distinct weights (the usual plan: 1 and ``hard_weight``, or a prior's levels): each level's total is
  rounded systematically over the levels with one random offset, every index of the level gets the floor of
  its expected count, and a uniformly random subset of the level gets one more.
- Many distinct weights: systematic rounding along the indices sorted by weight (equal weights adjacent).

Either way each index gets the floor or the ceiling of its expected count, and the ceiling with probability
equal to the fractional part: the plan is unbiased. All of it is vectorised and a pure function of its inputs.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from hardmine._draws import distinct_draws, draw_subset
from hardmine._weights import Weights


def index_dtype(n: int) -> type[np.signedinteger]:
    """The smallest index type for ``n`` indices: plans of int32 take half the memory of int64 ones."""
    return np.int32 if n < 2**31 else np.int64


def compact_counts(counts: np.ndarray) -> np.ndarray:
    """Draw counts in one byte each when they fit (they are at most ``max_repeats``), else int32/int64."""
    top = int(counts.max()) if counts.size else 0
    return counts.astype(np.uint8 if top < 256 else index_dtype(top + 1), copy=False)


def check_fillable(positive: int, num_slots: int, max_repeats: int | None) -> None:
    """Raise ValueError when ``num_slots`` draws cannot be made from ``positive`` indices under ``max_repeats``."""
    if num_slots == 0:
        return
    if positive == 0:
        raise ValueError(f"cannot fill {num_slots} slots: every weight is 0")
    if max_repeats is not None and positive * max_repeats < num_slots:
        raise ValueError(f"cannot fill {num_slots} slots: only {positive} samples have weight > 0 and "
                         f"max_repeats={max_repeats} allows at most {positive * max_repeats} draws; "
                         "raise max_repeats or give more samples a positive weight")


def plan_counts(weights: Weights, num_slots: int, max_repeats: int | None, g: torch.Generator) -> np.ndarray:
    """Per-index copy counts summing to ``num_slots``, each ``floor`` or ``ceil`` of its expected count.

    ``g`` gives the epoch's randomness. Every set of indices with one weight gets the floor or the ceiling of
    its expected total. Raises ValueError when the slots cannot be filled under ``max_repeats``.

    >>> g = torch.Generator().manual_seed(0)
    >>> plan_counts(Weights.of(np.array([1.0, 1.0, 2.0])), 4, None, g).tolist()
    [1, 1, 2]
    """
    if num_slots == 0:
        return np.zeros(len(weights), dtype=np.int64)
    check_fillable(weights.positive(), num_slots, max_repeats)
    offset = float(torch.rand(1, generator=g, dtype=torch.float64))
    if weights.dense is not None:
        order = np.argsort(weights.dense, kind="stable")
        expected = expected_counts(weights.dense[order], None, num_slots, max_repeats)
        counts = np.empty(order.size, dtype=np.int64)
        counts[order] = _systematic(expected, num_slots, offset, max_repeats)
        return counts
    values, codes = weights.values, weights.codes
    assert values is not None and codes is not None
    sizes = np.bincount(codes, minlength=values.size)
    per_index = expected_counts(values, sizes, num_slots, max_repeats)
    base = np.floor(per_index).astype(np.int64)
    extra = _level_extras(per_index * sizes, base, sizes, num_slots, offset, max_repeats)
    up = 2 * extra > sizes  # most of the level gets one more: start it at base + 1, take one from the rest
    change = np.where(up, sizes - extra, extra)
    start = base + up
    counts = start.astype(np.uint8 if int(start.max()) < 255 else np.int64)[codes]  # a byte an index, usually
    moving = np.flatnonzero(change > 0)
    grouped = _group(codes, values.size) if values.size > 2 and moving.size > 2 else None
    for level in moving.tolist():  # a loop over at most _MAX_LEVELS levels, not over indices
        size, k = int(sizes[level]), int(change[level])
        if size == codes.size:
            pick = draw_subset(size, k, g)
        elif grouped is not None:
            pick = grouped[0][grouped[1][level] : grouped[1][level + 1]][draw_subset(size, k, g)]
        else:
            pick = _pick_in_level(codes, level, size, k, g)
        if up[level]:
            counts[pick] -= 1
        else:
            counts[pick] += 1
    return np.asarray(counts)


def expected_counts(weights: np.ndarray, sizes: np.ndarray | None, num_slots: int,
                    max_repeats: int | None) -> np.ndarray:
    """Expected draws of one index of each weight (``sizes``: indices per weight, None: one each), capped at
    ``max_repeats`` with the excess water-filled onto the rest in proportion to weight."""
    top = float(weights.max())
    unit = weights / top  # in [0, 1]: neither subnormal nor overflowing sums
    mass = unit if sizes is None else unit * sizes
    expected: np.ndarray = unit * (num_slots / float(mass.sum()))
    if max_repeats is None or float(expected.max()) <= max_repeats:
        return expected
    cap = float(max_repeats)
    capped = np.zeros(weights.size, dtype=bool)
    while True:
        over = expected > cap
        if not over.any():
            return expected
        capped |= over
        free = np.where(capped, 0.0, mass)
        free_mass = float(free.sum())
        if free_mass == 0:  # every positive weight sits at the cap: exactly fillable (checked before)
            return np.where(capped, cap, 0.0)
        taken = cap * float(capped.sum() if sizes is None else sizes[capped].sum())
        scale = (num_slots - taken) / free_mass
        if math.isfinite(scale):
            expected = np.where(capped, cap, unit * scale)
        else:  # a free mass near the smallest float: each free index's part of it first (<= 1), as inf x 0 is NaN
            expected = np.where(capped, cap, np.where(capped, 0.0, unit) / free_mass * (num_slots - taken))


def _systematic(expected: np.ndarray, num_slots: int, offset: float, max_repeats: int | None) -> np.ndarray:
    """Systematic rounding in the given order: floors or ceilings summing to exactly ``num_slots``."""
    cum = np.cumsum(expected)
    cum *= num_slots / cum[-1]  # remove float drift: the total is exactly num_slots
    cum += offset
    edges = cum.astype(np.int64)  # truncation is floor: cum >= offset >= 0
    counts = np.empty_like(edges)  # edges minus the previous edge, in place of np.diff's temporaries
    counts[0] = edges[0] - math.floor(offset)
    np.subtract(edges[1:], edges[:-1], out=counts[1:])
    if max_repeats is not None and counts.max() > max_repeats:  # float drift at an exact cap: rare
        counts = _repair_cap(counts, expected, max_repeats)
    return counts


def _level_extras(totals: np.ndarray, base: np.ndarray, sizes: np.ndarray, num_slots: int, offset: float,
                  max_repeats: int | None) -> np.ndarray:
    """How many indices of each level get one more than ``base``: level totals rounded systematically."""
    rounded = _systematic(totals, num_slots, offset, None)
    room = np.where(base < (max_repeats if max_repeats is not None else np.iinfo(np.int64).max), sizes, 0)
    extra: np.ndarray = np.clip(rounded - base * sizes, 0, room)
    short = num_slots - int((base * sizes).sum() + extra.sum())  # float drift at an exact level: rare
    frac = totals - base * sizes - extra
    for level in np.argsort(-frac if short > 0 else frac, kind="stable").tolist():
        if short == 0:
            break
        step = min(short, int(room[level] - extra[level])) if short > 0 else -min(-short, int(extra[level]))
        extra[level] += step
        short -= step
    return extra


def _pick_in_level(codes: np.ndarray, level: int, size: int, k: int, g: torch.Generator) -> np.ndarray:
    """A uniformly random ``k``-subset of the ``size`` indices whose code is ``level``.

    A small level lists its members; a big one draws indices of the whole range and keeps those in the level
    (most of them are), which needs no member list: a byte an index instead of eight."""
    if 2 * size < codes.size:
        members: np.ndarray = np.flatnonzero(codes == level)
        return np.asarray(members[draw_subset(size, k, g)])
    return distinct_draws(codes.size, size, k, g, keep=lambda drawn: codes[drawn] == level)


def _group(codes: np.ndarray, num_levels: int) -> tuple[np.ndarray, np.ndarray]:
    """The indices sorted by level (a radix sort on small codes) and where each level starts."""
    order = np.argsort(codes, kind="stable")
    return order, np.searchsorted(codes[order], np.arange(num_levels + 1))


def _repair_cap(counts: np.ndarray, expected: np.ndarray, cap: int) -> np.ndarray:
    counts = counts.copy()
    excess = int(np.clip(counts - cap, 0, None).sum())
    np.minimum(counts, cap, out=counts)
    room = np.flatnonzero((counts < cap) & (expected > counts))
    if room.size < excess:
        room = np.flatnonzero(counts < cap)
    counts[room[:excess]] += 1
    return counts
