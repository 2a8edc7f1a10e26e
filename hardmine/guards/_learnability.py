"""Learnability: high-loss ids whose score is not falling against their own past look mislabeled."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from hardmine.guards._base import check_fraction, check_int
from hardmine.guards._tracked import TrackedGuard
from hardmine.ledger import LedgerStats
from hardmine.selection import quantile


class Learnability(TrackedGuard):
    """Exclude high-loss ids whose score is not falling: hard but learnable samples get easier.

    Keeps a per-id reference, an EMA over past epochs of the ledger score (``smoothing`` = weight of
    the old reference). An id among the top ``1 - quantile`` of scores is excluded once it has been
    tracked for ``patience`` epochs and its score is not at least ``min_drop`` (relative) below its
    reference. Mislabeled samples keep a flat, high loss until the model memorises them; samples of a
    learnable rare mode drop as soon as the model is shown enough of them. Tracked from the first call
    on, so call it every epoch (also before mining starts) to have the trend ready when it does.
    Calling it again in the same epoch gives the same answer (the reference moves once per epoch).

    ``patience`` is the warm-up: no id is judged before it has been tracked that many epochs. At 2 every
    clean rare sample was kept out when mining started, still high-loss and not yet falling
    (docs/benchmarks.md). The trend test is what works when training is slow; where it is fast, memorised
    noise falls too and :class:`~hardmine.guards.Cartography` is the guard that still sees it.

    Memory: 9 bytes per tracked id (reference, this epoch's score, tracked epochs saturating at 255), and
    8 more for its id unless the ids are a dense range ``0..n-1``.
    """

    name: ClassVar[str] = "not_learning"
    label: ClassVar[str] = "likely noise (loss not falling)"
    _FIELDS: ClassVar[dict[str, tuple[type, float]]] = {"ref": (np.float32, 0.0), "pending": (np.float32, np.nan),
                                                        **TrackedGuard._FIELDS}

    def __init__(self, patience: int = 5, min_drop: float = 0.15, quantile: float = 0.5,
                 smoothing: float = 0.6) -> None:
        super().__init__()
        self.patience = check_int("patience", patience, 1)
        self.min_drop = check_fraction("min_drop", min_drop, low_open=False)
        self.quantile = check_fraction("quantile", quantile, low_open=False)
        self.smoothing = check_fraction("smoothing", smoothing, low_open=False)

    def _warmup_epochs(self) -> int:
        return self.patience

    def exclude(self, stats: LedgerStats, epoch: int) -> np.ndarray:
        rows, new = self._rows(stats.ids, epoch)
        if new:
            self._fold()  # last epoch's scores into the reference (ids added just now have none pending)
        a = self._arrays
        scores = np.asarray(stats.scores, dtype=np.float32)
        out = (a["tracked"][rows] >= self.patience) & (scores >= a["ref"][rows] * np.float32(1.0 - self.min_drop))
        if self.quantile > 0 and out.any():  # in the warm-up no id is a candidate: no quantile to take
            out &= scores >= quantile(scores, self.quantile)
        a["pending"][rows] = scores
        return out

    def _fold(self) -> None:
        """The epoch's scores into the reference, in place: ``s * ref + (1 - s) * score`` for ids tracked
        before, the score itself for new ones."""
        ref, pending, tracked = self._arrays["ref"], self._arrays["pending"], self._arrays["tracked"]
        seen = np.isfinite(pending)
        both = seen & (tracked > 0)
        update = pending * np.float32(1.0 - self.smoothing)
        update += ref * np.float32(self.smoothing)
        np.copyto(ref, update, where=both)
        np.copyto(ref, pending, where=seen & ~both)
        del update
        self._count_epoch(slice(None), seen)
        pending.fill(np.nan)
