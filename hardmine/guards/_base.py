"""The guard base: one method, :meth:`Guard.exclude`, a ``name`` for events and a ``label`` for logs."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from hardmine._state import Versioned
from hardmine.ledger import LedgerStats


class Guard(Versioned, ABC):
    """Base of every noise guard: one method, :meth:`exclude`, and a ``name`` used as the reason key.

    A guard that keeps state between epochs lists its state keys in ``_STATE_KEYS`` and implements
    ``_state()`` / ``_load(state)``; its versioned ``state_dict()`` is headed by its class name, so a
    state saved by another guard is refused by name.
    """

    name: ClassVar[str] = "guard"
    label: ClassVar[str] = "excluded by a guard"  # how logs say why: "12 excluded as <label>"
    noise: ClassVar[bool] = True  # what it keeps out looks mislabeled (False: for another reason, e.g. staleness)

    @property
    def judging(self) -> bool:
        """Whether the guard can keep ids out yet (False during a warm-up)."""
        return True

    @abstractmethod
    def exclude(self, stats: LedgerStats, epoch: int) -> np.ndarray:
        """Boolean mask aligned with ``stats.ids``: True for ids that must not be mined at ``epoch``."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


def check_fraction(name: str, value: float, *, low_open: bool = True) -> float:
    v = float(value)
    ok = (0.0 < v < 1.0) if low_open else (0.0 <= v < 1.0)
    if not ok or math.isnan(v):
        bound = "0 < x < 1" if low_open else "0 <= x < 1"
        raise ValueError(f"{name} must satisfy {bound}, but got {name}={value!r}")
    return v


def check_int(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, but got {name}={value!r}")
    return int(value)
