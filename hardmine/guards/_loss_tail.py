"""LossTail: a cap on the extreme-loss ids, whatever the actual noise rate."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from hardmine.guards._base import Guard, check_fraction
from hardmine.ledger import LedgerStats


def rank_desc(scores: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Positions sorted by score descending, ties broken by the smaller id first."""
    return np.lexsort((ids, -scores.astype(np.float64)))


class LossTail(Guard):
    """Exclude the ``fraction`` of ids with the highest scores: a cap on extreme-loss ids.

    Label noise sits at the very top of the loss ranking (the model confidently predicts the true
    class), so mining below that band keeps most of the "hard but learnable" samples. Blunt: the cap
    applies whatever the actual noise rate.
    """

    name: ClassVar[str] = "loss_tail"
    label: ClassVar[str] = "likely noise (extreme loss)"

    def __init__(self, fraction: float = 0.05) -> None:
        self.fraction = check_fraction("fraction", fraction)

    def exclude(self, stats: LedgerStats, epoch: int) -> np.ndarray:
        out = np.zeros(len(stats), dtype=bool)
        k = int(math.floor(self.fraction * len(stats)))
        if k:
            out[rank_desc(stats.scores, stats.ids)[:k]] = True
        return out


