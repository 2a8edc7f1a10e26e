"""The plan arithmetic shared by every sampler: per-index copy counts, per-epoch generators, the shuffle.

``plan_counts`` turns weights into copy counts that sum to exactly the number of slots (expected counts
``slots * w / sum(w)``, capped at ``max_repeats`` with the excess water-filled onto the rest, then
systematic rounding with one random offset). All of it is vectorised and a pure function of its inputs.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def epoch_generator(seed: int, epoch: int, salt: int = 0) -> torch.Generator:
    """A private torch generator for one epoch, derived from ``(seed, epoch, salt)`` only."""
    state = np.random.SeedSequence([int(seed), int(epoch), int(salt)]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state >> np.uint64(1)))


def shuffle_in_place(plan: np.ndarray, g: torch.Generator) -> None:
    """Shuffle ``plan`` in one in-place pass, seeded from ``g`` (about 2x cheaper than randperm + gather)."""
    np.random.Generator(np.random.PCG64(int(torch.randint(2**62, (1,), generator=g)))).shuffle(plan)


def plan_counts(weights: np.ndarray, num_slots: int, max_repeats: int | None, offset: float) -> np.ndarray:
    """Per-index copy counts summing to ``num_slots``, each ``floor`` or ``ceil`` of its expected count.

    ``weights`` must already be validated (finite, >= 0). ``offset`` in [0, 1) is the one random number
    of systematic rounding. Raises ValueError when the slots cannot be filled under ``max_repeats``.

    >>> plan_counts(np.array([1.0, 1.0, 2.0]), 4, None, 0.5).tolist()
    [1, 1, 2]
    """
    if num_slots == 0:
        return np.zeros(weights.size, dtype=np.int64)
    check_fillable(weights, num_slots, max_repeats)
    with np.errstate(over="ignore"):  # an overflowing sum is handled below
        total, top = float(weights.sum()), float(weights.max())
    scale = num_slots / total  # inf for subnormal weights, 0 when the sum overflows: then rescale, below
    expected: np.ndarray | None = None
    if 0 < scale < math.inf and (max_repeats is None or top * scale <= max_repeats):
        cum = np.cumsum(weights)  # proportional to the expected counts, none above the cap: no water-filling
    else:
        unit = weights / top  # in [0, 1]: neither subnormal nor overflowing sums
        expected = (unit / unit.sum()) * num_slots
        if max_repeats is not None:
            expected = _water_fill(unit, expected, num_slots, float(max_repeats))
        cum = np.cumsum(expected)
    cum *= num_slots / cum[-1]  # remove float drift: the total is exactly num_slots
    cum += offset
    edges = cum.astype(np.int64)  # truncation is floor: cum >= offset >= 0
    counts = np.empty_like(edges)  # edges minus the previous edge, in place of np.diff's temporaries
    counts[0] = edges[0] - math.floor(offset)
    np.subtract(edges[1:], edges[:-1], out=counts[1:])
    if max_repeats is not None and counts.max() > max_repeats:  # float drift at an exact cap: rare
        counts = _repair_cap(counts, weights * scale if expected is None else expected, max_repeats)
    return counts


def check_fillable(weights: np.ndarray, num_slots: int, max_repeats: int | None) -> None:
    """Raise ValueError when ``num_slots`` draws cannot be made from ``weights`` under ``max_repeats``."""
    if num_slots == 0:
        return
    positive = int(np.count_nonzero(weights))
    if positive == 0:
        raise ValueError(f"cannot fill {num_slots} slots: every weight is 0")
    if max_repeats is not None and positive * max_repeats < num_slots:
        raise ValueError(f"cannot fill {num_slots} slots: only {positive} samples have weight > 0 and "
                         f"max_repeats={max_repeats} allows at most {positive * max_repeats} draws; "
                         "raise max_repeats or give more samples a positive weight")


def _water_fill(weights: np.ndarray, expected: np.ndarray, num_slots: int, cap: float) -> np.ndarray:
    """Cap expected counts at ``cap`` and spread the excess over the uncapped, in proportion to weight."""
    capped = np.zeros(weights.size, dtype=bool)
    while True:
        over = expected > cap
        if not over.any():
            return expected
        capped |= over
        free = np.where(capped, 0.0, weights)
        free_mass = free.sum()
        if free_mass == 0:  # every positive weight sits at the cap: exactly fillable (checked before)
            return np.where(capped, cap, 0.0)
        remaining = num_slots - cap * np.count_nonzero(capped)
        expected = np.where(capped, cap, (free / free_mass) * remaining)


def _repair_cap(counts: np.ndarray, expected: np.ndarray, cap: int) -> np.ndarray:
    counts = counts.copy()
    excess = int(np.clip(counts - cap, 0, None).sum())
    np.minimum(counts, cap, out=counts)
    room = np.flatnonzero((counts < cap) & (expected > counts))
    if room.size < excess:
        room = np.flatnonzero(counts < cap)
    counts[room[:excess]] += 1
    return counts
