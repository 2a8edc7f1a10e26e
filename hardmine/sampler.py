"""Fixed-length, weighted epoch plans: hard samples drawn more often, the epoch length never changes.

:class:`PlanSampler` is what every hardmine sampler shares: the epoch, versioned weights, the plan cache,
``counts()``, validation and a versioned state. A subclass implements only its plan (``_build_plan``).
:class:`HardMiningSampler` plans one dataset; :class:`hardmine.fusion.FusionSampler` plans a fusion
(targets by weight, auxiliaries at fixed quotas).

The order is a pure function of ``(seed, epoch, weights)``. It is the GLOBAL stream: under accelerate (HF
Trainer, DDP, DeepSpeed) every rank iterates the whole sampler and keeps its own batches, so the stream
must be identical on every rank. Pass ``num_replicas``/``rank`` only for a plain ``DistributedSampler``-
style loop without accelerate.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import Sampler

from hardmine._draws import epoch_generator, shuffle_in_place
from hardmine._plan import check_fillable, compact_counts, index_dtype, plan_counts
from hardmine._state import check_state, stamp
from hardmine._validation import as_weight_array
from hardmine._weights import Weights  # re-exported: what a planner hands the sampler

__all__ = ["HardMiningSampler", "PlanSampler", "Weights"]


def _check_seed_and_cap(seed: int, max_repeats: int | None) -> None:
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, but got {seed=}")
    if max_repeats is not None and (int(max_repeats) != max_repeats or max_repeats < 1):
        raise ValueError(f"max_repeats must be an integer >= 1 or None, but got {max_repeats=}")


def _chunked(plan: np.ndarray, chunk: int = 16_384) -> Iterator[int]:
    """The plan's indices as Python ints, a chunk at a time: never a whole-epoch Python list (36 bytes an
    index), the same order, and as fast to iterate as one (the chaining is C code)."""
    return itertools.chain.from_iterable(plan[start : start + chunk].tolist() for start in range(0, plan.size, chunk))


class PlanSampler(Sampler[int]):
    """Base of hardmine's samplers: a fixed-length plan per ``(seed, epoch, weights)``.

    Subclasses set ``num_weighted`` (the length of the weight vector) and ``num_indices`` (the dataset
    length), and implement ``_build_plan``, ``__len__`` and, when they have one, a layout check.
    It is not a ``RandomSampler`` (accelerate replaces those) and has no ``generator`` attribute
    (accelerate reseeds those): each epoch uses a private generator.
    """

    _KIND: ClassVar[str] = "PlanSampler"
    _VERSION: ClassVar[int] = 2
    num_weighted: int
    num_indices: int

    def __init__(self, *, seed: int = 0, max_repeats: int | None = None) -> None:
        _check_seed_and_cap(seed, max_repeats)
        self.seed = int(seed)
        self.max_repeats = None if max_repeats is None else int(max_repeats)
        self.epoch = 0
        self._weights: Weights | None = None
        self._weights_version = 0
        self._cache: tuple[tuple[int, int], np.ndarray, np.ndarray | None] | None = None

    # ------------------------------------------------------------------ plan inputs
    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose plan ``__iter__`` yields (call it before every epoch)."""
        self.epoch = int(epoch)

    def set_weights(self, weights: Any) -> None:
        """Relative weights (length ``num_weighted``, finite, >= 0); None means uniform. A
        :class:`~hardmine.sampler.Weights` (levels and a byte per index) is taken as it is.

        Raises ValueError, changing nothing, when the weights are malformed or cannot fill the epoch
        under ``max_repeats``. Every call bumps :attr:`weights_version`.
        """
        if isinstance(weights, Weights):
            compact: Weights | None = weights.checked(self.num_weighted)
        else:
            w = None if weights is None else as_weight_array(weights, self.num_weighted)
            compact = None if w is None else Weights.of(w.copy() if w is weights else w)
        self._check_fillable(compact)  # before any change
        self._weights = compact
        self._weights_version += 1
        self._cache = None

    @property
    def weights(self) -> np.ndarray | None:
        """The current weights (a copy), or None when uniform."""
        return None if self._weights is None else self._weights.array()

    @property
    def weights_version(self) -> int:
        """How many times the weights were set: plans are cached per ``(epoch, weights_version)``."""
        return self._weights_version

    def _check_fillable(self, weights: Weights | None) -> None:
        """Raise ValueError when ``weights`` (None: uniform) cannot fill the epoch under ``max_repeats``."""
        if weights is not None:
            check_fillable(weights.positive(), self.num_weighted, self.max_repeats)

    # ------------------------------------------------------------------ the plan
    def _build_plan(self) -> tuple[np.ndarray, np.ndarray | None]:
        """This epoch's plan (the global stream) and, when at hand, the draws per index (else None)."""
        raise NotImplementedError

    def _plan(self) -> tuple[np.ndarray, np.ndarray | None]:
        key = (self.epoch, self._weights_version)
        if self._cache is None or self._cache[0] != key:
            self._cache = None  # the old plan goes first (an iterator still running keeps its own reference)
            self._cache = (key, *self._build_plan())
        return self._cache[1], self._cache[2]

    def counts(self) -> np.ndarray:
        """How many times each dataset index is drawn in the current epoch's plan (global stream), as int64."""
        plan, counts = self._plan()
        if counts is None:
            counts = compact_counts(np.bincount(plan, minlength=self.num_indices))
            self._cache = (self._cache[0], plan, counts)  # type: ignore[index]
        return counts.astype(np.int64)

    def source_counts(self) -> dict[str, int]:
        """Draws per named source in every epoch (empty for a single dataset)."""
        return {}

    def __iter__(self) -> Iterator[int]:
        plan, _ = self._plan()
        return _chunked(plan)

    def __len__(self) -> int:
        raise NotImplementedError

    # ------------------------------------------------------------------ state
    def _layout(self) -> dict[str, Any]:
        """What a state must match to be loaded here (sizes, sources)."""
        return {}

    def state_dict(self, *, copy: bool = True) -> dict[str, Any]:
        """Seed, epoch, cap, layout and the weights (as levels and a byte per index when they have few values);
        ``copy=False`` shares the dense weights with the sampler (for writing out at once)."""
        w = self._weights
        weights: Any = None
        if w is not None:
            weights = {"values": w.values, "codes": w.codes} if w.dense is None else w.dense.copy() if copy else w.dense
        return stamp(self._KIND, self._VERSION, seed=self.seed, epoch=self.epoch, max_repeats=self.max_repeats,
                     weights=weights, **self._layout())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        layout = self._layout()
        check_state(state, self._KIND, self._VERSION, ("seed", "epoch", "max_repeats", "weights", *layout))
        for key, mine in layout.items():
            saved = state[key]
            if (saved.tolist() if isinstance(saved, np.ndarray) else saved) != mine:
                raise ValueError(f"{self._KIND} state is for {key}={saved}, but this sampler has {key}={mine}")
        _check_seed_and_cap(state["seed"], state["max_repeats"])
        old = (self.seed, self.max_repeats)
        self.seed = int(state["seed"])
        self.max_repeats = None if state["max_repeats"] is None else int(state["max_repeats"])
        weights = state["weights"]
        if isinstance(weights, dict):  # levels: values and one code per index
            values, codes = np.asarray(weights["values"]), np.asarray(weights["codes"])
            if codes.dtype != np.uint8 or (codes.size and int(codes.max()) >= values.size):
                raise ValueError(f"{self._KIND} state has weight codes that do not index its {values.size} levels")
            weights = values[codes]
        try:
            self.set_weights(weights)
        except ValueError:
            self.seed, self.max_repeats = old
            raise
        self.epoch = int(state["epoch"])

    def __repr__(self) -> str:
        kind = "uniform" if self._weights is None else "weighted"
        sources = self.source_counts()
        where = f", sources={sources}" if sources else ""
        return (f"{type(self).__name__}(len={len(self)}{where}, seed={self.seed}, max_repeats={self.max_repeats}, "
                f"epoch={self.epoch}, {kind})")


