"""LossMixture: a two-Gaussian fit of the scores; the high component's extreme tail is excluded."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from hardmine.guards._base import Guard, check_fraction, check_int
from hardmine.ledger import LedgerStats


def _fit_two_gaussians(x: np.ndarray,
                       iterations: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """EM for a 1-D two-component Gaussian mixture; returns (weights, means, stds, posterior of high)."""
    lo, hi = np.quantile(x, [0.25, 0.9])
    mean = np.array([lo, hi], dtype=np.float64)
    floor = max(1e-6, 1e-3 * float(np.std(x)))
    std = np.full(2, max(float(np.std(x)) / 2.0, floor))
    weight = np.array([0.5, 0.5])
    for _ in range(iterations):
        z = (x[:, None] - mean) / std
        logp = np.log(weight) - np.log(std) - 0.5 * z * z
        logp -= logp.max(axis=1, keepdims=True)
        resp = np.exp(logp)
        resp /= resp.sum(axis=1, keepdims=True)
        nk = resp.sum(axis=0) + 1e-12
        weight = np.clip(nk / x.size, 1e-6, 1.0)
        mean = (resp * x[:, None]).sum(axis=0) / nk
        std = np.sqrt(np.maximum((resp * (x[:, None] - mean) ** 2).sum(axis=0) / nk, floor * floor))
    order = np.argsort(mean)
    weight, mean, std, resp = weight[order], mean[order], std[order], resp[:, order]
    return weight, mean, std, resp[:, 1]


class LossMixture(Guard):
    """Fit a two-component Gaussian mixture to the scores; exclude the high component's extreme tail.

    This is the "small-loss" family of label-noise methods (DivideMix, Co-teaching): clean samples
    form the low-loss component, mislabeled ones the high-loss one. Only ids that belong to the high
    component (posterior >= ``min_posterior``) *and* score above its mean plus ``z`` standard
    deviations are excluded, so rare-but-learnable ids in the lower part of that component stay
    minable. Nothing is excluded unless the two components are clearly apart -- Ashman's
    ``D = sqrt(2) * |mean_hi - mean_lo| / sqrt(std_lo**2 + std_hi**2)`` at least ``min_separation``
    (2 is the usual bar for a bimodal mixture; a single Gaussian split in two gives about 1.2) -- or
    when fewer than ``min_ids`` ids are scored.
    """

    name: ClassVar[str] = "loss_mixture"
    label: ClassVar[str] = "likely noise (high-loss mode)"

    def __init__(self, z: float = 0.0, min_posterior: float = 0.5, min_separation: float = 2.0,
                 min_ids: int = 50, iterations: int = 30) -> None:
        if not math.isfinite(float(z)):
            raise ValueError(f"z must be a finite number of standard deviations, but got {z=!r}")
        self.z = float(z)
        self.min_posterior = check_fraction("min_posterior", min_posterior)
        if not (math.isfinite(float(min_separation)) and float(min_separation) >= 0):
            raise ValueError(f"min_separation must be a finite number >= 0, but got {min_separation=!r}")
        self.min_separation = float(min_separation)
        self.min_ids = check_int("min_ids", min_ids, 2)
        self.iterations = check_int("iterations", iterations, 1)

    def exclude(self, stats: LedgerStats, epoch: int) -> np.ndarray:
        out = np.zeros(len(stats), dtype=bool)
        x = stats.scores.astype(np.float64)
        if x.size < self.min_ids or float(np.ptp(x)) == 0.0:
            return out
        _, mean, std, post_high = _fit_two_gaussians(x, self.iterations)
        separation = math.sqrt(2.0) * float(mean[1] - mean[0]) / float(np.hypot(std[0], std[1]))
        if separation < self.min_separation:
            return out
        out[:] = (post_high >= self.min_posterior) & (x > mean[1] + self.z * std[1])
        return out


