"""Guards in order: run them all every epoch, say which one kept each id out, count the reasons."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hardmine._state import check_state, stamp
from hardmine.guards._base import Guard
from hardmine.guards._cartography import Cartography
from hardmine.guards._learnability import Learnability
from hardmine.guards._loss_tail import LossTail
from hardmine.guards._mixture import LossMixture
from hardmine.guards._staleness import Staleness
from hardmine.ledger import LedgerStats, is_dense_range
from hardmine.selection import Selector, select_among

GUARD_KINDS: dict[str, type[Guard]] = {"learnability": Learnability, "cartography": Cartography,
                                       "staleness": Staleness, "loss_tail": LossTail, "loss_mixture": LossMixture}
_STATE_VERSION = 1


@dataclass(frozen=True)
class Verdict:
    """What the guards said about one epoch's eligible ids: ``who[i]`` is the position of the first guard
    that excluded id ``i`` (-1: none did)."""

    who: np.ndarray

    @property
    def kept(self) -> np.ndarray:
        """True where no guard excluded the id."""
        return self.who < 0


def count_reasons(guards: Sequence[Guard], who: np.ndarray) -> dict[str, int]:
    """``{guard.name: number of ids in who attributed to it}`` (see :meth:`GuardChain.judge`)."""
    counts = np.bincount(who[who >= 0], minlength=len(guards))
    reasons: dict[str, int] = {}
    for guard, n in zip(guards, counts.tolist()):
        reasons[guard.name] = reasons.get(guard.name, 0) + int(n)
    return reasons


class GuardChain:
    """The guards of a run, in order; a sequence of :class:`Guard` with one state.

    >>> chain = GuardChain([LossTail(0.25), Staleness(1)])
    >>> [g.name for g in chain], len(chain)
    (['loss_tail', 'stale'], 2)
    """

    def __init__(self, guards: Sequence[Guard] = ()) -> None:
        self._guards = list(guards)
        for g in self._guards:
            if not isinstance(g, Guard):
                raise TypeError(f"guards must be Guard objects, but got a {type(g).__name__}: {g!r}")

    def __iter__(self) -> Iterator[Guard]:
        return iter(self._guards)

    def __len__(self) -> int:
        return len(self._guards)

    def __getitem__(self, i: int) -> Guard:
        return self._guards[i]

    def judge(self, stats: LedgerStats, epoch: int) -> Verdict:
        """Run every guard (stateful ones must see every epoch, mining or not) and attribute each exclusion."""
        small = len(self._guards) < 128
        who: np.ndarray = np.full(len(stats), -1, dtype=np.int8 if small else np.int64)  # a byte an id
        for i, guard in enumerate(self._guards):
            mask = np.asarray(guard.exclude(stats, epoch), dtype=bool)
            if mask.shape != who.shape:
                raise ValueError(f"{type(guard).__name__}.exclude returned shape {mask.shape}, "
                                 f"expected {who.shape} (one flag per id in stats)")
            who[mask if i == 0 else (who < 0) & mask] = i
        return Verdict(who)

    @property
    def judging(self) -> bool:
        """Whether there is a noise guard and every noise guard can keep ids out yet (past its warm-up)."""
        noise = [g for g in self._guards if g.noise]
        return bool(noise) and all(g.judging for g in noise)

    def noise_flags(self, verdict: Verdict) -> np.ndarray:
        """True where a noise guard (not staleness) kept the id out."""
        noise = np.array([g.noise for g in self._guards] + [False])  # who == -1 reads the last entry
        flags: np.ndarray = noise[verdict.who]
        return flags

    def reasons(self, who: np.ndarray) -> dict[str, int]:
        """``{guard.name: count}`` of the attributions ``who`` (a subset of a verdict's)."""
        return count_reasons(self._guards, who)

    def excluded(self, verdict: Verdict | None, stats: LedgerStats, selector: Selector) -> dict[str, int]:
        """Per guard, the ids the unguarded selection would have mined that the guard kept out."""
        if verdict is None:
            return {}
        if verdict.kept.all():  # nobody was kept out: no selection to redo
            return self.reasons(verdict.who[:0])
        would = select_among(selector, stats.ids, stats.scores, len(stats)).ids
        dense = is_dense_range(stats.ids)  # positions are the ids themselves
        return self.reasons(verdict.who[would if dense else np.searchsorted(stats.ids, would)])

    def labels(self) -> dict[str, str]:
        """``{guard.name: label}``: how a log line says why ids were kept out."""
        return {g.name: g.label for g in self._guards}

    def state_dict(self, *, copy: bool = True) -> dict[str, Any]:
        return stamp("GuardChain", _STATE_VERSION, guards=[g.state_dict(copy=copy) for g in self._guards])

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        check_state(state, "GuardChain", _STATE_VERSION, ("guards",))
        saved = list(state["guards"])
        kinds = [s.get("kind") if isinstance(s, Mapping) else None for s in saved]
        mine = [type(g).__name__ for g in self._guards]
        if kinds != mine:
            raise ValueError(f"the state holds guards {kinds}, but this run has guards {mine}")
        for guard, guard_state in zip(self._guards, saved):
            guard.load_state_dict(guard_state)

    def __repr__(self) -> str:
        return f"GuardChain({self._guards!r})"


def apply_guards(guards: Sequence[Guard], stats: LedgerStats,
                 epoch: int) -> tuple[np.ndarray, dict[str, int]]:
    """Run every guard and combine their masks.

    Returns the union mask and ``{guard.name: count}``, each excluded id counted once, under the
    first guard (in order) that excluded it.

    Example:
        >>> import numpy as np
        >>> from hardmine.ledger import LedgerStats, is_dense_range
        >>> stats = LedgerStats(np.arange(4), np.array([1, 2, 3, 9], np.float32), np.ones(4, np.int32),
        ...                     np.ones(4, np.float32), np.array([0, 3, 3, 3], np.int32))
        >>> mask, reasons = apply_guards([LossTail(0.25), Staleness(1)], stats, epoch=3)
        >>> mask.tolist(), reasons
        ([True, False, False, True], {'loss_tail': 1, 'stale': 1})
    """
    chain = GuardChain(guards)
    who = chain.judge(stats, epoch).who
    return who >= 0, chain.reasons(who)


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
