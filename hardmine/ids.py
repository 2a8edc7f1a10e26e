"""Id spaces: how the logical sample ids a run records relate to the dataset indices a sampler draws.

One class per id mode, each owning its ledger kind, its sampler, which ids may be mined, where a mined id
sits in the weight vector, and what it learns from records:

- :class:`IndexIds`: the id is the dataset index (``0..N-1``): a dense ledger, weights by index.
- :class:`MappedIds`: items carry their own arbitrary ``sample_id`` (augmented variants and duplicated
  records share one); the index -> id map is given (``sample_ids=``) or learned from ``record(indices=)``.
  A mined id weights every index that carries it.
- :class:`FusionIds`: a :class:`~hardmine.fusion.FusionDataset` assigns the ids; only target ids are
  eligible, and the sampler keeps the auxiliary quotas.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from hardmine._state import Versioned, check_same, owned
from hardmine._validation import as_id_array
from hardmine.fusion._layout import FusionLayout
from hardmine.fusion._sampler import FusionSampler
from hardmine.ledger import LedgerStats, LossLedger
from hardmine.sampler import HardMiningSampler, PlanSampler

__all__ = ["FusionIds", "IdSpace", "IndexIds", "MappedIds", "id_space_for"]


class IdSpace(Versioned):
    """Base of the id modes. ``num_samples``: the dataset length (indices ``record`` may name)."""

    kind: ClassVar[str] = "index"

    def __init__(self, num_samples: int) -> None:
        self.num_samples = int(num_samples)

    def new_ledger(self, aggregate: str, ema_decay: float) -> LossLedger:
        """An empty ledger that accepts exactly this space's ids."""
        raise NotImplementedError

    def new_sampler(self, seed: int, max_repeats: int | None) -> PlanSampler:
        """The sampler whose weight vector :meth:`positions` indexes."""
        return HardMiningSampler(self.num_samples, seed=seed, max_repeats=max_repeats)

    def check_indices(self, indices: np.ndarray) -> None:
        """Raise ValueError naming an index outside the dataset."""
        if indices.size and int(indices.view(np.uint64).max()) >= self.num_samples:
            bad = int(indices[(indices < 0) | (indices >= self.num_samples)][0])
            raise ValueError(f"indices must lie in 0..{self.num_samples - 1}, but got {bad}")

    def learn(self, ids: np.ndarray, indices: np.ndarray | None) -> None:
        """Take note of which index carried which id (only :class:`MappedIds` needs to)."""

    def eligible(self, stats: LedgerStats) -> LedgerStats:
        """The rows of ``stats`` whose ids may be mined."""
        return stats

    def positions(self, ids: np.ndarray) -> np.ndarray:
        """Positions in the sampler's weight vector of the (ascending, unique, eligible) ``ids``."""
        return ids

    def describe(self) -> dict[str, Any]:
        """JSON-able: the mode and what a report needs to name ids (a fusion's sources)."""
        return {"kind": self.kind}

    def _state(self) -> dict[str, Any]:
        return {"num_samples": self.num_samples}

    def _load(self, state: Mapping[str, Any]) -> None:
        check_same(type(self).__name__, "num_samples", int(state["num_samples"]), self.num_samples)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_samples={self.num_samples})"


class IndexIds(IdSpace):
    """Ids are dataset indices ``0..num_samples-1``.

    >>> space = IndexIds(4)
    >>> space.positions(np.array([1, 3])).tolist(), space.describe()
    ([1, 3], {'kind': 'index'})
    """

    kind: ClassVar[str] = "index"
    _STATE_KEYS = ("num_samples",)

    def new_ledger(self, aggregate: str, ema_decay: float) -> LossLedger:
        return LossLedger(aggregate, ema_decay, num_ids=self.num_samples)


class MappedIds(IdSpace):
    """Arbitrary int64 ids, several indices per id allowed; ``index_ids[i]`` is index i's id (-1: not seen).

    >>> space = MappedIds(4, index_ids=[7, 7, 9, 5])
    >>> space.positions(np.array([7])).tolist()
    [0, 1]
    """

    kind: ClassVar[str] = "mapped"
    _STATE_KEYS = ("num_samples", "index_ids")

    def __init__(self, num_samples: int, index_ids: Any = None) -> None:
        super().__init__(num_samples)
        if index_ids is None:
            self.index_ids = np.full(self.num_samples, -1, dtype=np.int64)
        else:
            self.index_ids = as_id_array(index_ids, "sample_ids")
            if self.index_ids.size != self.num_samples:
                raise ValueError(f"sample_ids must have one id per sample: expected length {self.num_samples}, "
                                 f"but got length {self.index_ids.size}")

    def new_ledger(self, aggregate: str, ema_decay: float) -> LossLedger:
        return LossLedger(aggregate, ema_decay)

    def learn(self, ids: np.ndarray, indices: np.ndarray | None) -> None:
        if indices is not None:
            known = indices >= 0
            self.index_ids[indices[known]] = ids[known]

    def positions(self, ids: np.ndarray) -> np.ndarray:
        return np.flatnonzero(np.isin(self.index_ids, ids))

    def _state_view(self) -> dict[str, Any]:
        return {"num_samples": self.num_samples, "index_ids": self.index_ids}

    def _state(self) -> dict[str, Any]:
        return owned(self._state_view())

    def _load(self, state: Mapping[str, Any]) -> None:
        super()._load(state)
        index_ids = as_id_array(state["index_ids"], "index_ids")
        check_same("MappedIds", "len(index_ids)", index_ids.size, self.num_samples)
        self.index_ids = index_ids


class FusionIds(IdSpace):
    """A fusion's ids (``code << 40 | index``): dense over the flat index space, targets first."""

    kind: ClassVar[str] = "fusion"
    _STATE_KEYS = ("num_samples", "fusion")

    def __init__(self, layout: FusionLayout) -> None:
        super().__init__(layout.size)
        self.layout = layout

    def new_ledger(self, aggregate: str, ema_decay: float) -> LossLedger:
        return LossLedger(aggregate, ema_decay, index=self.layout)

    def new_sampler(self, seed: int, max_repeats: int | None) -> PlanSampler:
        return FusionSampler(self.layout, seed=seed, max_repeats=max_repeats)

    def eligible(self, stats: LedgerStats) -> LedgerStats:
        return stats.subset(self.layout.slots(stats.ids) < self.layout.num_mineable)

    def positions(self, ids: np.ndarray) -> np.ndarray:
        return self.layout.slots(ids)  # target slots are the first num_mineable flat indices

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "fusion": self.layout.describe()}

    def _state(self) -> dict[str, Any]:
        return {"num_samples": self.num_samples, "fusion": self.layout.describe()}

    def _load(self, state: Mapping[str, Any]) -> None:
        super()._load(state)
        saved = FusionLayout.from_description(state["fusion"])
        if saved.describe() != self.layout.describe():
            raise ValueError(f"the state was saved for the fusion {saved!r}, but this miner trains {self.layout!r}")


def id_space_for(num_samples: int, dataset: Any = None, sample_ids: Any = None,
                 custom_ids: bool = False) -> IdSpace:
    """The id mode a miner's arguments ask for: a fusion's, given ids, learned ids, or indices."""
    index = getattr(dataset, "id_index", None)
    layout = index() if callable(index) else None
    if isinstance(layout, FusionLayout):
        if sample_ids is not None or custom_ids:
            raise ValueError("a FusionDataset assigns sample ids itself; sample_ids/custom_ids do not apply")
        return FusionIds(layout)
    if sample_ids is not None or custom_ids:
        return MappedIds(num_samples, sample_ids)
    return IndexIds(num_samples)
