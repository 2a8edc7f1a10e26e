"""Noise guards: keep likely-mislabeled samples out of the mined set.

The hardest samples by loss are a mix of *hard but learnable* samples (rare sub-populations, small
objects) and *wrong* ones (annotation noise). Upweighting the second kind makes a model worse, which is
what killed the in-repo feature this library replaces. A guard looks at the ledger and returns which
ids must not be mined this epoch; the miner records the count under the guard's ``name``.

Every guard has one method, ``exclude(stats, epoch) -> np.ndarray[bool]`` (True = exclude), aligned
with ``stats.ids``, and a versioned ``state_dict()`` / ``load_state_dict()`` (empty of data for the
stateless ones). A :class:`GuardChain` runs them in order and attributes each exclusion to one guard.

Example:
    >>> import numpy as np
    >>> from hardmine.ledger import LedgerStats
    >>> stats = LedgerStats(ids=np.arange(5), scores=np.array([0.1, 0.2, 0.3, 4.0, 9.0], np.float32),
    ...                     counts=np.ones(5, np.int32), first=np.full(5, 2.3, np.float32),
    ...                     last_seen=np.array([5, 5, 1, 5, 5], np.int32))
    >>> LossTail(fraction=0.2).exclude(stats, epoch=5).tolist()
    [False, False, False, False, True]
    >>> Staleness(max_age=2).exclude(stats, epoch=5).tolist()
    [False, False, True, False, False]
"""

from __future__ import annotations

from hardmine.guards._base import Guard
from hardmine.guards._cartography import Cartography
from hardmine.guards._chain import GUARD_KINDS, GuardChain, Verdict, apply_guards, build_guards
from hardmine.guards._learnability import Learnability
from hardmine.guards._loss_tail import LossTail
from hardmine.guards._mixture import LossMixture
from hardmine.guards._staleness import Staleness

__all__ = ["GUARD_KINDS", "Cartography", "Guard", "GuardChain", "Learnability", "LossMixture", "LossTail", "Staleness",
           "Verdict", "apply_guards", "build_guards"]
