"""Noise guards: keep likely-mislabeled samples out of the mined set.

The hardest samples by loss are a mix of *hard but learnable* samples (rare sub-populations, small
objects) and *wrong* ones (annotation noise). Upweighting the second kind makes a model worse, which is
what killed the in-repo feature this library replaces. A guard looks at the ledger and returns which
ids must not be mined this epoch; the miner records the count under the guard's ``name``.

Every guard has one method, ``exclude(stats, epoch) -> np.ndarray[bool]`` (True = exclude), aligned
with ``stats.ids``. Guards that keep state between epochs (:class:`Learnability`) implement
``state_dict()`` / ``load_state_dict()``; the others return an empty state.

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

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from hardmine.ledger import LedgerStats

__all__ = ["GUARD_KINDS", "Guard", "Learnability", "LossMixture", "LossTail", "Staleness", "apply_guards",
           "attribute", "build_guards", "count_reasons"]


class Guard(ABC):
    """Base of every noise guard: one method, :meth:`exclude`, and a ``name`` used as the reason key."""

    name: ClassVar[str] = "guard"
    label: ClassVar[str] = "excluded by a guard"  # how logs say why: "12 excluded as <label>"

    @abstractmethod
    def exclude(self, stats: LedgerStats, epoch: int) -> np.ndarray:
        """Boolean mask aligned with ``stats.ids``: True for ids that must not be mined at ``epoch``."""

    def state_dict(self) -> dict[str, Any]:
        """State to save with the miner (empty for stateless guards)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`; stateless guards accept only an empty state."""
        if state:
            raise ValueError(f"{type(self).__name__} keeps no state, but got keys {sorted(state)}")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


def _check_fraction(name: str, value: float, *, low_open: bool = True) -> float:
    v = float(value)
    ok = (0.0 < v < 1.0) if low_open else (0.0 <= v < 1.0)
    if not ok or math.isnan(v):
        bound = "0 < x < 1" if low_open else "0 <= x < 1"
        raise ValueError(f"{name} must satisfy {bound}, but got {name}={value!r}")
    return v


def _check_int(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, but got {name}={value!r}")
    return int(value)


def _rank_desc(scores: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Positions sorted by score descending, ties broken by the smaller id first."""
    return np.lexsort((ids, -scores.astype(np.float64)))


class LossTail(Guard):
    """Exclude the ``fraction`` of ids with the highest scores: a cap on extreme-loss ids.

    Label noise sits at the very top of the loss ranking (the model confidently predicts the true
    class), so mining below that band keeps most of the "hard but learnable" samples. Blunt: the cap
    applies whatever the actual noise rate.
    """

    name: ClassVar[str] = "loss_tail"
    label: ClassVar[str] = "likely noise (extreme loss)"

    def __init__(self, fraction: float = 0.05) -> None:
        self.fraction = _check_fraction("fraction", fraction)

    def exclude(self, stats: LedgerStats, epoch: int) -> np.ndarray:
        out = np.zeros(len(stats), dtype=bool)
        k = int(math.floor(self.fraction * len(stats)))
        if k:
            out[_rank_desc(stats.scores, stats.ids)[:k]] = True
        return out


def _fit_two_gaussians(x: np.ndarray,
                       iterations: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """EM for a 1-D two-component Gaussian mixture; returns (weights, means, stds, posterior of high)."""
    lo, hi = np.quantile(x, [0.25, 0.9])
    mean = np.array([lo, hi], dtype=np.float64)
    floor = max(1e-6, 1e-3 * float(np.std(x)))
    std = np.full(2, max(float(np.std(x)) / 2.0, floor))
    weight = np.array([0.5, 0.5])
    for _ in range(iterations):
        z = (x[:, None] - mean) / std
        logp = np.log(weight) - np.log(std) - 0.5 * z * z
        logp -= logp.max(axis=1, keepdims=True)
        resp = np.exp(logp)
        resp /= resp.sum(axis=1, keepdims=True)
        nk = resp.sum(axis=0) + 1e-12
        weight = np.clip(nk / x.size, 1e-6, 1.0)
        mean = (resp * x[:, None]).sum(axis=0) / nk
        std = np.sqrt(np.maximum((resp * (x[:, None] - mean) ** 2).sum(axis=0) / nk, floor * floor))
    order = np.argsort(mean)
    weight, mean, std, resp = weight[order], mean[order], std[order], resp[:, order]
    return weight, mean, std, resp[:, 1]


class LossMixture(Guard):
    """Fit a two-component Gaussian mixture to the scores; exclude the high component's extreme tail.

    This is the "small-loss" family of label-noise methods (DivideMix, Co-teaching): clean samples
    form the low-loss component, mislabeled ones the high-loss one. Only ids that belong to the high
    component (posterior >= ``min_posterior``) *and* score above its mean plus ``z`` standard
    deviations are excluded, so rare-but-learnable ids in the lower part of that component stay
    minable. Nothing is excluded unless the two components are clearly apart -- Ashman's
    ``D = sqrt(2) * |mean_hi - mean_lo| / sqrt(std_lo**2 + std_hi**2)`` at least ``min_separation``
    (2 is the usual bar for a bimodal mixture; a single Gaussian split in two gives about 1.2) -- or
    when fewer than ``min_ids`` ids are scored.
    """

    name: ClassVar[str] = "loss_mixture"
    label: ClassVar[str] = "likely noise (high-loss mode)"

    def __init__(self, z: float = 0.0, min_posterior: float = 0.5, min_separation: float = 2.0,
                 min_ids: int = 50, iterations: int = 30) -> None:
        if not math.isfinite(float(z)):
            raise ValueError(f"z must be a finite number of standard deviations, but got {z=!r}")
        self.z = float(z)
        self.min_posterior = _check_fraction("min_posterior", min_posterior)
        if not (math.isfinite(float(min_separation)) and float(min_separation) >= 0):
            raise ValueError(f"min_separation must be a finite number >= 0, but got {min_separation=!r}")
        self.min_separation = float(min_separation)
        self.min_ids = _check_int("min_ids", min_ids, 2)
        self.iterations = _check_int("iterations", iterations, 1)

    def exclude(self, stats: LedgerStats, epoch: int) -> np.ndarray:
        out = np.zeros(len(stats), dtype=bool)
        x = stats.scores.astype(np.float64)
        if x.size < self.min_ids or float(np.ptp(x)) == 0.0:
            return out
        _, mean, std, post_high = _fit_two_gaussians(x, self.iterations)
        separation = math.sqrt(2.0) * float(mean[1] - mean[0]) / float(np.hypot(std[0], std[1]))
        if separation < self.min_separation:
            return out
        out[:] = (post_high >= self.min_posterior) & (x > mean[1] + self.z * std[1])
        return out


class Learnability(Guard):
    """Exclude high-loss ids whose score is not falling: hard but learnable samples get easier.

    Keeps a per-id reference, an EMA over past epochs of the ledger score (``smoothing`` = weight of
    the old reference). An id among the top ``1 - quantile`` of scores is excluded once it has been
    tracked for ``patience`` epochs and its score is not at least ``min_drop`` (relative) below its
    reference. Mislabeled samples keep a flat, high loss until the model memorises them; samples of a
    learnable rare mode drop as soon as the model is shown enough of them. Tracked from the first call
    on, so call it every epoch (also before mining starts) to have the trend ready when it does.
    Calling it again in the same epoch gives the same answer (the reference moves once per epoch).

    Memory: 20 bytes per tracked id (id, reference, this epoch's score, tracked epochs).
    """

    name: ClassVar[str] = "not_learning"
    label: ClassVar[str] = "likely noise (loss not falling)"
    _KEYS = ("ids", "ref", "pending", "tracked", "epoch")

    def __init__(self, patience: int = 2, min_drop: float = 0.15, quantile: float = 0.5,
                 smoothing: float = 0.6) -> None:
        self.patience = _check_int("patience", patience, 1)
        self.min_drop = _check_fraction("min_drop", min_drop, low_open=False)
        self.quantile = _check_fraction("quantile", quantile, low_open=False)
        self.smoothing = _check_fraction("smoothing", smoothing, low_open=False)
        self._ids = np.empty(0, dtype=np.int64)
        self._ref = np.empty(0, dtype=np.float32)  # EMA of the scores of completed epochs
        self._pending = np.empty(0, dtype=np.float32)  # score seen in the current epoch (NaN: none)
        self._tracked = np.empty(0, dtype=np.int32)  # completed epochs folded into the reference
        self._epoch: int | None = None

    def exclude(self, stats: LedgerStats, epoch: int) -> np.ndarray:
        epoch = int(epoch)
        if self._epoch is not None and epoch != self._epoch:
            self._fold_pending()
        self._epoch = epoch
        rows = self._rows_for(stats.ids)
        scores = np.asarray(stats.scores, dtype=np.float32)
        out = np.zeros(scores.size, dtype=bool)
        if scores.size:
            cut = np.quantile(scores, self.quantile) if self.quantile > 0 else -np.inf
            ref, tracked = self._ref[rows], self._tracked[rows]
            out = (tracked >= self.patience) & (scores >= cut) & (scores >= ref * (1.0 - self.min_drop))
        self._pending[rows] = scores
        return out

    def _fold_pending(self) -> None:
        seen = np.isfinite(self._pending)
        old = self._tracked > 0
        self._ref = np.where(seen & old, self.smoothing * self._ref + (1.0 - self.smoothing) * self._pending,
                             np.where(seen, self._pending, self._ref)).astype(np.float32)
        self._tracked = self._tracked + seen.astype(np.int32)
        self._pending = np.full(self._ids.size, np.nan, dtype=np.float32)

    def _rows_for(self, ids: np.ndarray) -> np.ndarray | slice:
        """Rows of ``ids`` in the state arrays, adding untracked ids (vectorised merge)."""
        if ids.size == self._ids.size and np.array_equal(ids, self._ids):  # the same ids as last epoch
            return slice(None)
        pos = np.searchsorted(self._ids, ids)
        hit = pos < self._ids.size
        hit[hit] = self._ids[pos[hit]] == ids[hit]
        if not hit.all():
            merged = np.concatenate([self._ids, np.sort(ids[~hit])])  # stats ids are unique
            merged.sort(kind="stable")  # two sorted, disjoint runs: a linear merge (np.union1d hashes, slowly)
            old = np.searchsorted(merged, self._ids)
            ref = np.zeros(merged.size, np.float32)
            pending = np.full(merged.size, np.nan, np.float32)
            tracked = np.zeros(merged.size, np.int32)
            ref[old], pending[old], tracked[old] = self._ref, self._pending, self._tracked
            self._ids, self._ref, self._pending, self._tracked = merged, ref, pending, tracked
            pos = np.searchsorted(self._ids, ids)
        return pos

    def state_dict(self) -> dict[str, Any]:
        return {"ids": self._ids.copy(), "ref": self._ref.copy(), "pending": self._pending.copy(),
                "tracked": self._tracked.copy(), "epoch": -1 if self._epoch is None else self._epoch}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        missing = [k for k in self._KEYS if k not in state]
        if missing:
            raise ValueError(f"Learnability state is missing keys {missing}; expected {list(self._KEYS)}")
        ids = np.asarray(state["ids"], dtype=np.int64)
        arrays = {k: np.asarray(state[k]) for k in ("ref", "pending", "tracked")}
        if ids.ndim != 1 or any(a.shape != ids.shape for a in arrays.values()):
            raise ValueError("Learnability state arrays must be 1-D of one length, but got shapes "
                             + ", ".join(f"{k}={np.shape(state[k])}" for k in ("ids", *arrays)))
        if ids.size > 1 and not bool(np.all(ids[1:] > ids[:-1])):
            raise ValueError("Learnability state ids must be strictly ascending")
        self._ids = ids
        self._ref = arrays["ref"].astype(np.float32)
        self._pending = arrays["pending"].astype(np.float32)
        self._tracked = arrays["tracked"].astype(np.int32)
        epoch = int(state["epoch"])
        self._epoch = None if epoch < 0 else epoch


class Staleness(Guard):
    """Exclude ids not observed for more than ``max_age`` epochs: an old high score is not news.

    Without it an id that stops being drawn keeps the score it had when last seen and stays "hard"
    forever; excluded, it falls back to the neutral weight until it is seen again.
    """

    name: ClassVar[str] = "stale"
    label: ClassVar[str] = "stale (not seen lately)"

    def __init__(self, max_age: int = 3) -> None:
        self.max_age = _check_int("max_age", max_age, 0)

    def exclude(self, stats: LedgerStats, epoch: int) -> np.ndarray:
        return (int(epoch) - stats.last_seen.astype(np.int64)) > self.max_age


def attribute(guards: Sequence[Guard], stats: LedgerStats, epoch: int) -> np.ndarray:
    """Run every guard (stateful ones must see every epoch) and say who excluded each id.

    Returns an int array aligned with ``stats.ids``: the position in ``guards`` of the first guard that
    excluded the id, or -1 where none did.
    """
    who = np.full(len(stats), -1, dtype=np.int64)
    for i, guard in enumerate(guards):
        mask = np.asarray(guard.exclude(stats, epoch), dtype=bool)
        if mask.shape != who.shape:
            raise ValueError(f"{type(guard).__name__}.exclude returned shape {mask.shape}, "
                             f"expected {who.shape} (one flag per id in stats)")
        who[(who < 0) & mask] = i
    return who


def count_reasons(guards: Sequence[Guard], who: np.ndarray) -> dict[str, int]:
    """``{guard.name: number of ids in who attributed to it}`` (see :func:`attribute`)."""
    counts = np.bincount(who[who >= 0], minlength=len(guards))
    reasons: dict[str, int] = {}
    for guard, n in zip(guards, counts.tolist()):
        reasons[guard.name] = reasons.get(guard.name, 0) + int(n)
    return reasons


def apply_guards(guards: Sequence[Guard], stats: LedgerStats,
                 epoch: int) -> tuple[np.ndarray, dict[str, int]]:
    """Run every guard and combine their masks.

    Returns the union mask and ``{guard.name: count}``, each excluded id counted once, under the
    first guard (in order) that excluded it.

    Example:
        >>> import numpy as np
        >>> from hardmine.ledger import LedgerStats
        >>> stats = LedgerStats(np.arange(4), np.array([1, 2, 3, 9], np.float32), np.ones(4, np.int32),
        ...                     np.ones(4, np.float32), np.array([0, 3, 3, 3], np.int32))
        >>> mask, reasons = apply_guards([LossTail(0.25), Staleness(1)], stats, epoch=3)
        >>> mask.tolist(), reasons
        ([True, False, False, True], {'loss_tail': 1, 'stale': 1})
    """
    who = attribute(guards, stats, epoch)
    return who >= 0, count_reasons(guards, who)


GUARD_KINDS: dict[str, type[Guard]] = {"learnability": Learnability, "staleness": Staleness,
                                       "loss_tail": LossTail, "loss_mixture": LossMixture}


def build_guards(spec: Mapping[str, Mapping[str, Any] | None] | None) -> list[Guard]:
    """Guards from the ``guard`` config section: ``{kind: settings or None}``, in :data:`GUARD_KINDS` order.

    ``None`` (the whole section or one kind) means off. Example:
        >>> build_guards({"learnability": {"patience": 3}, "staleness": None})
        [Learnability(patience=3, min_drop=0.15, quantile=0.5, smoothing=0.6)]
        >>> build_guards(None)
        []
    """
    if spec is None:
        return []
    unknown = sorted(set(spec) - set(GUARD_KINDS))
    if unknown:
        raise ValueError(f"unknown guard kinds {unknown}; expected some of {list(GUARD_KINDS)}")
    return [cls(**dict(spec[kind] or {})) for kind, cls in GUARD_KINDS.items()
            if kind in spec and spec[kind] is not None]
