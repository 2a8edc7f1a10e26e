"""The base of the guards that follow each id across epochs: per-id arrays, aligned by id, folded once an epoch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from hardmine._state import IdRange, owned
from hardmine.guards._base import Guard
from hardmine.ledger import is_dense_range


class TrackedGuard(Guard):
    """A guard with one row of state per tracked id: ``_FIELDS`` names each per-id array, its dtype and fill.

    :meth:`_rows` gives the rows of an epoch's ids and says whether the call is the first of a new epoch, so
    that a subclass updates its state once an epoch and a second call in the same epoch gives the same answer.
    Ids are stored as a count when they are the dense range ``0..n-1``, else as a sorted array (8 bytes an id
    more). Every tracked guard has a ``tracked`` uint8 field: the epochs an id was seen in, saturating at 255.
    """

    _FIELDS: ClassVar[dict[str, tuple[type, float]]] = {"tracked": (np.uint8, 0)}
    _STATE_KEYS: ClassVar[tuple[str, ...]] = ("ids", "tracked", "epoch")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._STATE_KEYS = ("ids", *cls._FIELDS, "epoch")  # the state is the ids, every per-id field, the epoch

    def __init__(self) -> None:
        self._ids = np.empty(0, dtype=np.int64)  # the tracked ids, ascending, unless _dense says 0.._dense-1
        self._dense: int | None = None
        self._arrays: dict[str, np.ndarray] = {k: np.empty(0, dtype=t) for k, (t, _) in self._FIELDS.items()}
        self._epoch: int | None = None

    def _warmup_epochs(self) -> int:
        """Epochs an id must have been tracked before the guard judges it."""
        return 1

    @property
    def judging(self) -> bool:
        """Whether some id has been tracked for the warm-up (once true, it stays true)."""
        t = self._arrays["tracked"]
        return bool(t.size) and int(t.max()) >= self._warmup_epochs()

    def _rows(self, ids: np.ndarray, epoch: int) -> tuple[np.ndarray | slice, bool]:
        """The rows of ``ids`` (untracked ids are added), and whether this is the first call of a new epoch."""
        epoch = int(epoch)
        new = epoch != self._epoch
        self._epoch = epoch
        return self._rows_for(ids), new

    def _count_epoch(self, rows: np.ndarray | slice, seen: np.ndarray | bool = True) -> None:
        """One more epoch for the ids at ``rows`` (where ``seen``), saturating at 255."""
        t = self._arrays["tracked"][rows]
        t += seen & (t < 255)
        self._arrays["tracked"][rows] = t

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
            self._arrays = {k: np.full(ids.size, fill, dtype=t) for k, (t, fill) in self._FIELDS.items()}
            return slice(None)
        self._ids, self._dense = self._tracked_ids(), None
        pos = np.searchsorted(self._ids, ids)
        hit = pos < self._ids.size
        hit[hit] = self._ids[pos[hit]] == ids[hit]
        if not hit.all():
            merged = np.concatenate([self._ids, np.sort(ids[~hit])])  # stats ids are unique
            merged.sort(kind="stable")  # two sorted, disjoint runs: a linear merge (np.union1d hashes, slowly)
            old = np.searchsorted(merged, self._ids)
            for k, (t, fill) in self._FIELDS.items():
                grown: np.ndarray = np.full(merged.size, fill, dtype=t)
                grown[old] = self._arrays[k]
                self._arrays[k] = grown
            self._ids = merged
            pos = np.searchsorted(self._ids, ids)
        return pos

    def _state_view(self) -> dict[str, Any]:
        return {"ids": IdRange(self._dense) if self._dense is not None else self._ids, **self._arrays,
                "epoch": -1 if self._epoch is None else self._epoch}

    def _state(self) -> dict[str, Any]:
        return owned(self._state_view())

    def _load(self, state: Mapping[str, Any]) -> None:
        name = type(self).__name__
        ids = np.asarray(state["ids"], dtype=np.int64)
        arrays = {k: np.asarray(state[k]) for k in self._FIELDS}
        if ids.ndim != 1 or any(a.shape != ids.shape for a in arrays.values()):
            raise ValueError(f"{name} state arrays must be 1-D of one length, but got shapes "
                             + ", ".join(f"{k}={np.shape(state[k])}" for k in ("ids", *arrays)))
        if ids.size > 1 and not bool(np.all(ids[1:] > ids[:-1])):
            raise ValueError(f"{name} state ids must be strictly ascending")
        self._dense, self._ids = (ids.size, np.empty(0, np.int64)) if is_dense_range(ids) else (None, ids)
        arrays["tracked"] = np.minimum(arrays["tracked"], 255)
        self._arrays = {k: arrays[k].astype(t) for k, (t, _) in self._FIELDS.items()}
        epoch = int(state["epoch"])
        self._epoch = None if epoch < 0 else epoch
