"""Paired statistics of the quality benchmark: best learning rate per method, differences per seed.

Every method is trained at each of the learning rates on the same seeds (same data, noise and init per
seed). A method's score is at its own best learning rate (highest mean balanced accuracy over the seeds);
a difference between two methods is taken seed by seed at their best learning rates, and reported as the
mean and its standard error (std over seeds / sqrt(seeds)).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Cell", "Paired", "best_cells", "paired"]

Row = dict[str, Any]


@dataclass(frozen=True)
class Cell:
    """One method on one task at one noise level, at its best learning rate: per-seed scores (points)."""

    lr: float
    seeds: tuple[int, ...]
    scores: dict[str, np.ndarray]  # metric -> per-seed values, in seed order
    extra: dict[str, float]  # mean of diagnostics (mined shares, prior share)

    def mean(self, metric: str) -> float:
        return float(np.mean(self.scores[metric]))


@dataclass(frozen=True)
class Paired:
    """Mean and standard error of the per-seed difference ``a - b``."""

    mean: float
    se: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:+.1f} ± {self.se:.1f}"


METRICS = ("balanced", "common", "rare")
EXTRA = ("hard_noisy", "hard_rare", "prior_boost_share", "flag_noisy", "flag_clean_rare", "flag_clean_common")


TASK_ORDER = ("subpop", "small_object", "digits_lt", "tokens_lt")


def best_cells(rows: Sequence[Row]) -> dict[tuple[str, float, str], Cell]:
    """``(task, noise, variant) -> Cell`` at the learning rate with the best mean balanced accuracy, in task
    order (:data:`TASK_ORDER`, then any other)."""
    groups: dict[tuple[str, float, str, float], list[Row]] = {}
    for r in rows:
        groups.setdefault((r["task"], r["noise"], r["variant"], r["lr"]), []).append(r)
    best: dict[tuple[str, float, str], Cell] = {}
    for (task, noise, variant, lr), rs in groups.items():
        rs = sorted(rs, key=lambda r: r["seed"])
        scores = {m: 100.0 * np.array([r[m] for r in rs]) for m in METRICS}
        extra = {k: float(np.nanmean([r.get(k, math.nan) for r in rs])) if any(
            not math.isnan(r.get(k, math.nan)) for r in rs) else math.nan for k in EXTRA}
        cell = Cell(lr, tuple(r["seed"] for r in rs), scores, extra)
        key = (task, noise, variant)
        if key not in best or cell.mean("balanced") > best[key].mean("balanced"):
            best[key] = cell
    rank = {t: i for i, t in enumerate(TASK_ORDER)}
    return dict(sorted(best.items(), key=lambda kv: (rank.get(kv[0][0], len(rank)), kv[0][0])))


def paired(a: Cell, b: Cell, metric: str = "balanced") -> Paired:
    """``a - b`` seed by seed (the seeds both ran)."""
    common = sorted(set(a.seeds) & set(b.seeds))
    ia = [a.seeds.index(s) for s in common]
    ib = [b.seeds.index(s) for s in common]
    d = a.scores[metric][ia] - b.scores[metric][ib]
    se = float(np.std(d, ddof=1) / math.sqrt(d.size)) if d.size > 1 else math.nan
    return Paired(float(np.mean(d)) if d.size else math.nan, se, int(d.size))
