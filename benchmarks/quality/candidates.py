"""Prototype noise guards and selectors for the issue-12 study (dense ids only; not library code)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from hardmine.guards import Guard
from hardmine.ledger import LedgerStats
from hardmine.selection import Selection, Selector, TopK


class _Dense(Guard):
    """Per-id arrays indexed by the (dense) id; one update per epoch."""

    def __init__(self) -> None:
        self._epoch: int | None = None
        self._n = 0

    def _grow(self, ids: np.ndarray, **fill: float) -> None:
        need = int(ids.max()) + 1 if ids.size else 0
        if need > self._n:
            for name, value in fill.items():
                old = getattr(self, name, np.empty(0))
                new = np.full(need, value)
                new[: old.size] = old
                setattr(self, name, new)
            self._n = need


class Cartography(_Dense):
    """Dataset cartography (Swayamdipta et al. 2020): p = exp(-score) per epoch; an id whose mean p is below
    ``max_conf`` and whose std of p is below ``max_var`` after ``warmup`` epochs is hard-to-learn: excluded.

    The prototype the study measured; the library's :class:`hardmine.guards.Cartography` (float32 sums, any ids,
    state) reproduces it (study variants K4_0.2_0.05 and CP4_0.2_0.05 measure the same to the digit)."""

    name: ClassVar[str] = "hard_to_learn"

    def __init__(self, warmup: int = 4, max_conf: float = 0.3, max_var: float = 0.15) -> None:
        super().__init__()
        self.warmup, self.max_conf, self.max_var = warmup, max_conf, max_var

    def exclude(self, stats: LedgerStats, epoch: int) -> np.ndarray:
        self._grow(stats.ids, s1=0.0, s2=0.0, m=0.0)
        p = np.exp(-stats.scores.astype(np.float64))
        if self._epoch != epoch:
            self.s1[stats.ids] += p
            self.s2[stats.ids] += p * p
            self.m[stats.ids] += 1
            self._epoch = epoch
        m = self.m[stats.ids]
        conf = self.s1[stats.ids] / np.maximum(m, 1)
        var = np.sqrt(np.maximum(self.s2[stats.ids] / np.maximum(m, 1) - conf**2, 0))
        return (m >= self.warmup) & (conf < self.max_conf) & (var < self.max_var)


class Slope(_Dense):
    """Loss-trajectory slope with a warm-up: an EMA of the per-epoch change of the score; ids in the top
    ``1 - quantile`` of scores whose smoothed change is not below ``-min_fall`` (relative to their score) after
    ``warmup`` epochs are excluded."""

    name: ClassVar[str] = "flat_slope"

    def __init__(self, warmup: int = 4, min_fall: float = 0.05, quantile: float = 0.5, decay: float = 0.5) -> None:
        super().__init__()
        self.warmup, self.min_fall, self.quantile, self.decay = warmup, min_fall, quantile, decay

    def exclude(self, stats: LedgerStats, epoch: int) -> np.ndarray:
        self._grow(stats.ids, prev=np.nan, slope=0.0, m=0.0)
        s = stats.scores.astype(np.float64)
        ids = stats.ids
        if self._epoch != epoch:
            prev = self.prev[ids]
            d = np.where(np.isnan(prev), 0.0, s - prev)
            seen = ~np.isnan(prev)
            self.slope[ids] = np.where(seen & (self.m[ids] > 1), self.decay * self.slope[ids] + (1 - self.decay) * d,
                                       np.where(seen, d, 0.0))
            self.prev[ids] = s
            self.m[ids] += 1
            self._epoch = epoch
        cut = np.quantile(s, self.quantile) if s.size else 0.0
        rel = self.slope[ids] / np.maximum(s, 1e-6)
        return (self.m[ids] >= self.warmup) & (s >= cut) & (rel > -self.min_fall)


class CategoryTopK(Selector):
    """Top-k by the score relative to the id's own category: score / median score of its category."""

    def __init__(self, k: float, categories: np.ndarray) -> None:
        self.k, self.categories = k, np.asarray(categories)
        self.topk = TopK(k)

    def select(self, ids: np.ndarray, scores: np.ndarray) -> Selection:
        cats = self.categories[ids]
        rel = np.empty_like(scores, dtype=np.float64)
        for c in np.unique(cats):  # a prototype: one pass per category
            m = cats == c
            rel[m] = scores[m] / max(float(np.median(scores[m])), 1e-6)
        sel = self.topk.select(ids, rel)
        return Selection(sel.ids, None if sel.cut is None else float(np.min(scores[np.isin(ids, sel.ids)])))


def with_selector(build: Any, make_selector: Any) -> Any:
    """A variant factory whose miner's selector is replaced (``make_selector(task) -> Selector``)."""

    def wrapped(task: Any, seed: int) -> Any:
        s = build(task, seed)
        s.miner.selector = make_selector(task)
        return s

    return wrapped


class SoftMixturePlanner:
    """Mixture posteriors as soft weights: a two-Gaussian fit of the eligible scores each epoch; a mined id's
    hardness is ``1 + (hard_weight - 1) * P(low-loss component | score)`` instead of ``hard_weight``, so
    likely-noise ids (the high component) get little of the boost and no id is cut outright."""

    def __init__(self, miner: Any) -> None:
        from hardmine.planner import Planner

        self.miner, self.inner = miner, Planner(miner.planner.hard_weight, miner.planner.prior)
        self.prior = miner.planner.prior

    def plan(self, sampler: Any, positions: Any, epoch: int) -> Any:
        from hardmine.guards._mixture import _fit_two_gaussians

        if positions is None or not positions.size:
            return self.inner.plan(sampler, positions, epoch)
        stats = self.miner.id_space.eligible(self.miner.ledger.stats(1))
        x = stats.scores.astype(np.float64)
        _, _, _, post_high = _fit_two_gaussians(np.log1p(x), 30)
        trust = np.ones(sampler.num_weighted)
        trust[stats.ids] = 1.0 - post_high  # dense ids: the id is the position
        prior = np.ones(sampler.num_weighted) if self.prior is None else self.prior
        hard = np.ones(sampler.num_weighted)
        hard[positions] = 1.0 + (self.inner.hard_weight - 1.0) * trust[positions]
        sampler.set_weights(prior * hard)
        sampler.set_epoch(epoch)
        return _figures(sampler)


def _figures(sampler: Any) -> Any:
    from hardmine.planner import PlanFigures

    counts = sampler.counts()
    return PlanFigures(np.bincount(counts[: sampler.num_weighted]).tolist(), sampler.source_counts(),
                       int(counts.sum()))


def soft_mixture(build: Any) -> Any:
    """A variant factory whose miner plans with :class:`SoftMixturePlanner`."""

    def wrapped(task: Any, seed: int) -> Any:
        s = build(task, seed)
        s.miner.planner = SoftMixturePlanner(s.miner)
        return s

    return wrapped
