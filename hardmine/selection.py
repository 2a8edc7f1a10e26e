"""Which observed ids count as hard: the top K, those above a percentile, or above a threshold.

A selector has one method, ``select(ids, scores) -> Selection``. Ties at the cut are broken by id
(smaller id first) for top-K, so a selection is a pure function of its input on every rank.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Percentile", "Selection", "Selector", "Threshold", "TopK", "select_among", "why_none"]


@dataclass(frozen=True)
class Selection:
    """The selected ids (ascending) and the score cut they satisfy (``score >= cut``; None when empty).

    >>> sel = TopK(2).select(np.array([10, 11, 12]), np.array([0.5, 2.0, 1.0]))
    >>> sel.ids.tolist(), sel.cut, len(sel)
    ([11, 12], 1.0, 2)
    """

    ids: np.ndarray
    cut: float | None

    def __len__(self) -> int:
        return int(self.ids.size)


def quantile(values: np.ndarray, q: float, dtype: type[np.floating] | None = None) -> np.floating:
    """``np.quantile(values.astype(dtype), q)`` (method "linear") of a non-empty, finite 1-D array, exactly, in one
    partition at one rank where NumPy partitions at four (``dtype``: of the interpolation, default ``values``').

    >>> quantile(np.array([4.0, 1.0, 3.0, 2.0], np.float32), 0.5)
    np.float32(2.5)
    """
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"quantile needs a non-empty 1-D array, but got shape {values.shape}")
    cast: type[np.floating] = np.dtype(dtype or values.dtype).type
    virtual = (values.size - 1) * float(q)
    if virtual >= values.size - 1:
        return cast(values.max())
    k = max(math.floor(virtual), 0)
    gamma = virtual - k
    part = np.partition(values, k)
    lo = cast(part[k])
    if gamma == 0:
        return lo
    hi = cast(part[k + 1 :].min())
    diff = hi - lo  # NumPy's lerp, to the bit: from the nearer end
    return cast(lo + diff * gamma) if gamma < 0.5 else cast(hi - diff * (1 - gamma))


def _empty() -> Selection:
    return Selection(np.empty(0, dtype=np.int64), None)


class Selector:
    """Base class: pick hard ids among the eligible ones. One method, ``select``.

    >>> class AboveMean(Selector):
    ...     def select(self, ids, scores):
    ...         cut = float(scores.mean())
    ...         return Selection(ids[scores >= cut], cut)
    >>> AboveMean().select(np.array([1, 2, 3]), np.array([1.0, 2.0, 6.0])).ids.tolist()
    [3]
    """

    def select(self, ids: np.ndarray, scores: np.ndarray) -> Selection:
        raise NotImplementedError


class TopK(Selector):
    """The ``k`` highest scores; ``0 < k < 1`` means that fraction of the eligible ids (rounded).

    >>> TopK(2).select(np.array([5, 6, 7]), np.array([1.0, 3.0, 3.0])).ids.tolist()
    [6, 7]
    >>> TopK(0.5).select(np.array([1, 2, 3, 4]), np.array([4.0, 3.0, 2.0, 1.0])).ids.tolist()
    [1, 2]
    """

    def __init__(self, k: float) -> None:
        if not math.isfinite(k) or k <= 0:
            raise ValueError(f"k must be a count >= 1 or a fraction in (0, 1), but got {k=}")
        if k >= 1 and int(k) != k:
            raise ValueError(f"k >= 1 is a count and must be an integer, but got {k=}")
        self.k = float(k) if k < 1 else int(k)

    def count(self, num_eligible: int) -> int:
        """How many ids ``k`` asks for out of ``num_eligible``."""
        n = round(self.k * num_eligible) if self.k < 1 else int(self.k)
        return min(max(n, 0), num_eligible)

    def select(self, ids: np.ndarray, scores: np.ndarray) -> Selection:
        n = self.count(ids.size)
        if n == 0:
            return _empty()
        if n == ids.size:
            return Selection(np.sort(ids), float(scores.min()))
        cut = np.partition(scores, ids.size - n)[ids.size - n]  # the n-th largest score, O(N)
        above = scores > cut
        ties = np.sort(ids[scores == cut])[: n - int(np.count_nonzero(above))]  # smaller ids win ties
        return Selection(np.sort(np.concatenate([ids[above], ties])), float(cut))

    def __repr__(self) -> str:
        return f"TopK(k={self.k})"


class Percentile(Selector):
    """Ids whose score is at or above the ``percentile``-th percentile of the eligible scores.

    >>> Percentile(50).select(np.arange(4), np.array([1.0, 2.0, 3.0, 4.0])).ids.tolist()
    [2, 3]
    """

    def __init__(self, percentile: float) -> None:
        if not (0.0 <= percentile <= 100.0):
            raise ValueError(f"percentile must be between 0 and 100 inclusive, but got {percentile=}")
        self.percentile = float(percentile)

    def select(self, ids: np.ndarray, scores: np.ndarray) -> Selection:
        if ids.size == 0:
            return _empty()
        cut = float(quantile(scores, self.percentile / 100, np.float64))  # = np.percentile of a float64 copy
        return Selection(ids[scores >= cut], cut)

    def __repr__(self) -> str:
        return f"Percentile(percentile={self.percentile})"


class Threshold(Selector):
    """Ids whose score is at or above ``threshold``.

    >>> Threshold(2.5).select(np.array([1, 2, 3]), np.array([1.0, 2.5, 9.0])).ids.tolist()
    [2, 3]
    """

    def __init__(self, threshold: float) -> None:
        if not math.isfinite(threshold):
            raise ValueError(f"threshold must be finite, but got {threshold=}")
        self.threshold = float(threshold)

    def select(self, ids: np.ndarray, scores: np.ndarray) -> Selection:
        chosen = ids[scores >= self.threshold]
        return Selection(chosen, self.threshold if chosen.size else None)

    def __repr__(self) -> str:
        return f"Threshold(threshold={self.threshold})"


def select_among(selector: Selector, ids: np.ndarray, scores: np.ndarray, num_seen: int) -> Selection:
    """``selector`` on ``(ids, scores)``; a :class:`TopK` fraction is of ``num_seen`` ids, not of what guards left.

    >>> select_among(TopK(0.5), np.array([1, 2, 3]), np.array([3.0, 2.0, 1.0]), num_seen=4).ids.tolist()
    [1, 2]
    """
    if isinstance(selector, TopK) and selector.k < 1:
        count = selector.count(num_seen)
        selector = TopK(count) if count else selector
    return selector.select(ids, scores)


def why_none(selection: Selection | None, num_kept: int, selector: Selector) -> str | None:
    """Why nothing was mined (None when something was): the trigger, no eligible id, or the cut.

    >>> why_none(None, 5, TopK(2)), why_none(Selection(np.empty(0, np.int64), None), 0, TopK(2))
    ('trigger has not fired', 'no id was eligible')
    """
    if selection is None:
        return "trigger has not fired"
    if len(selection):
        return None
    return "no id was eligible" if not num_kept else f"no eligible id met the cut of {selector!r}"
