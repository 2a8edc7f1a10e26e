"""A fixed-length, weighted epoch plan: hard samples drawn more often, the epoch length never changes.

Each epoch the sampler turns per-index weights into per-index copy counts that sum to exactly
``num_samples`` (expected counts ``N * w / sum(w)``, capped at ``max_repeats`` with the excess
water-filled onto the rest, then systematic rounding with one random offset), repeats every index
that many times and shuffles. O(N), vectorised, and a pure function of ``(seed, epoch, weights)``.

It yields the GLOBAL stream: under accelerate (HF Trainer, DDP, DeepSpeed) every rank iterates the
whole sampler and keeps its own batches, so the stream must be identical on every rank. Pass
``num_replicas``/``rank`` only for a plain ``DistributedSampler``-style loop without accelerate.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler

from hardmine._validation import as_weight_array

__all__ = ["HardMiningSampler", "check_fillable", "epoch_generator", "plan_counts", "shuffle_in_place"]

_STATE_VERSION = 1


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


class HardMiningSampler(Sampler[int]):
    """Fixed-length epoch sampler whose per-index weights can change between epochs.

    Args:
        num_samples: the dataset length; ``len(sampler) == num_samples`` whatever the weights.
        seed: with the epoch and the weights, the only input to the order.
        max_repeats: cap on copies of one index in one epoch (None: no cap).
        num_replicas: shard the stream over this many processes, for a plain loop without accelerate
            (equal-length shards, padded by wrapping). Leave it None under the HF Trainer / accelerate.
        rank: this process's shard, with ``num_replicas``.

    >>> s = HardMiningSampler(5, seed=0)
    >>> sorted(s)
    [0, 1, 2, 3, 4]
    >>> s.set_weights([0.0, 0.0, 1.0, 1.0, 3.0]); len(list(s))
    5
    """

    def __init__(self, num_samples: int, *, seed: int = 0, max_repeats: int | None = None,
                 num_replicas: int | None = None, rank: int | None = None) -> None:
        if int(num_samples) != num_samples or num_samples < 0:
            raise ValueError(f"num_samples must be an integer >= 0, but got {num_samples=}")
        if int(seed) != seed or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, but got {seed=}")
        if max_repeats is not None and (int(max_repeats) != max_repeats or max_repeats < 1):
            raise ValueError(f"max_repeats must be an integer >= 1 or None, but got {max_repeats=}")
        if (num_replicas is None) != (rank is None):
            raise ValueError(f"give num_replicas and rank together, but got {num_replicas=}, {rank=}")
        if num_replicas is not None and rank is not None and not (num_replicas >= 1 and 0 <= rank < num_replicas):
            raise ValueError(f"need num_replicas >= 1 and 0 <= rank < num_replicas, but got {num_replicas=}, {rank=}")
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.max_repeats = None if max_repeats is None else int(max_repeats)
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self._weights: np.ndarray | None = None
        self._cache: tuple[tuple[int, int], np.ndarray, np.ndarray | None] | None = None
        self._weights_version = 0

    # ------------------------------------------------------------------ plan inputs
    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose plan ``__iter__`` yields (call it before every epoch)."""
        self.epoch = int(epoch)

    def set_weights(self, weights: Any) -> None:
        """Per-index relative weights (length ``num_samples``, finite, >= 0); None means uniform.

        Raises ValueError, changing nothing, when the weights are malformed or cannot fill
        ``num_samples`` slots under ``max_repeats``.
        """
        if weights is None:
            self._weights = None
        else:
            w = as_weight_array(weights, self.num_samples)
            check_fillable(w, self.num_samples, self.max_repeats)  # before any change
            self._weights = w if w is not weights else w.copy()
        self._weights_version += 1
        self._cache = None

    @property
    def weights(self) -> np.ndarray | None:
        """The current weights (a copy), or None when uniform."""
        return None if self._weights is None else self._weights.copy()

    # ------------------------------------------------------------------ the plan
    def _plan(self) -> tuple[np.ndarray, np.ndarray | None]:
        key = (self.epoch, self._weights_version)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1], self._cache[2]
        g = epoch_generator(self.seed, self.epoch)
        if self._weights is None:
            plan, counts = torch.randperm(self.num_samples, generator=g).numpy(), None
        else:
            offset = float(torch.rand(1, generator=g, dtype=torch.float64))
            counts = plan_counts(self._weights, self.num_samples, self.max_repeats, offset)
            plan = np.repeat(np.arange(self.num_samples, dtype=np.int64), counts)
            shuffle_in_place(plan, g)
        self._cache = (key, plan, counts)
        return plan, counts

    def counts(self) -> np.ndarray:
        """How many times each index is drawn in the current epoch's plan (global stream)."""
        _, counts = self._plan()
        return np.ones(self.num_samples, dtype=np.int64) if counts is None else counts.copy()

    def __iter__(self) -> Iterator[int]:
        plan, _ = self._plan()
        if self.num_replicas is not None:
            total = len(self) * self.num_replicas
            if total > plan.size and plan.size:
                plan = np.concatenate([plan, plan[: total - plan.size]])
            plan = plan[self.rank : total : self.num_replicas]
        return iter(plan.tolist())  # NumPy's tolist: a little faster than torch's

    def __len__(self) -> int:
        if self.num_replicas is None:
            return self.num_samples
        return -(-self.num_samples // self.num_replicas)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {"version": _STATE_VERSION, "num_samples": self.num_samples, "seed": self.seed,
                "epoch": self.epoch, "max_repeats": self.max_repeats,
                "weights": None if self._weights is None else self._weights.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"cannot load HardMiningSampler state of version {state.get('version')!r}; "
                             f"this hardmine reads version {_STATE_VERSION}")
        if int(state["num_samples"]) != self.num_samples:
            raise ValueError(f"HardMiningSampler state is for num_samples={state['num_samples']}, but this "
                             f"sampler has num_samples={self.num_samples}")
        max_repeats = None if state["max_repeats"] is None else int(state["max_repeats"])
        weights = state["weights"]
        if weights is not None:
            weights = as_weight_array(weights, self.num_samples)
            check_fillable(weights, self.num_samples, max_repeats)
        self.seed = int(state["seed"])
        self.max_repeats = max_repeats
        self.set_weights(weights)
        self.epoch = int(state["epoch"])

    def __repr__(self) -> str:
        kind = "uniform" if self._weights is None else "weighted"
        return (f"HardMiningSampler(num_samples={self.num_samples}, seed={self.seed}, "
                f"max_repeats={self.max_repeats}, epoch={self.epoch}, {kind})")