class HardMiningSampler(PlanSampler):
    """Fixed-length epoch sampler whose per-index weights can change between epochs.

    Args:
        num_samples: the dataset length; ``len(sampler) == num_samples`` whatever the weights.
        seed: with the epoch and the weights, the only input to the order.
        max_repeats: cap on copies of one index in one epoch (None: no cap).
        num_replicas: shard the stream over this many processes, for a plain loop without accelerate
            (equal-length shards, padded by wrapping). Leave it None under the HF Trainer / accelerate.
        rank: this process's shard, with ``num_replicas``.

    >>> s = HardMiningSampler(5, seed=0)
    >>> sorted(s)
    [0, 1, 2, 3, 4]
    >>> s.set_weights([0.0, 0.0, 1.0, 1.0, 3.0]); len(list(s))
    5
    """

    _KIND: ClassVar[str] = "HardMiningSampler"

    def __init__(self, num_samples: int, *, seed: int = 0, max_repeats: int | None = None,
                 num_replicas: int | None = None, rank: int | None = None) -> None:
        if int(num_samples) != num_samples or num_samples < 0:
            raise ValueError(f"num_samples must be an integer >= 0, but got {num_samples=}")
        if (num_replicas is None) != (rank is None):
            raise ValueError(f"give num_replicas and rank together, but got {num_replicas=}, {rank=}")
        if num_replicas is not None and rank is not None and not (num_replicas >= 1 and 0 <= rank < num_replicas):
            raise ValueError(f"need num_replicas >= 1 and 0 <= rank < num_replicas, but got {num_replicas=}, {rank=}")
        super().__init__(seed=seed, max_repeats=max_repeats)
        self.num_samples = self.num_weighted = self.num_indices = int(num_samples)
        self.num_replicas = num_replicas
        self.rank = rank

    def _build_plan(self) -> tuple[np.ndarray, np.ndarray | None]:
        g = epoch_generator(self.seed, self.epoch)
        small = index_dtype(self.num_samples)  # kept as int32: half the memory (NumPy shuffles int64 faster)
        if self._weights is None:
            return torch.randperm(self.num_samples, generator=g).numpy().astype(small), None
        counts = plan_counts(self._weights, self.num_samples, self.max_repeats, g)
        plan = np.repeat(np.arange(self.num_samples, dtype=np.int64), counts)
        shuffle_in_place(plan, g)
        return plan.astype(small, copy=False), compact_counts(counts)

    def __iter__(self) -> Iterator[int]:
        plan, _ = self._plan()
        if self.num_replicas is not None:
            total = len(self) * self.num_replicas
            plan = np.resize(plan, total)[self.rank :: self.num_replicas]  # padded by wrapping, as often as needed
        return _chunked(plan)

    def __len__(self) -> int:
        if self.num_replicas is None:
            return self.num_samples
        return -(-self.num_samples // self.num_replicas)

    def _layout(self) -> dict[str, Any]:
        return {"num_samples": self.num_samples}
