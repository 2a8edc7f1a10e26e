"""Cartography: ids the model stays unsure of, epoch after epoch, look mislabeled (Swayamdipta et al. 2020)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from hardmine.guards._base import check_fraction, check_int
from hardmine.guards._tracked import TrackedGuard
from hardmine.ledger import LedgerStats
from hardmine.selection import quantile


class Cartography(TrackedGuard):
    """Exclude hard-to-learn ids: low mean confidence and low variability across epochs.

    Each epoch an id's score becomes a confidence ``p = exp(-score)`` (the probability of its label, for a
    cross-entropy loss). Once an id has been seen in ``warmup`` epochs, it is excluded when the mean of its ``p``
    over those epochs is below ``max_confidence`` and their standard deviation is below ``max_variability``:
    the "hard-to-learn" region of a data map, where mislabeled samples gather. A learnable rare sample's
    confidence rises (high variability) or is already high; a mislabeled one stays low and flat until the model
    memorises it, and even then its mean over the run stays low. That memory is what
    :class:`~hardmine.guards.Learnability`'s trend test lacks when training is fast: memorised noise falls too.

    Only ids at or below the ``quantile`` of the judged ids' mean confidence can be excluded (0.5: at most half
    of them; 0: no such limit), so a model that is still unsure of everything (early in training, or a loss far
    from a log-likelihood) keeps mining its most confident half instead of nothing. The first call of an epoch
    folds that epoch in; calling it again in the same epoch gives the same answer.

    Memory: 9 bytes per tracked id (float32 sums of p and of p squared, epochs seen saturating at 255), and 8
    more for its id unless the ids are a dense range ``0..n-1``.
    """

    name: ClassVar[str] = "hard_to_learn"
    label: ClassVar[str] = "likely noise (hard to learn: low, flat confidence)"
    _FIELDS: ClassVar[dict[str, tuple[type, float]]] = {"sum_p": (np.float32, 0.0), "sum_p2": (np.float32, 0.0),
                                                        **TrackedGuard._FIELDS}

    def __init__(self, warmup: int = 3, max_confidence: float = 0.25, max_variability: float = 0.05,
                 quantile: float = 0.5) -> None:
        super().__init__()
        self.warmup = check_int("warmup", warmup, 1)
        self.max_confidence = check_fraction("max_confidence", max_confidence)
        self.max_variability = check_fraction("max_variability", max_variability)
        self.quantile = check_fraction("quantile", quantile, low_open=False)

    def _warmup_epochs(self) -> int:
        return self.warmup

    def exclude(self, stats: LedgerStats, epoch: int) -> np.ndarray:
        rows, new = self._rows(stats.ids, epoch)
        a = self._arrays
        if new:  # the first call of an epoch folds its confidences in; a second one judges on the same sums
            p = np.negative(np.asarray(stats.scores, dtype=np.float32))
            np.exp(p, out=p)
            a["sum_p"][rows] += p  # in place for a slice; the ids of one call are unique, so also for an index
            p *= p
            a["sum_p2"][rows] += p
            del p
            self._count_epoch(rows)
        n = a["tracked"][rows]
        out = n >= self.warmup
        if not out.any():
            return out
        judged = out.copy() if self.quantile > 0 else out
        n = np.maximum(n, 1).astype(np.float32)  # an id new in a second call of an epoch has 0 (and is not judged)
        mean = a["sum_p"][rows] / n  # three float32 temporaries an id at most
        out &= mean < np.float32(self.max_confidence)
        if self.quantile > 0 and out.any():  # never more than the least confident `quantile` of the judged ids
            out &= mean <= quantile(mean[judged], self.quantile)
        del judged
        var = a["sum_p2"][rows] / n
        del n
        var -= np.square(mean, out=mean)
        out &= var < np.float32(self.max_variability) ** 2  # a negative rounding residue reads as 0: flat
        return out
