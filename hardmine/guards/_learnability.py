"""Learnability: high-loss ids whose score is not falling against their own past look mislabeled."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from hardmine._state import IdRange, owned
from hardmine.guards._base import Guard, check_fraction, check_int
from hardmine.ledger import LedgerStats, is_dense_range
from hardmine.selection import quantile


class Learnability(Guard):
    """Exclude high-loss ids whose score is not falling: hard but learnable samples get easier.

    Keeps a per-id reference, an EMA over past epochs of the ledger score (``smoothing`` = weight of
    the old reference). An id among the top ``1 - quantile`` of scores is excluded once it has been
    tracked for ``patience`` epochs and its score is not at least ``min_drop`` (relative) below its
    reference. Mislabeled samples keep a flat, high loss until the model memorises them; samples of a
    learnable rare mode drop as soon as the model is shown enough of them. Tracked from the first call
    on, so call it every epoch (also before mining starts) to have the trend ready when it does.
    Calling it again in the same epoch gives the same answer (the reference moves once per epoch).

    ``patience`` is the warm-up: no id is judged before it has been tracked that many epochs. The default, 5,
    gives a rare sample time to be drawn and start learning after mining begins; at 2 every clean rare
    sample was kept out when mining started, still high-loss and not yet falling (docs/benchmarks.md).

    Memory: 9 bytes per tracked id (reference, this epoch's score, tracked epochs saturating at 255), and
    8 more for its id unless the ids are a dense range ``0..n-1``.
    """

    name: ClassVar[str] = "not_learning"
    label: ClassVar[str] = "likely noise (loss not falling)"
    _STATE_KEYS: ClassVar[tuple[str, ...]] = ("ids", "ref", "pending", "tracked", "epoch")

    def __init__(self, patience: int = 5, min_drop: float = 0.15, quantile: float = 0.5,
                 smoothing: float = 0.6) -> None:
        self.patience = check_int("patience", patience, 1)
        self.min_drop = check_fraction("min_drop", min_drop, low_open=False)
        self.quantile = check_fraction("quantile", quantile, low_open=False)
        self.smoothing = check_fraction("smoothing", smoothing, low_open=False)
        self._ids = np.empty(0, dtype=np.int64)  # the tracked ids, ascending, unless _dense says 0.._dense-1
        self._dense: int | None = None
        self._ref = np.empty(0, dtype=np.float32)  # EMA of the scores of completed epochs
        self._pending = np.empty(0, dtype=np.float32)  # score seen in the current epoch (NaN: none)
        self._tracked = np.empty(0, dtype=np.uint8)  # completed epochs folded into the reference (max 255)
        self._epoch: int | None = None

    def exclude(self, stats: LedgerStats, epoch: int) -> np.ndarray:
        epoch = int(epoch)
        if self._epoch is not None and epoch != self._epoch:
            self._fold_pending()
        self._epoch = epoch
        rows = self._rows_for(stats.ids)
        scores = np.asarray(stats.scores, dtype=np.float32)
        out = (self._tracked[rows] >= self.patience) & (scores >= self._ref[rows] * np.float32(1.0 - self.min_drop))
        if self.quantile > 0 and out.any():  # in the warm-up no id is a candidate: no quantile to take
            out &= scores >= quantile(scores, self.quantile)
        self._pending[rows] = scores
        return out

    def _fold_pending(self) -> None:
        """The epoch's scores into the reference, in place: ``s * ref + (1 - s) * score`` for ids tracked
        before, the score itself for new ones."""
        seen = np.isfinite(self._pending)
        both = seen & (self._tracked > 0)
        update = self._pending * np.float32(1.0 - self.smoothing)
        update += self._ref * np.float32(self.smoothing)
        np.copyto(self._ref, update, where=both)
        np.copyto(self._ref, self._pending, where=seen & ~both)
        del update
        np.add(self._tracked, seen & (self._tracked < 255), out=self._tracked, casting="unsafe")
        self._pending.fill(np.nan)

    def _tracked_ids(self) -> np.ndarray:
        return np.arange(self._dense, dtype=np.int64) if self._dense is not None else self._ids

    def _rows_for(self, ids: np.ndarray) -> np.ndarray | slice:
        """Rows of ``ids`` in the state arrays, adding untracked ids (vectorised merge)."""
        if self._dense is not None and ids.size == self._dense and is_dense_range(ids):
            return slice(None)  # the same dense range as before: no comparison, no id array
        if self._dense is None and ids.size == self._ids.size and np.array_equal(ids, self._ids):
            return slice(None)  # the same ids as last epoch
        if self._dense is None and self._ids.size == 0:  # the first call: track these ids
            self._dense, self._ids = (ids.size, self._ids) if is_dense_range(ids) else (None, ids.copy())
            self._ref = np.zeros(ids.size, np.float32)
            self._pending = np.full(ids.size, np.nan, np.float32)
            self._tracked = np.zeros(ids.size, np.uint8)
            return slice(None)
        self._ids, self._dense = self._tracked_ids(), None
        pos = np.searchsorted(self._ids, ids)
        hit = pos < self._ids.size
        hit[hit] = self._ids[pos[hit]] == ids[hit]
        if not hit.all():
            merged = np.concatenate([self._ids, np.sort(ids[~hit])])  # stats ids are unique
            merged.sort(kind="stable")  # two sorted, disjoint runs: a linear merge (np.union1d hashes, slowly)
            old = np.searchsorted(merged, self._ids)
            ref = np.zeros(merged.size, np.float32)
            pending = np.full(merged.size, np.nan, np.float32)
            tracked = np.zeros(merged.size, np.uint8)
            ref[old], pending[old], tracked[old] = self._ref, self._pending, self._tracked
            self._ids, self._ref, self._pending, self._tracked = merged, ref, pending, tracked
            pos = np.searchsorted(self._ids, ids)
        return pos

    def _state_view(self) -> dict[str, Any]:
        return {"ids": IdRange(self._dense) if self._dense is not None else self._ids, "ref": self._ref,
                "pending": self._pending, "tracked": self._tracked, "epoch": -1 if self._epoch is None else self._epoch}

    def _state(self) -> dict[str, Any]:
        return owned(self._state_view())

    def _load(self, state: Mapping[str, Any]) -> None:
        ids = np.asarray(state["ids"], dtype=np.int64)
        arrays = {k: np.asarray(state[k]) for k in ("ref", "pending", "tracked")}
        if ids.ndim != 1 or any(a.shape != ids.shape for a in arrays.values()):
            raise ValueError("Learnability state arrays must be 1-D of one length, but got shapes "
                             + ", ".join(f"{k}={np.shape(state[k])}" for k in ("ids", *arrays)))
        if ids.size > 1 and not bool(np.all(ids[1:] > ids[:-1])):
            raise ValueError("Learnability state ids must be strictly ascending")
        self._dense, self._ids = (ids.size, np.empty(0, np.int64)) if is_dense_range(ids) else (None, ids)
        self._ref = arrays["ref"].astype(np.float32)
        self._pending = arrays["pending"].astype(np.float32)
        self._tracked = np.minimum(arrays["tracked"], 255).astype(np.uint8)
        epoch = int(state["epoch"])
        self._epoch = None if epoch < 0 else epoch


