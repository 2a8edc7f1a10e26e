"""The fusion epoch plan: targets by mining weight, auxiliaries at fixed quotas, one shuffle, fixed length.

Per epoch, each target draws exactly its quota (``round(ratio * size)``; every index once while
uniform at ratio 1), spread by the mining weights; each auxiliary draws exactly its quota uniformly
(without replacement when the pool is large enough), never weighted. Everything is concatenated
and shuffled once. The plan lives here, in the main process, and is a pure function of
``(seed, epoch, weights)`` with a private generator per source and epoch: it never depends on the rank.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from hardmine._draws import draw_subset, epoch_generator, shuffle_in_place
from hardmine._plan import check_fillable, index_dtype, plan_counts
from hardmine._weights import Weights
from hardmine.fusion._layout import MAX_SALT, FusionLayout
from hardmine.sampler import PlanSampler

_SHUFFLE_SALT = MAX_SALT  # out of the range of source salts, so the shuffle never shares their stream


def _draw_auxiliary(n: int, quota: int, replacement: bool, g: torch.Generator) -> np.ndarray:
    """``quota`` uniform draws from ``range(n)``: with replacement, or whole passes plus a subset."""
    if quota == 0:
        return np.empty(0, dtype=np.int64)
    if replacement:
        return torch.randint(n, (quota,), generator=g).numpy()
    passes, rest = divmod(quota, n)
    subset = draw_subset(n, rest, g)
    return np.concatenate([np.tile(np.arange(n, dtype=np.int64), passes), subset]) if passes else subset


class FusionSampler(PlanSampler):
    """Fixed-length sampler over a fusion's flat index space; only the targets are ever weighted.

    Built by ``FusionDataset.make_sampler``. ``len(sampler)`` is the target quota plus the auxiliary
    quotas, whatever the weights; the weights cover the target indices (``num_weighted``). It yields the
    GLOBAL stream (the same on every rank).
    """

    _KIND: ClassVar[str] = "FusionSampler"

    def __init__(self, layout: FusionLayout, *, seed: int = 0, max_repeats: int | None = None) -> None:
        super().__init__(seed=seed, max_repeats=max_repeats)
        self.layout = layout
        self.num_weighted = layout.num_mineable
        self.num_indices = layout.size
        self._check_fillable(None)

    @property
    def num_mineable(self) -> int:
        return self.layout.num_mineable

    def _check_fillable(self, w: Weights | None) -> None:
        lay = self.layout
        for t in range(lay.num_targets):
            lo, hi, quota = int(lay.offsets[t]), int(lay.offsets[t + 1]), int(lay.quotas[t])
            try:
                check_fillable(hi - lo if w is None else w.part(lo, hi).positive(), quota, self.max_repeats)
            except ValueError as e:
                state = "uniform" if w is None else "with these weights"
                raise ValueError(f"target {lay.names[t]!r} ({state}, quota {quota} = round(ratio "
                                 f"{lay.specs[t].ratio} x {hi - lo} samples)): {e}") from None

    def _target_draws(self, t: int) -> np.ndarray:
        """This epoch's draws of target ``t``, as indices inside the target, in no particular order."""
        lay = self.layout
        lo, n, quota = int(lay.offsets[t]), int(lay.sizes[t]), int(lay.quotas[t])
        if self._weights is None and quota == n:
            return np.arange(n, dtype=np.int64)  # every index once: the final shuffle orders them
        g = epoch_generator(self.seed, self.epoch, lay.salts[t])
        w = self._weights
        weights = Weights(np.ones(1), np.zeros(n, np.uint8)) if w is None else w.part(lo, lo + n)
        # stratified rounding: at a ratio of 0.5, a random half of the indices, never "all the even ones"
        return np.repeat(np.arange(n, dtype=np.int64), plan_counts(weights, quota, self.max_repeats, g))

    def _build_plan(self) -> tuple[np.ndarray, np.ndarray | None]:
        lay = self.layout
        plan = np.empty(lay.epoch_length, dtype=np.int64)  # NumPy shuffles int64 faster; kept as int32 below
        ends = np.cumsum(lay.quotas).tolist()
        for s, (start, end) in enumerate(zip([0, *ends[:-1]], ends)):
            if s < lay.num_targets:
                plan[start:end] = self._target_draws(s)
            else:
                g = epoch_generator(self.seed, self.epoch, lay.salts[s])
                plan[start:end] = _draw_auxiliary(int(lay.sizes[s]), end - start, lay.specs[s].replacement, g)
            plan[start:end] += lay.offsets[s]  # index in the source -> flat index
        shuffle_in_place(plan, epoch_generator(self.seed, self.epoch, _SHUFFLE_SALT))
        return plan.astype(index_dtype(lay.size), copy=False), None

    def source_counts(self) -> dict[str, int]:
        """Draws per source in every epoch: the quotas, which the plan meets exactly."""
        return dict(zip(self.layout.names, self.layout.quotas.tolist()))

    def __len__(self) -> int:
        return self.layout.epoch_length

    def _layout(self) -> dict[str, Any]:
        lay = self.layout
        return {"sources": [[s.name, s.kind, s.size, int(q)] for s, q in zip(lay.specs, lay.quotas)]}
