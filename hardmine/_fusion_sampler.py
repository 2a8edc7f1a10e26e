"""The fusion epoch plan: targets by mining weight, auxiliaries at fixed quotas, one shuffle, fixed length.

Per epoch, each target draws exactly its quota (``round(ratio * size)``; every index once while
uniform at ratio 1), spread by the mining weights; each auxiliary draws exactly its quota uniformly
(without replacement when the pool is large enough), never weighted. Everything is concatenated
and shuffled once. The plan lives here, in the main process, and is a pure function of
``(seed, epoch, weights)`` with a private generator per source and epoch: it never depends on the rank.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler

from hardmine._fusion_layout import MAX_SALT, FusionLayout
from hardmine._validation import as_weight_array
from hardmine.sampler import check_fillable, epoch_generator, plan_counts, shuffle_in_place

__all__ = ["FusionSampler", "draw_subset"]

_STATE_VERSION = 1
_SHUFFLE_SALT = MAX_SALT  # out of the range of source salts, so the shuffle never shares their stream


def draw_subset(n: int, k: int, g: torch.Generator) -> np.ndarray:
    """A uniformly random ``k``-subset of ``range(n)`` (int64, in no particular order), in O(k + n / 8) work.

    For ``k < n / 2`` it draws indices with replacement into a mask until at least ``k`` are distinct,
    then drops a uniform few: the process treats every index alike, so the distinct set (given its
    size) is a uniform subset. That avoids a full ``randperm(n)`` for a small quota from a large pool.
    """
    if k == 0:
        return np.empty(0, dtype=np.int64)
    if 2 * k >= n:
        return torch.randperm(n, generator=g)[:k].numpy()
    mask = np.zeros(n, dtype=bool)
    have = 0
    goal = min(k + k // 64 + 16, (k + n) // 2)  # aim a little above k: usually one round
    while have < k:
        # expected new distinct indices among m draws: (n - have) * (1 - (1 - 1/n)**m) = goal - have
        m = math.ceil(math.log1p(-(goal - have) / (n - have)) / math.log1p(-1.0 / n))
        mask[torch.randint(n, (m,), generator=g).numpy()] = True
        have = int(np.count_nonzero(mask))
    chosen = np.flatnonzero(mask)
    if have > k:
        keep = np.ones(have, dtype=bool)
        keep[draw_subset(have, have - k, g)] = False
        chosen = chosen[keep]
    return chosen


def _draw_auxiliary(n: int, quota: int, replacement: bool, g: torch.Generator) -> np.ndarray:
    """``quota`` uniform draws from ``range(n)``: with replacement, or whole passes plus a subset."""
    if quota == 0:
        return np.empty(0, dtype=np.int64)
    if replacement:
        return torch.randint(n, (quota,), generator=g).numpy()
    passes, rest = divmod(quota, n)
    subset = draw_subset(n, rest, g)
    return np.concatenate([np.tile(np.arange(n, dtype=np.int64), passes), subset]) if passes else subset


class FusionSampler(Sampler[int]):
    """Fixed-length sampler over a fusion's flat index space; only the targets are ever weighted.

    Built by ``FusionDataset.make_sampler``. ``len(sampler)`` is the target quota plus the auxiliary
    quotas, whatever the weights. It yields the GLOBAL stream (the same on every rank).
    """

    def __init__(self, layout: FusionLayout, *, seed: int = 0, max_repeats: int | None = None) -> None:
        if int(seed) != seed or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, but got {seed=}")
        if max_repeats is not None and (int(max_repeats) != max_repeats or max_repeats < 1):
            raise ValueError(f"max_repeats must be an integer >= 1 or None, but got {max_repeats=}")
        self.layout = layout
        self.seed = int(seed)
        self.max_repeats = None if max_repeats is None else int(max_repeats)
        self.epoch = 0
        self._weights: np.ndarray | None = None
        self._weights_version = 0
        self._cache: tuple[tuple[int, int], np.ndarray] | None = None  # the plan of (epoch, weights)
        self._counts: tuple[tuple[int, int], np.ndarray] | None = None
        self._check_fillable(None)

    # ------------------------------------------------------------------ plan inputs
    @property
    def num_mineable(self) -> int:
        return self.layout.num_mineable

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose plan ``__iter__`` yields (call it before every epoch)."""
        self.epoch = int(epoch)

    def set_weights(self, weights: Any) -> None:
        """Mining weights of the target indices (length ``num_mineable``, finite, >= 0); None = uniform.

        Raises ValueError, changing nothing, when they are malformed or cannot fill a target's quota
        under ``max_repeats``. Auxiliary sources are never weighted.
        """
        w = None if weights is None else as_weight_array(weights, self.num_mineable)
        self._check_fillable(w)
        self._weights = None if w is None else (w.copy() if w is weights else w)
        self._weights_version += 1
        self._cache = None

    @property
    def weights(self) -> np.ndarray | None:
        """The current target weights (a copy), or None when uniform."""
        return None if self._weights is None else self._weights.copy()

    def _check_fillable(self, w: np.ndarray | None) -> None:
        lay = self.layout
        for t in range(lay.num_targets):
            lo, hi, quota = int(lay.offsets[t]), int(lay.offsets[t + 1]), int(lay.quotas[t])
            part = np.ones(hi - lo) if w is None else w[lo:hi]
            try:
                check_fillable(part, quota, self.max_repeats)
            except ValueError as e:
                state = "uniform" if w is None else "with these weights"
                raise ValueError(f"target {lay.names[t]!r} ({state}, quota {quota} = round(ratio "
                                 f"{lay.specs[t].ratio} x {hi - lo} samples)): {e}") from None

    # ------------------------------------------------------------------ the plan
    def _target_draws(self, t: int) -> np.ndarray:
        """This epoch's draws of target ``t``, as indices inside the target, in no particular order."""
        lay = self.layout
        lo, n, quota = int(lay.offsets[t]), int(lay.sizes[t]), int(lay.quotas[t])
        if self._weights is None and quota == n:
            return np.arange(n, dtype=np.int64)  # every index once: the final shuffle orders them
        g = epoch_generator(self.seed, self.epoch, lay.salts[t])
        offset = float(torch.rand(1, generator=g, dtype=torch.float64))
        if self._weights is not None:  # mined: systematic rounding in index order, like HardMiningSampler
            counts = plan_counts(self._weights[lo : lo + n], quota, self.max_repeats, offset)
            return np.repeat(np.arange(n, dtype=np.int64), counts)
        # uniform at a ratio other than 1: round over a random order, or ratio 0.5 would draw all the
        # even or all the odd indices
        order = torch.randperm(n, generator=g, dtype=torch.int32 if n < 2**31 else torch.int64).numpy()
        return np.repeat(order, plan_counts(np.ones(n), quota, self.max_repeats, offset))

    def _plan(self) -> np.ndarray:
        key = (self.epoch, self._weights_version)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        lay = self.layout
        plan = np.empty(lay.epoch_length, dtype=np.int64)
        ends = np.cumsum(lay.quotas).tolist()
        for s, (start, end) in enumerate(zip([0, *ends[:-1]], ends)):
            if s < lay.num_targets:
                plan[start:end] = self._target_draws(s)
            else:
                g = epoch_generator(self.seed, self.epoch, lay.salts[s])
                plan[start:end] = _draw_auxiliary(int(lay.sizes[s]), end - start, lay.specs[s].replacement, g)
            plan[start:end] += lay.offsets[s]  # index in the source -> flat index
        shuffle_in_place(plan, epoch_generator(self.seed, self.epoch, _SHUFFLE_SALT))
        self._cache = (key, plan)
        return plan

    def counts(self) -> np.ndarray:
        """Draws per flat index in the current epoch's plan (length ``len(fusion)``)."""
        key = (self.epoch, self._weights_version)
        if self._counts is None or self._counts[0] != key:
            self._counts = (key, np.bincount(self._plan(), minlength=self.layout.size))
        return self._counts[1].copy()

    def source_counts(self) -> dict[str, int]:
        """Draws per source in every epoch: the quotas, which the plan meets exactly."""
        return dict(zip(self.layout.names, self.layout.quotas.tolist()))

    def __iter__(self) -> Iterator[int]:
        return iter(self._plan().tolist())

    def __len__(self) -> int:
        return self.layout.epoch_length

    # ------------------------------------------------------------------ state
    def _sources(self) -> list[list[Any]]:
        lay = self.layout
        return [[s.name, s.kind, s.size, int(q)] for s, q in zip(lay.specs, lay.quotas)]

    def state_dict(self) -> dict[str, Any]:
        return {"version": _STATE_VERSION, "kind": "FusionSampler", "seed": self.seed, "epoch": self.epoch,
                "max_repeats": self.max_repeats, "sources": self._sources(),
                "weights": None if self._weights is None else self._weights.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("version") != _STATE_VERSION or state.get("kind") != "FusionSampler":
            raise ValueError(f"cannot load this state into a FusionSampler (kind={state.get('kind')!r}, "
                             f"version={state.get('version')!r}; expected kind='FusionSampler', "
                             f"version={_STATE_VERSION})")
        sources = [[str(n), str(k), int(s), int(q)] for n, k, s, q in state["sources"]]
        if sources != self._sources():
            raise ValueError(f"FusionSampler state is for sources {sources} (name, kind, size, quota), but "
                             f"this fusion has {self._sources()}")
        old = (self.seed, self.max_repeats)
        self.seed = int(state["seed"])
        self.max_repeats = None if state["max_repeats"] is None else int(state["max_repeats"])
        try:
            self.set_weights(state["weights"])
        except ValueError:
            self.seed, self.max_repeats = old
            raise
        self.epoch = int(state["epoch"])

    def __repr__(self) -> str:
        kind = "uniform" if self._weights is None else "weighted"
        return (f"FusionSampler(len={len(self)}, sources={self.source_counts()}, seed={self.seed}, "
                f"max_repeats={self.max_repeats}, epoch={self.epoch}, {kind})")
