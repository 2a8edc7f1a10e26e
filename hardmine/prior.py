"""Frequency priors: rare categories drawn more often, from each sample's categories, before any loss is seen.

A prior has one method, ``category_weights(share) -> weights``: from ``f_c``, the share of samples that
contain category ``c``, a weight >= 1 per category (1: no boost). A sample's prior weight is the largest
weight among its categories (instance-aware, as in LVIS: an image is repeated for its rarest object), and 1
for a sample with no category. The planner takes them divided by their smallest (:func:`prior_and_groups`:
the least boosted sample weighs 1) and multiplies them with the hardness weight of mined samples.

>>> from hardmine.categories import Categories
>>> cats = Categories.from_samples([0, 0, 0, 0, 0, 0, 0, 0, 1, [0, 2]])   # f = 0.9, 0.1, 0.1
>>> RepeatFactor(threshold=0.4).weights(cats).round(2).tolist()
[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0]
>>> ClassBalanced(power=1.0).weights(cats).round(2).tolist()
[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 9.0, 9.0]
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from hardmine.categories import Categories, CategoriesLike

__all__ = ["ClassBalanced", "Prior", "RepeatFactor", "prior_and_groups", "prior_weights"]


class Prior(ABC):
    """Base of the frequency priors: one method, :meth:`category_weights`."""

    kind: ClassVar[str] = "prior"

    @abstractmethod
    def category_weights(self, share: np.ndarray) -> np.ndarray:
        """Weight >= 1 per category from ``share`` (``f_c`` in (0, 1], the share of samples containing ``c``)."""

    def weights(self, categories: Categories) -> np.ndarray:
        """Per-sample weight: the max over the sample's categories (1 for a sample with none)."""
        return categories.per_sample_max(self.category_weights(categories.sample_share()), empty=1.0)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class RepeatFactor(Prior):
    """Repeat-factor sampling (LVIS, Gupta et al. 2019): ``r_c = max(1, sqrt(threshold / f_c))``.

    Categories in at least ``threshold`` of the samples are not boosted; rarer ones by the square root of
    how much rarer they are. ``threshold`` is a share of samples, in (0, 1].
    """

    kind: ClassVar[str] = "repeat_factor"

    def __init__(self, threshold: float) -> None:
        if not (isinstance(threshold, (int, float)) and 0.0 < float(threshold) <= 1.0):
            raise ValueError(f"threshold must be a share of samples in (0, 1], but got {threshold=!r}")
        self.threshold = float(threshold)

    def category_weights(self, share: np.ndarray) -> np.ndarray:
        return np.maximum(1.0, np.sqrt(self.threshold / share))


class ClassBalanced(Prior):
    """Power-smoothed class balance: ``w_c = (f_max / f_c) ** power`` (1 for the most frequent category).

    ``power=1`` balances single-label classes exactly (each class drawn equally often); ``0.5`` is the
    square-root smoothing that equals repeat-factor sampling with ``threshold = f_max``; 0 is uniform.
    """

    kind: ClassVar[str] = "class_balanced"

    def __init__(self, power: float) -> None:
        if not (isinstance(power, (int, float)) and math.isfinite(power) and 0.0 <= float(power) <= 2.0):
            raise ValueError(f"power must be a number in [0, 2], but got {power=!r}")
        self.power = float(power)

    def category_weights(self, share: np.ndarray) -> np.ndarray:
        if not share.size:
            return np.ones(0)
        return np.asarray((float(share.max()) / share) ** self.power, dtype=np.float64)


def _categories_of_targets(categories: Any, targets: list[tuple[str, int]],
                           auxiliaries: list[str]) -> list[Categories]:
    if not isinstance(categories, Mapping):
        raise TypeError("with a FusionDataset, give categories per target source: {target name: categories}, "
                        f"but got a {type(categories).__name__}")
    names = [n for n, _ in targets]
    aux = sorted(set(categories) & set(auxiliaries))
    if aux:
        raise ValueError(f"categories were given for auxiliary source(s) {aux}: auxiliaries are drawn at their "
                         f"fixed quota and never re-weighted; give categories for the targets {names} only")
    unknown = sorted(set(categories) - set(names))
    missing = [n for n in names if n not in categories]
    if unknown or missing:
        raise ValueError(f"categories must name every target source {names} (got unknown {unknown}, missing "
                         f"{missing})")
    return [Categories.from_samples(categories[name], size) for name, size in targets]


def _read_categories(categories: CategoriesLike | Mapping[str, CategoriesLike], num_samples: int,
                     fusion: Any) -> list[Categories]:
    """The categories of a sampler's weight positions: one :class:`Categories` for a plain dataset, one per
    target source, in order, for a fusion (``fusion``: its layout)."""
    if fusion is None:
        if isinstance(categories, Mapping):
            raise TypeError("categories per source ({name: ...}) apply to a FusionDataset only; give one entry "
                            "per sample")
        return [Categories.from_samples(categories, num_samples)]
    targets = [(s.name, int(s.size)) for s in fusion.specs[: fusion.num_targets]]
    auxiliaries = [s.name for s in fusion.specs[fusion.num_targets:]]
    return _categories_of_targets(categories, targets, auxiliaries)


def prior_and_groups(prior: Prior, categories: CategoriesLike | Mapping[str, CategoriesLike], num_samples: int,
                     fusion: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """The prior over a sampler's weight positions (:func:`prior_weights`), and per position the category that
    decides its weight (its rarest category, by weight; the smallest id among ties) as a group id, distinct
    across the targets of a fusion; -1 for a sample with no category.

    The weights are :meth:`Prior.weights` divided by their smallest (per fusion target, each of which draws its
    own quota), which leaves the plan as it is and makes "boosted" mean drawn more often than the least
    boosted sample: a repeat-factor threshold above every category's share boosts every sample by at least
    ``sqrt(threshold / f_max)``, which is no boost at all.

    >>> weights, groups = prior_and_groups(ClassBalanced(1.0), [0, 0, 1, [0, 1], []], 5)
    >>> weights.round(2).tolist(), groups.tolist()
    ([1.0, 1.0, 1.5, 1.5, 1.0], [0, 0, 1, 1, -1])
    """
    weights, groups, offset = [], [], 0
    for c in _read_categories(categories, num_samples, fusion):
        w = prior.weights(c)
        weights.append(w / w.min() if w.size else w)
        codes = c.per_sample_argmax(prior.category_weights(c.sample_share()))
        groups.append(np.where(codes >= 0, codes + offset, -1))
        offset += c.num_categories
    if not weights:
        return np.ones(0), np.zeros(0, dtype=np.int64)
    return np.concatenate(weights), np.concatenate(groups)


def prior_weights(prior: Prior, categories: CategoriesLike | Mapping[str, CategoriesLike],
                  num_samples: int, fusion: Any = None) -> np.ndarray:
    """The prior over a sampler's weight positions: one per dataset index, or one per target index of a
    fusion (``fusion``: its layout), each target's prior computed from its own categories, and scaled so that
    its least boosted sample weighs 1 (:func:`prior_and_groups`).

    >>> prior_weights(RepeatFactor(0.5), [0, 0, 0, 1], 4).round(3).tolist()  # raw: 1.0 for f = 0.75, 1.414
    [1.0, 1.0, 1.0, 1.414]
    >>> prior_weights(RepeatFactor(0.9), [0, 0, 0, 1], 4).round(3).tolist()  # raw: 1.095 and 1.897
    [1.0, 1.0, 1.0, 1.732]
    """
    return prior_and_groups(prior, categories, num_samples, fusion)[0]
