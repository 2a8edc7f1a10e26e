"""Plan weights in their compact form: levels (distinct values) and one byte per index, when they allow it.

Every mining plan has few distinct weights (1 and ``hard_weight``, times a prior's per-category levels), so a
plan's weights cost a byte an index instead of eight, and rounding can work level by level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_MAX_LEVELS = 256  # more distinct weights than this: dense float64, rounded along the sorted order
_SAMPLE = 4096  # weights looked at to find the levels before every weight is checked against them


@dataclass(frozen=True)
class Weights:
    """Validated weights (finite, >= 0): as levels (``values`` ascending, a uint8 ``codes`` entry per index)
    when there are at most ``_MAX_LEVELS`` distinct ones (1 byte an index), else ``dense`` float64."""

    values: np.ndarray | None = None
    codes: np.ndarray | None = None
    dense: np.ndarray | None = None

    @classmethod
    def of(cls, weights: np.ndarray) -> Weights:
        """Validated float64 ``weights``, as levels when they have few distinct values."""
        levels = weight_levels(weights) if weights.size else None
        return cls(dense=weights) if levels is None else cls(*levels)

    @classmethod
    def two_levels(cls, size: int, positions: np.ndarray, weight: float) -> Weights:
        """Weight 1 everywhere and ``weight`` at ``positions``: the plain mining plan, a byte per index.

        >>> Weights.two_levels(4, np.array([2]), 3.0).array().tolist()
        [1.0, 1.0, 3.0, 1.0]
        """
        codes = np.zeros(size, dtype=np.uint8)
        if weight == 1.0:
            return cls(np.ones(1), codes)
        codes[positions] = 1
        return cls(np.array([1.0, float(weight)]), codes)

    def checked(self, size: int) -> Weights:
        """Itself, when it holds ``size`` finite, non-negative weights; else ValueError saying what is wrong."""
        if len(self) != size:
            raise ValueError(f"weights must have one entry per sample: expected length {size}, but got "
                             f"length {len(self)}")
        values = self.dense if self.dense is not None else self.values
        assert values is not None
        if values.size and (not np.isfinite(values).all() or values.min() < 0):
            raise ValueError(f"weights must be finite and >= 0, but got levels {values[:8].tolist()}")
        if self.dense is None:
            assert self.codes is not None and self.values is not None
            if self.codes.dtype != np.uint8 or (self.codes.size and int(self.codes.max()) >= self.values.size):
                raise ValueError(f"weight codes must be uint8 indices into the {self.values.size} levels")
        return self

    def __len__(self) -> int:
        return int((self.codes if self.dense is None else self.dense).size)  # type: ignore[union-attr]

    def array(self) -> np.ndarray:
        """One float64 weight per index."""
        if self.dense is not None:
            return self.dense.copy()
        assert self.values is not None and self.codes is not None
        return np.asarray(self.values[self.codes], dtype=np.float64)

    def part(self, lo: int, hi: int) -> Weights:
        """The weights of indices ``lo..hi-1``."""
        if self.dense is not None:
            return Weights(dense=self.dense[lo:hi])
        assert self.codes is not None
        return Weights(self.values, self.codes[lo:hi])

    def positive(self) -> int:
        """How many indices have a weight above 0."""
        if self.dense is not None:
            return int(np.count_nonzero(self.dense))
        assert self.values is not None and self.codes is not None
        zero = np.flatnonzero(self.values == 0)
        return len(self) - (int(np.count_nonzero(self.codes == zero[0])) if zero.size else 0)


def weight_levels(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(values ascending, uint8 code of each weight)`` when at most ``_MAX_LEVELS`` distinct weights; else None.

    Levels are found in a sample, every weight is checked against them, and levels the sample missed (rare
    or periodically placed ones) are sampled from the weights that did not match, a few rounds at most."""
    values = np.empty(0, dtype=weights.dtype)
    candidates = weights
    for _ in range(4):
        values = np.union1d(values, candidates[:: max(1, candidates.size // _SAMPLE)])
        if values.size > _MAX_LEVELS:
            return None
        if values.size == 1:
            codes = np.zeros(weights.size, dtype=np.uint8)
            missed = weights != values[0]
        elif values.size == 2:  # the usual plan (1 and hard_weight): two comparisons instead of a search
            codes = (weights == values[1]).view(np.uint8)
            missed = ~(weights == values[0]) & (codes == 0)
        else:
            codes = np.minimum(np.searchsorted(values, weights), values.size - 1).astype(np.uint8)
            missed = values[codes] != weights
        if not missed.any():
            return values, codes
        candidates = weights[missed]
    return None
