"""What a run did, without the data or a model: what ``miner.save`` writes and ``hardmine report`` reads.

A :class:`RunRecord` holds the settings, the per-epoch history, the hard set, how often each id was mined,
the ledger's per-id statistics and how ids decode (a fusion's sources). It is read from the same file a
training run resumes from, but it trains nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from os import PathLike
from typing import Any

import numpy as np

from hardmine._serialization import load_state
from hardmine._state import check_state
from hardmine.config import HardMiningConfig
from hardmine.event import MiningEvent
from hardmine.history import MiningHistory
from hardmine.ledger import LedgerStats

__all__ = ["RunRecord"]

_ID_MODES = {"IndexIds": "index", "MappedIds": "mapped", "FusionIds": "fusion"}
MINER_KIND, MINER_VERSION = "HardMiner", 2


@dataclass(frozen=True)
class RunRecord:
    """A finished (or checkpointed) run, for reports: ``RunRecord.load(path)``.

    ``id_mode`` is ``index`` (ids are dataset indices), ``mapped`` (the items' own ``sample_id``) or
    ``fusion`` (``fusion`` then holds ``FusionDataset.describe()``, enough to decode ids offline).
    """

    config: HardMiningConfig
    num_samples: int
    seed: int
    id_mode: str
    active: bool
    history: list[MiningEvent]
    hard_ids: np.ndarray
    mined_ids: np.ndarray
    mined_epochs: np.ndarray
    ledger: LedgerStats
    num_skipped: int
    fusion: dict[str, Any] | None = None

    @property
    def custom_ids(self) -> bool:
        """Whether ids are the items' own ``sample_id`` rather than dataset indices."""
        return self.id_mode == "mapped"

    def mined_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Every id mined so far (ascending) and in how many epochs it was mined."""
        return self.mined_ids, self.mined_epochs

    @classmethod
    def from_state(cls, state: Mapping[str, Any], where: str | None = None) -> RunRecord:
        """The record inside a ``HardMiner.state_dict()``."""
        check_state(state, MINER_KIND, MINER_VERSION, ("config", "num_samples", "seed", "active", "id_space",
                                                       "history", "ledger"), where=where)
        history = MiningHistory()
        history.load_state_dict(state["history"])
        ids, mined = history.mined_counts()
        ledger = state["ledger"]
        check_state(ledger, "LossLedger", 2, ("ids", "scores", "counts", "first", "last_seen", "num_skipped"),
                    where=where)
        stats = LedgerStats(*(np.asarray(ledger[k]) for k in ("ids", "scores", "counts", "first", "last_seen")))
        space = state["id_space"]
        return cls(config=HardMiningConfig.model_validate(state["config"]), num_samples=int(state["num_samples"]),
                   seed=int(state["seed"]), id_mode=_ID_MODES.get(space.get("kind"), str(space.get("kind"))),
                   active=bool(state["active"]), history=history.events, hard_ids=history.hard_ids,
                   mined_ids=ids, mined_epochs=mined, ledger=stats, num_skipped=int(ledger["num_skipped"]),
                   fusion=space.get("fusion"))

    @classmethod
    def load(cls, path: str | PathLike[str]) -> RunRecord:
        """Read the record of a file written by ``HardMiner.save`` (or a checkpoint's ``hardmine_state.npz``)."""
        where = repr(str(path))
        state = load_state(path, kind=MINER_KIND)
        try:
            return cls.from_state(state, where=where)
        except (ValueError, TypeError) as e:
            message = str(e)
            raise ValueError(message if where in message else f"{where}: {message}") from None

    def __repr__(self) -> str:
        return (f"RunRecord(num_samples={self.num_samples}, ids={self.id_mode}, epochs={len(self.history)}, "
                f"active={self.active}, num_hard={self.hard_ids.size})")
