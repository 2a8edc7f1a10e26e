"""Per-sample loss ledger: one score per logical sample id, vectorised.

``update`` validates and buffers; the buffer is folded into the table on the next read, in one
vectorised pass, so recording a step costs a copy and reading an epoch costs a few passes over the table.
This module maps ids to table slots (a range, an :class:`IdIndex`, or a sorted array of arbitrary ids);
``_ledger_table`` holds the columns and the fold arithmetic.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from hardmine._ledger_keys import SparseKeys
from hardmine._ledger_table import Table, rows_of
from hardmine._state import IdRange, check_state, stamp
from hardmine._validation import as_id_array, as_loss_array, joined

__all__ = ["AGGREGATES", "IdIndex", "LedgerStats", "LossLedger"]

logger = logging.getLogger("hardmine")

AGGREGATES = ("ema", "mean", "max", "last")
_STATE_VERSION = 2
_WARNED = {"nonfinite": False}  # warn once per process, not once per ledger


def is_dense_range(ids: np.ndarray) -> bool:
    """Whether ascending unique ``ids`` are exactly ``0..ids.size-1`` (two reads)."""
    return bool(ids.size and ids[0] == 0 and ids[-1] == ids.size - 1)


@runtime_checkable
class IdIndex(Protocol):
    """Maps logical sample ids to dense table slots and back (see ``FusionDataset.id_index``)."""

    @property
    def size(self) -> int: ...

    def slots(self, ids: np.ndarray) -> np.ndarray: ...

    def ids(self, slots: np.ndarray) -> np.ndarray: ...


class _RangeIndex:
    """Ids are the slots themselves: ``0 <= id < size``."""

    def __init__(self, size: int) -> None:
        self.size = int(size)

    def slots(self, ids: np.ndarray) -> np.ndarray:
        if ids.size and int(ids.view(np.uint64).max()) >= self.size:  # negatives wrap to huge values
            bad = ids[(ids < 0) | (ids >= self.size)][0]
            raise ValueError(f"sample id {int(bad)} is outside 0..{self.size - 1} (num_ids={self.size})")
        return ids

    def ids(self, slots: np.ndarray) -> np.ndarray:
        return np.asarray(slots, dtype=np.int64)


@dataclass(frozen=True)
class LedgerStats:
    """A snapshot of the ledger for the observed ids, ascending by id.

    >>> L = LossLedger(num_ids=4)
    >>> L.update([2, 0, 2], [1.0, 3.0, 5.0])
    >>> s = L.stats()
    >>> s.ids.tolist(), s.counts.tolist(), s.first.tolist()
    ([0, 2], [1, 2], [3.0, 1.0])
    """

    ids: np.ndarray  # int64
    scores: np.ndarray  # float32, the aggregate
    counts: np.ndarray  # int32, finite observations
    first: np.ndarray  # float32, first finite loss
    last_seen: np.ndarray  # int32, epoch of the latest observation

    def __len__(self) -> int:
        return int(self.ids.size)

    def subset(self, mask: np.ndarray) -> LedgerStats:
        """The rows where ``mask`` is True."""
        return LedgerStats(self.ids[mask], self.scores[mask], self.counts[mask], self.first[mask],
                           self.last_seen[mask])


class LossLedger:
    """Aggregated loss per logical sample id.

    Args:
        aggregate: ``ema`` | ``mean`` | ``max`` | ``last``.
        ema_decay: for ``ema``: ``new = ema_decay * old + (1 - ema_decay) * loss``; the first observation
            initialises the score (no bias toward 0).
        num_ids: ids are known to lie in ``0..num_ids-1``: dense arrays, the fastest mode.
        index: an :class:`IdIndex` mapping ids to dense slots (e.g. ``FusionDataset.id_index()``).
            With neither, any int64 id is accepted (sorted-array index).

    Example:
        >>> L = LossLedger(aggregate="ema", ema_decay=0.5)
        >>> L.update([7, 3, 7], [1.0, 2.0, 3.0])
        >>> ids, scores = L.scores()
        >>> ids.tolist(), scores.tolist()
        ([3, 7], [2.0, 2.0])
    """

    def __init__(self, aggregate: str = "ema", ema_decay: float = 0.9, num_ids: int | None = None, *,
                 index: IdIndex | None = None) -> None:
        if aggregate not in AGGREGATES:
            raise ValueError(f"aggregate must be one of {AGGREGATES}, but got {aggregate=}")
        if not 0.0 <= float(ema_decay) < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), but got {ema_decay=}")
        if num_ids is not None and index is not None:
            raise ValueError("give num_ids or index, not both")
        if num_ids is not None and int(num_ids) < 0:
            raise ValueError(f"num_ids must be >= 0, but got {num_ids=}")
        self.aggregate = aggregate
        self.ema_decay = float(ema_decay)
        self._index: IdIndex | None = _RangeIndex(int(num_ids)) if num_ids is not None else index
        size = self._index.size if self._index is not None else 0
        self._sparse = SparseKeys()  # sparse mode only: sorted ids, one per slot
        self._table = Table(size, aggregate, self.ema_decay)
        self._pending_ids: list[np.ndarray] = []  # the buffer, folded on the next read
        self._pending_losses: list[np.ndarray] = []
        self.epoch = 0
        self.num_skipped = 0

    # ------------------------------------------------------------------ recording
    @property
    def dense(self) -> bool:
        """Whether ids map to a fixed table (``num_ids`` or ``index``) rather than a growing one."""
        return self._index is not None

    @property
    def index(self) -> IdIndex | None:
        """The id -> slot index of a dense ledger (None for arbitrary ids)."""
        return self._index

    def check_ids(self, ids: np.ndarray) -> None:
        """Raise ValueError when ``ids`` (int64) cannot be recorded here (outside ``num_ids``/the index)."""
        if self._index is not None and ids.size:
            self._index.slots(ids)

    def update(self, ids: Any, losses: Any) -> None:
        """Record losses for ids; duplicates apply in order; NaN/inf losses are skipped and counted."""
        self.extend(as_id_array(ids, "ids"), as_loss_array(losses, "losses"))

    def extend(self, ids: np.ndarray, losses: np.ndarray) -> None:
        """:meth:`update` for 1-D int64 ids and float losses handed over for good: checked, not copied
        (the miner's epoch fold). A rejected call changes nothing."""
        if ids.shape != losses.shape:
            raise ValueError(f"ids and losses must have the same length, but got {ids.size} ids and "
                             f"{losses.size} losses")
        self.check_ids(ids)
        if ids.size:
            self._pending_ids.append(ids)
            self._pending_losses.append(losses)

    def set_epoch(self, epoch: int) -> None:
        """Fold what is buffered, then stamp later observations with ``epoch``."""
        self._fold()
        self.epoch = int(epoch)

    # ------------------------------------------------------------------ reading

    def __len__(self) -> int:
        self._fold()
        return int(np.count_nonzero(self._table.count))

    def stats(self, min_observations: int = 1, *, copy: bool = True) -> LedgerStats:
        """Per-id score, count, first loss and last-seen epoch for ids seen ``min_observations`` times.

        ``copy=False`` may hand out read-only views of the table (when every id qualifies), valid until
        the next fold: for reading within one step, as ``HardMiner.end_epoch`` does."""
        ids, rows = self._observed(min_observations)
        return LedgerStats(ids, *self._table.take(rows, copy))

    def scores(self, min_observations: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, scores)`` as NumPy arrays, ids ascending."""
        ids, rows = self._observed(min_observations)
        return ids, rows_of(self._table.score, rows)

    def _observed(self, min_observations: int) -> tuple[np.ndarray, Any]:
        """The ids seen ``min_observations`` times, ascending, and their table rows (slice, mask or slots)."""
        self._fold()
        keep = self._table.count >= max(1, int(min_observations))
        everyone = np.count_nonzero(keep) == keep.size  # the usual dense case: plain column copies
        slots = np.arange(keep.size) if everyone else np.flatnonzero(keep)
        ids = self._ids_of(slots)
        rows: Any = slice(None) if everyone else keep
        if self._index is not None and not isinstance(self._index, _RangeIndex):
            order = np.argsort(ids, kind="stable")
            rows, ids = slots[order], ids[order]
        return ids, rows

    def nbytes(self) -> int:
        """Resident bytes of the table (excluding the not-yet-folded buffer)."""
        return int(self._sparse.nbytes + self._table.nbytes)

    def _ids_of(self, slots: np.ndarray) -> np.ndarray:
        return self._sparse.keys[slots] if self._index is None else np.asarray(self._index.ids(slots), np.int64)

    # ------------------------------------------------------------------ folding
    def _fold(self) -> None:
        if not self._pending_ids:
            return
        ids, losses = joined(self._pending_ids), joined(self._pending_losses)
        self._pending_ids, self._pending_losses = [], []
        with np.errstate(over="ignore"):  # the table's precision: a loss beyond it is inf, skipped below
            losses = losses.astype(np.float32, copy=False)
        finite = np.isfinite(losses)
        if not finite.all():
            skipped = int(finite.size - np.count_nonzero(finite))
            self.num_skipped += skipped
            if not _WARNED["nonfinite"]:
                logger.warning("hardmine: skipped %d non-finite loss(es) (NaN/inf); they never enter a score. "
                               "Further skips are counted in LossLedger.num_skipped.", skipped)
                _WARNED["nonfinite"] = True
            ids, losses = ids[finite], losses[finite]
        if ids.size == 0:
            return
        slots = self._slots_for_fold(ids)  # may grow the table: look it up after
        self._table.fold(slots, losses, self.epoch)

    def _slots_for_fold(self, ids: np.ndarray) -> np.ndarray:
        if isinstance(self._index, _RangeIndex):
            return ids  # checked when recorded
        if self._index is not None:
            return np.asarray(self._index.slots(ids), dtype=np.int64)
        slots, moved = self._sparse.assign(ids)
        if moved is not None:  # new ids: the table grows, old records move to their new slots
            self._table = self._table.resized(self._sparse.keys.size, moved)
        return slots

    # ------------------------------------------------------------------ state
    def state_dict(self, *, copy: bool = True) -> dict[str, Any]:
        """The observed ids (ascending) with their columns; loadable by any ledger that accepts the ids.

        ``copy=False`` may share the columns with the table and give a dense id range as an
        :class:`~hardmine._state.IdRange` (for writing out at once, as ``HardMiner.save`` does)."""
        self._fold()
        ids: Any
        if not copy and isinstance(self._index, _RangeIndex) and bool(np.all(self._table.count > 0)):
            ids, columns = IdRange(self._table.size), self._table.take(slice(None), copy=False)  # every id seen
        else:
            st = self.stats(copy=copy)
            ids, columns = st.ids, (st.scores, st.counts, st.first, st.last_seen)
        return stamp("LossLedger", _STATE_VERSION, aggregate=self.aggregate, ema_decay=self.ema_decay,
                     size=None if self._index is None else int(self._index.size), epoch=self.epoch,
                     num_skipped=self.num_skipped, ids=ids, **dict(zip(("scores", "counts", "first", "last_seen"),
                                                                       columns)))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        columns = ("scores", "counts", "first", "last_seen")
        check_state(state, "LossLedger", _STATE_VERSION,
                    ("aggregate", "ema_decay", "size", "epoch", "num_skipped", "ids", *columns))
        if state["aggregate"] != self.aggregate or float(state["ema_decay"]) != self.ema_decay:
            raise ValueError(f"LossLedger state was written with aggregate={state['aggregate']!r}, "
                             f"ema_decay={state['ema_decay']}, but this ledger uses "
                             f"aggregate={self.aggregate!r}, ema_decay={self.ema_decay}")
        size = None if self._index is None else self._index.size
        if state["size"] != size:
            raise ValueError(f"LossLedger state covers {state['size']} ids but this ledger covers {size}")
        ids = np.asarray(state["ids"], dtype=np.int64)
        cols = [np.asarray(state[k]) for k in columns]
        if any(a.shape != ids.shape for a in cols):
            raise ValueError("LossLedger state arrays have different lengths: "
                             + ", ".join(f"{k}={np.shape(state[k])}" for k in ("ids", *columns)))
        if self._index is None:
            if ids.size and np.any(ids[1:] <= ids[:-1]):
                raise ValueError("LossLedger state ids must be strictly ascending")
            keys, slots = SparseKeys(ids.copy()), np.arange(ids.size)
        else:
            keys, slots = self._sparse, np.asarray(self._index.slots(ids), np.int64)
        table = Table(ids.size if self._index is None else self._index.size, self.aggregate, self.ema_decay)
        table.put(slots, *cols)
        self._sparse, self._table = keys, table
        self._pending_ids, self._pending_losses = [], []
        self.epoch = int(state["epoch"])
        self.num_skipped = int(state["num_skipped"])

    def __repr__(self) -> str:
        mode = "sparse" if self._index is None else f"dense[{self._index.size}]"
        return f"LossLedger(aggregate={self.aggregate!r}, ema_decay={self.ema_decay}, {mode}, seen={len(self)})"
