"""Staleness: an old high score is not news."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from hardmine.guards._base import Guard, check_int
from hardmine.ledger import LedgerStats


class Staleness(Guard):
    """Exclude ids not observed for more than ``max_age`` epochs: an old high score is not news.

    Without it an id that stops being drawn keeps the score it had when last seen and stays "hard"
    forever; excluded, it falls back to the neutral weight until it is seen again.
    """

    name: ClassVar[str] = "stale"
    label: ClassVar[str] = "stale (not seen lately)"
    noise: ClassVar[bool] = False

    def __init__(self, max_age: int = 3) -> None:
        self.max_age = check_int("max_age", max_age, 0)

    def exclude(self, stats: LedgerStats, epoch: int) -> np.ndarray:
        return stats.last_seen < int(epoch) - self.max_age  # epoch - last_seen > max_age, without an int64 copy


