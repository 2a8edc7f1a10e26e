"""What a run has mined so far: the events, the current hard set and how often each id was mined."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from hardmine._state import Versioned, owned
from hardmine.event import MiningEvent

__all__ = ["MiningHistory"]


class MiningHistory(Versioned):
    """One :class:`MiningEvent` per ended epoch, the hard set now, and ``(id, epochs mined)`` for every id.

    >>> h = MiningHistory()
    >>> _ = h.append(MiningEvent(epoch=0, triggered=True, num_hard=2), np.array([3, 5]))
    >>> _ = h.append(MiningEvent(epoch=1, triggered=True, num_hard=2), np.array([5, 8]))
    >>> h.overlap(np.array([5])), [a.tolist() for a in h.mined_counts()]
    (1, [[3, 5, 8], [1, 2, 1]])
    """

    _STATE_KEYS = ("events", "hard_ids", "mined_ids", "mined_epochs")

    def __init__(self) -> None:
        self.events: list[MiningEvent] = []
        self.hard_ids = np.empty(0, dtype=np.int64)
        self._mined_ids = np.empty(0, dtype=np.int64)
        self._mined_epochs = np.empty(0, dtype=np.int64)

    def overlap(self, hard_ids: np.ndarray) -> int | None:
        """Ids ``hard_ids`` shares with the current hard set (None when there is none yet)."""
        if not self.hard_ids.size:
            return None
        return int(np.intersect1d(self.hard_ids, hard_ids, assume_unique=True).size)

    def append(self, event: MiningEvent, hard_ids: np.ndarray | None = None) -> MiningEvent:
        """Record ``event``; ``hard_ids`` (ascending, unique) replaces the hard set unless None."""
        if hard_ids is not None:
            self.hard_ids = hard_ids
            if hard_ids.size:
                self._count(hard_ids)
        self.events.append(event)
        return event

    def _count(self, ids: np.ndarray) -> None:
        """Add one mined epoch to each of ``ids`` (ascending, unique) in the running (id, epochs) table: one
        search of ``ids`` among the table's ids, then a linear merge of the new ones."""
        known, counts = self._mined_ids, self._mined_epochs
        pos = np.searchsorted(known, ids)
        found = pos < known.size
        found[found] = known[pos[found]] == ids[found]
        if found.all():
            counts = counts.copy()  # the saved state may share the old array
            counts[pos] += 1
            self._mined_epochs = counts
            return
        at = pos[~found]  # where the new ids go among the known ones (ascending)
        into = at + np.arange(at.size)  # their places in the merged table
        fresh = np.zeros(known.size + at.size, dtype=bool)
        fresh[into] = True
        keys = np.empty(fresh.size, dtype=np.int64)
        keys[into], keys[~fresh] = ids[~found], known
        epochs = np.ones(fresh.size, dtype=np.int64)
        epochs[~fresh] = counts
        again = pos[found]  # known ids mined again, shifted by the new ids merged in before them
        epochs[again + np.searchsorted(at, again, side="right")] += 1
        self._mined_ids, self._mined_epochs = keys, epochs

    def mined_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Every id mined so far (ascending) and in how many epochs it was mined."""
        return self._mined_ids.copy(), self._mined_epochs.copy()

    def _state_view(self) -> dict[str, Any]:
        return {"events": [e.to_dict() for e in self.events], "hard_ids": self.hard_ids,
                "mined_ids": self._mined_ids, "mined_epochs": self._mined_epochs}

    def _state(self) -> dict[str, Any]:
        return owned(self._state_view())

    def _load(self, state: Mapping[str, Any]) -> None:
        mined, epochs = (np.asarray(state[k], dtype=np.int64) for k in ("mined_ids", "mined_epochs"))
        if mined.shape != epochs.shape:
            raise ValueError(f"MiningHistory state has {mined.size} mined ids but {epochs.size} epoch counts")
        self.events = [MiningEvent.from_dict(dict(e)) for e in state["events"]]
        self.hard_ids = np.asarray(state["hard_ids"], dtype=np.int64)
        self._mined_ids, self._mined_epochs = mined, epochs

    def __len__(self) -> int:
        return len(self.events)

    def __repr__(self) -> str:
        return f"MiningHistory(epochs={len(self.events)}, num_hard={self.hard_ids.size})"
