"""The planner: compose the frequency prior with hardness into the next epoch's weights, and say what the
plan draws.

The weight of a position is ``prior x hardness``: the prior (1 without categories) comes from each sample's
categories, the hardness is ``hard_weight`` at mined positions and 1 elsewhere (the noise guards act on
hardness only: they keep ids out of the mined set, never out of the prior). The sampler turns the weights into a
fixed-length plan (capped at ``max_repeats``). :class:`PlanFigures` are read off that plan itself, so the
event and the report state what will be drawn, not what was asked for, and how much of the boost came from
the prior and how much from hardness.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from hardmine.sampler import PlanSampler, Weights

__all__ = ["PlanFigures", "Planner", "boost_split", "lift_cap"]


@dataclass(frozen=True)
class PlanFigures:
    """The next epoch's plan in numbers: draws per index (histogram), per source, of the mined ids, and the
    boost split between the prior and hardness."""

    draws_hist: list[int]  # weighted indices drawn 0, 1, 2, ... times
    per_source: dict[str, int]  # draws per source (fusion)
    total_draws: int  # the epoch length (global stream)
    mined_draws: int | None = None  # draws of mined indices (None: nothing mined)
    draw_ratio: float | None = None  # mean draws of a mined index / of any other
    prior_boosted: int | None = None  # positions whose prior weight is > 1 (None: no prior)
    prior_draws: int | None = None  # draws of those positions
    boost_draws: float | None = None  # draws owed to weights above 1 (see boost_split)
    prior_boost_draws: float | None = None  # the prior's part of boost_draws


def boost_split(counts: np.ndarray, prior: np.ndarray, hardness: np.ndarray) -> tuple[float, float]:
    """Draws owed to the boost, and the prior's part of them.

    A position drawn ``c`` times at weight ``w = prior x hardness > 1`` owes ``c (1 - 1/w)`` of its draws to
    the boost (at weight 1 it would have drawn ``c / w``); that part is split between prior and hardness in
    the ratio of ``log prior`` to ``log hardness``, so the split is the same whichever factor is applied first.

    >>> boost_split(np.array([4, 2, 1]), np.array([4.0, 1.0, 1.0]), np.array([1.0, 2.0, 1.0]))
    (4.0, 3.0)
    """
    w = prior * hardness
    up = w > 1.0
    if not up.any():
        return 0.0, 0.0
    owed = counts[up] * (1.0 - 1.0 / w[up])
    share = np.log(np.maximum(prior[up], 1.0)) / np.log(w[up])  # hardness >= 1 here: the share lies in [0, 1]
    return float(owed.sum()), float((owed * np.clip(share, 0.0, 1.0)).sum())


def lift_cap(boosted: np.ndarray, flagged: np.ndarray, below: float) -> tuple[bool, float]:
    """Whether to plan the next epoch without ``max_repeats``, and the share of the prior-boosted positions
    (``boosted``: prior > 1) that the noise guards keep out (``flagged``, a mask over the same positions).

    Under ``below`` the labels of the boosted samples look clean, and the cap, which keeps flipped labels in a
    rare category from being drawn many times an epoch, only stops the prior short of full balance.

    >>> lift_cap(np.array([False, True, True, True]), np.array([True, False, False, True]), below=0.1)
    (False, 0.3333333333333333)
    """
    n = int(np.count_nonzero(boosted))
    share = float(np.count_nonzero(flagged & boosted)) / n if n else 0.0
    return bool(n) and share < below, share


class Planner:
    """Weights ``prior x hardness``: the prior (all ones when None), times ``hard_weight`` at mined positions.

    >>> from hardmine import HardMiningSampler
    >>> s = HardMiningSampler(6, seed=0)
    >>> figures = Planner(hard_weight=2.0).plan(s, np.array([4, 5]), epoch=1)
    >>> s.weights.tolist(), figures.mined_draws, figures.total_draws
    ([1.0, 1.0, 1.0, 1.0, 2.0, 2.0], 3, 6)
    >>> figures = Planner(2.0, prior=np.array([1.0, 1.0, 1.0, 1.0, 1.0, 3.0])).plan(s, np.array([4]), epoch=2)
    >>> s.weights.tolist(), figures.prior_boosted
    ([1.0, 1.0, 1.0, 1.0, 2.0, 3.0], 1)
    """

    def __init__(self, hard_weight: float, prior: np.ndarray | None = None, kind: str | None = None) -> None:
        if not float(hard_weight) >= 1.0:
            raise ValueError(f"hard_weight must be a number >= 1, but got {hard_weight=}")
        self.hard_weight = float(hard_weight)
        if prior is not None:
            prior = np.asarray(prior, dtype=np.float64)
            if prior.ndim != 1 or (prior.size and not (np.isfinite(prior).all() and prior.min() >= 1.0)):
                raise ValueError(f"prior must be a 1-D array of finite weights >= 1, but got {prior!r}")
        self.prior = prior
        # the positions the prior boosts (it never changes; none without a prior)
        self.boosted: np.ndarray = np.zeros(0, dtype=bool) if prior is None else prior > 1.0
        self.kind = kind  # the prior's kind (repeat_factor, class_balanced), for its fingerprint

    def fingerprint(self) -> dict[str, Any] | None:
        """The prior is recomputed from the categories, not saved: a state keeps its kind and a checksum, so a
        resume with other categories (or none) is refused rather than silently re-planned."""
        if self.prior is None:
            return None
        return {"kind": self.kind, "size": int(self.prior.size), "boosted": int(np.count_nonzero(self.boosted)),
                "crc32": zlib.crc32(np.ascontiguousarray(self.prior, dtype="<f8").tobytes())}

    def weights(self, positions: np.ndarray | None, size: int) -> tuple[np.ndarray, np.ndarray]:
        """``(prior, hardness)`` over ``size`` positions: the prior, and ``hard_weight`` at ``positions``."""
        if self.prior is not None and self.prior.size != size:
            raise ValueError(f"the prior has {self.prior.size} weights, but the sampler weighs {size} positions")
        prior = np.ones(size) if self.prior is None else self.prior
        hardness = np.ones(size)
        if positions is not None:
            hardness[positions] = self.hard_weight
        return prior, hardness

    def plan(self, sampler: PlanSampler, positions: np.ndarray | None, epoch: int) -> PlanFigures:
        """Set ``sampler``'s weights for ``epoch`` and describe the plan it will draw.

        ``positions``: the mined positions (None or empty: none). Uniform when nothing is mined and there is no
        prior."""
        mined = positions is not None and positions.size > 0
        if self.prior is None:  # two levels, a byte a position: no float array at all
            assert positions is not None or not mined
            sampler.set_weights(Weights.two_levels(sampler.num_weighted, positions, self.hard_weight)  # type: ignore[arg-type]
                                if mined else None)
        else:
            prior, hardness = self.weights(positions if mined else None, sampler.num_weighted)
            sampler.set_weights(prior * hardness)
        sampler.set_epoch(epoch)
        counts = sampler.counts()
        weighted = counts[: sampler.num_weighted]
        hard = ratio = None
        if mined:
            assert positions is not None
            hard = int(weighted[positions].sum())
            rest = sampler.num_weighted - positions.size
            ratio = 1.0
            if rest:
                other_mean = (float(weighted.sum()) - hard) / rest
                ratio = hard / positions.size / max(other_mean, 1e-12)
        boosted = prior_draws = boost = prior_boost = None
        if self.prior is not None:
            prior, hardness = self.weights(positions if mined else None, sampler.num_weighted)
            up = self.boosted
            boosted, prior_draws = int(up.sum()), int(weighted[up].sum())
            boost, prior_boost = boost_split(weighted, prior, hardness)
        return PlanFigures(np.bincount(weighted).tolist(), sampler.source_counts(), int(counts.sum()), hard, ratio,
                           boosted, prior_draws, boost, prior_boost)

    def __repr__(self) -> str:
        prior = "" if self.prior is None else f", prior=<{self.prior.size} weights, max {self.prior.max(initial=1):g}>"
        return f"Planner(hard_weight={self.hard_weight}{prior})"
