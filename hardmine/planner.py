"""The planner: compose the frequency prior with hardness into the next epoch's weights, and say what the
plan draws.

The weight of a position is ``prior x hardness``: the prior (1 without categories) comes from each sample's
categories, the hardness is ``hard_weight`` at mined positions and 1 elsewhere (the noise guards act on
hardness only: they keep ids out of the mined set, never out of the prior). With ``keep_rare_share``, the
categories the prior boosts at least that much keep at least the share of the weight the prior alone gives
them (:func:`hold_share`): mining can add draws to a rare category, never take the prior's away. The sampler
turns the weights into a fixed-length plan (capped at ``max_repeats``). :class:`PlanFigures` are read off that
plan itself, so the event and the report state what will be drawn, not what was asked for, and how much of the
boost came from the prior and how much from hardness.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from hardmine.sampler import PlanSampler, Weights

__all__ = ["PlanFigures", "Planner", "boost_split", "hold_share", "lift_cap"]


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
    rare_scale: float | None = None  # factor on the rare samples' prior that kept their share (None: not set)


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


def hold_share(weights: np.ndarray, groups: np.ndarray, want: np.ndarray, rare: np.ndarray) -> np.ndarray:
    """Per group, the factor on its weights that keeps every rare group's share of the total at ``want`` or
    above (1 for the rest, and for a rare group whose share mining did not shrink).

    ``weights``: prior x hardness; ``groups[i]``: position i's group (a category: the samples whose prior weight
    it decides, the multi-category samples whose rarest category it is included); ``want[g]``: group g's share
    of the prior alone; ``rare[g]``: whether it keeps that share. Hardness moves weight towards the mined
    positions; where those lie mostly outside a rare category (under label noise the guards keep its flipped
    labels out of the mined set), it would shrink that category's part of the epoch below what the prior alone gives it.

    >>> prior, hard, groups = np.array([1.0, 1.0, 1.0, 3.0]), np.array([4.0, 4.0, 1.0, 1.0]), np.array([0, 0, 0, 1])
    >>> scale = hold_share(prior * hard, groups, np.array([0.5, 0.5]), np.array([False, True]))
    >>> scale.tolist(), float((prior * hard * scale[groups])[3] / (prior * hard * scale[groups]).sum())
    ([1.0, 3.0], 0.5)
    """
    got = np.bincount(groups, weights=weights, minlength=rare.size)
    lift = np.zeros(rare.size, dtype=bool)
    for _ in range(rare.size):  # lifting some groups shrinks the others: repeat until no rare group is short
        rest = float(got[~lift].sum())  # the weight left as it is
        if rest <= 0.0:
            break
        room = 1.0 - float(want[lift].sum())  # the share left to the groups not lifted
        short = rare & ~lift & (got * room < want * rest * (1 - 1e-12)) & (got > 0)
        if not short.any():
            break
        lift |= short
    scale = np.ones(rare.size)
    rest = float(got[~lift].sum())
    if lift.any() and rest > 0.0:
        scale[lift] = want[lift] * rest / (1.0 - float(want[lift].sum())) / got[lift]  # s a / (s A + rest) = want
    return scale


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


def _share_groups(prior: np.ndarray, groups: np.ndarray | None, keep: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(group of each position, each group's share of the prior, whether it keeps that share)``.

    ``groups``: each position's deciding category (:func:`hardmine.prior.prior_and_groups`; -1: none), so each
    rare category keeps its own share; None groups the positions by prior weight instead (equally frequent
    categories then share one group)."""
    if groups is None:
        groups = prior
    elif np.shape(groups) != prior.shape:
        raise ValueError(f"groups must give one group per prior weight ({prior.size}), but got shape "
                         f"{np.shape(groups)}")
    _, inverse = np.unique(np.asarray(groups), return_inverse=True)
    inverse = inverse.astype(np.intp, copy=False).ravel()
    size = int(inverse.max()) + 1
    level = np.zeros(size)
    np.maximum.at(level, inverse, prior)  # one weight per group: its deciding category's
    want = np.bincount(inverse, weights=prior, minlength=size) / float(prior.sum())
    return inverse, want, level >= keep


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

    def __init__(self, hard_weight: float, prior: np.ndarray | None = None, kind: str | None = None,
                 keep_rare_share: float | None = None, groups: np.ndarray | None = None) -> None:
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
        if keep_rare_share is not None and not float(keep_rare_share) > 1.0:
            raise ValueError(f"keep_rare_share must be a prior weight > 1 or None, but got {keep_rare_share=}")
        self.keep_rare_share = None if keep_rare_share is None else float(keep_rare_share)
        # the groups that keep their share (each position's group, each group's share of the prior, and which
        # groups keep it; None: no prior, no keep_rare_share, or no weight that high)
        self.groups: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        if prior is not None and keep_rare_share is not None and prior.size and prior.max() >= keep_rare_share:
            self.groups = _share_groups(prior, groups, float(keep_rare_share))

    def fingerprint(self) -> dict[str, Any] | None:
        """The prior is recomputed from the categories, not saved: a state keeps its kind and a checksum, so a
        resume with other categories (or none) is refused rather than silently re-planned."""
        if self.prior is None:
            return None
        return {"kind": self.kind, "size": int(self.prior.size), "boosted": int(np.count_nonzero(self.boosted)),
                "crc32": zlib.crc32(np.ascontiguousarray(self.prior, dtype="<f8").tobytes())}

    def weights(self, positions: np.ndarray | None, size: int, group_scale: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``(prior, hardness, group_scale)`` over ``size`` positions: the prior, with its rare groups raised by
        ``group_scale`` to keep their share (:func:`hold_share`, computed unless given; None: ``keep_rare_share``
        does not apply), and ``hard_weight`` at ``positions``."""
        if self.prior is not None and self.prior.size != size:
            raise ValueError(f"the prior has {self.prior.size} weights, but the sampler weighs {size} positions")
        prior = np.ones(size) if self.prior is None else self.prior
        hardness = np.ones(size)
        if positions is not None:
            hardness[positions] = self.hard_weight
        if self.groups is not None:
            groups, want, rare = self.groups
            if group_scale is None:
                group_scale = hold_share(prior * hardness, groups, want, rare)
            if (group_scale != 1.0).any():
                prior = prior * group_scale[groups]
        return prior, hardness, group_scale

    def plan(self, sampler: PlanSampler, positions: np.ndarray | None, epoch: int) -> PlanFigures:
        """Set ``sampler``'s weights for ``epoch`` and describe the plan it will draw.

        ``positions``: the mined positions (None or empty: none). Uniform when nothing is mined and there is no
        prior."""
        mined = positions is not None and positions.size > 0
        scale = None  # the rare groups' factors (keep_rare_share), computed once for the plan and its figures
        if self.prior is None:  # two levels, a byte a position: no float array at all
            assert positions is not None or not mined
            sampler.set_weights(Weights.two_levels(sampler.num_weighted, positions, self.hard_weight)  # type: ignore[arg-type]
                                if mined else None)
        else:
            prior, hardness, scale = self.weights(positions if mined else None, sampler.num_weighted)
            sampler.set_weights(prior * hardness)
            del prior, hardness  # recomputed below (cheaply: the group scale is kept), not held through counts()
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
        boosted = prior_draws = boost = prior_boost = rare_scale = None
        if self.prior is not None:
            prior, hardness, scale = self.weights(positions if mined else None, sampler.num_weighted, scale)
            rare_scale = None if scale is None else float(scale.max())
            up = self.boosted
            boosted, prior_draws = int(up.sum()), int(weighted[up].sum())
            boost, prior_boost = boost_split(weighted, prior, hardness)
        return PlanFigures(np.bincount(weighted).tolist(), sampler.source_counts(), int(counts.sum()), hard, ratio,
                           boosted, prior_draws, boost, prior_boost, rare_scale)

    def __repr__(self) -> str:
        prior = "" if self.prior is None else f", prior=<{self.prior.size} weights, max {self.prior.max(initial=1):g}>"
        return f"Planner(hard_weight={self.hard_weight}{prior})"
