"""The planner: turn the mined positions into the next epoch's weights, and say what the plan draws.

Every index of the weight vector gets weight 1 and a mined one ``hard_weight``; the sampler turns the
weights into a fixed-length plan (capped at ``max_repeats``). :class:`PlanFigures` are read off that
plan itself, so the event and the report state what will be drawn, not what was asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hardmine.sampler import PlanSampler, Weights

__all__ = ["PlanFigures", "Planner"]


@dataclass(frozen=True)
class PlanFigures:
    """The next epoch's plan in numbers: draws per index (histogram), per source, and of the mined ids."""

    draws_hist: list[int]  # weighted indices drawn 0, 1, 2, ... times
    per_source: dict[str, int]  # draws per source (fusion)
    total_draws: int  # the epoch length (global stream)
    mined_draws: int | None = None  # draws of mined indices (None: nothing mined)
    draw_ratio: float | None = None  # mean draws of a mined index / of any other


class Planner:
    """Weights 1 everywhere and ``hard_weight`` at mined positions.

    >>> from hardmine import HardMiningSampler
    >>> s = HardMiningSampler(6, seed=0)
    >>> figures = Planner(hard_weight=2.0).plan(s, np.array([4, 5]), epoch=1)
    >>> s.weights.tolist(), figures.mined_draws, figures.total_draws
    ([1.0, 1.0, 1.0, 1.0, 2.0, 2.0], 3, 6)
    """

    def __init__(self, hard_weight: float) -> None:
        if not float(hard_weight) >= 1.0:
            raise ValueError(f"hard_weight must be a number >= 1, but got {hard_weight=}")
        self.hard_weight = float(hard_weight)

    def weights(self, positions: np.ndarray, size: int) -> Weights:
        """1 for every index, ``hard_weight`` at ``positions`` (a byte an index)."""
        return Weights.two_levels(size, positions, self.hard_weight)

    def plan(self, sampler: PlanSampler, positions: np.ndarray | None, epoch: int) -> PlanFigures:
        """Set ``sampler``'s weights for ``epoch`` (uniform when ``positions`` is None or empty) and describe
        the plan it will draw."""
        mined = positions is not None and positions.size > 0
        sampler.set_weights(self.weights(positions, sampler.num_weighted) if mined else None)  # type: ignore[arg-type]
        sampler.set_epoch(epoch)
        counts = sampler.counts()
        weighted = counts[: sampler.num_weighted]
        figures = PlanFigures(draws_hist=np.bincount(weighted).tolist(), per_source=sampler.source_counts(),
                              total_draws=int(counts.sum()))
        if not mined:
            return figures
        assert positions is not None
        hard = int(weighted[positions].sum())
        rest = sampler.num_weighted - positions.size
        ratio = 1.0
        if rest:
            other_mean = (float(weighted.sum()) - hard) / rest
            ratio = hard / positions.size / max(other_mean, 1e-12)
        return PlanFigures(figures.draws_hist, figures.per_source, figures.total_draws, hard, ratio)

    def __repr__(self) -> str:
        return f"Planner(hard_weight={self.hard_weight})"
