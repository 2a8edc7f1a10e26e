"""FusionDataset: the pools concatenated in one flat index space, items tagged with their id and source.

The dataset is a pure map over the pools concatenated in order (targets first): ``fusion[i]`` looks
up its pool by binary search on the offsets and adds ``sample_id`` and ``source`` to dict items. The
per-epoch schedule (quotas, mining weights, shuffle) lives in the :class:`FusionSampler` that
:meth:`FusionDataset.make_sampler` builds, in the main process, so persistent DataLoader workers
never hold a stale plan. See ``docs/UNIFIED_FUSION_DATASET.md``.
"""

from __future__ import annotations

import operator
import warnings
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from os import PathLike
from typing import Any

import numpy as np

from hardmine.fusion._config import FusionConfig
from hardmine.fusion._layout import ID_BITS, FusionLayout, SourceSpec
from hardmine.fusion._sampler import FusionSampler


@dataclass(frozen=True)
class Pool:
    """A source with its per-source settings (a bare dataset or ``(dataset, ratio)`` also works).

    Args:
        dataset: a map-style dataset (``len`` and ``[i]``).
        ratio: target: draws per epoch = ``round(ratio * len(dataset))``; auxiliary: draws per epoch =
            ``round(ratio * T)``, ``T`` the sum of the target quotas.
        replacement: auxiliary only: draw with replacement. False (default) draws without replacement,
            and when the quota exceeds the pool, every sample ``quota // size`` times plus a subset (warned).
        salt: seed salt of this source's draws (default: its id code); change it to redraw one source only.
    """

    dataset: Any
    ratio: float = 1.0
    replacement: bool = False
    salt: int | None = None


def _as_pool(name: str, value: Any, kind: str) -> Pool:
    if isinstance(value, Pool):
        return value
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], Real) \
            and not isinstance(value[1], bool):
        return Pool(value[0], ratio=float(value[1]))
    if kind == "auxiliary":
        raise TypeError(f"auxiliary {name!r} needs a ratio: give (dataset, ratio) or "
                        f"Pool(dataset, ratio=...), but got a {type(value).__name__}")
    return Pool(value)


def _size(name: str, kind: str, dataset: Any) -> int:
    if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
        raise TypeError(f"{kind} {name!r} must be a map-style dataset (len and [i]), but got a "
                        f"{type(dataset).__name__}")
    return int(len(dataset))


class FusionDataset:
    """Targets (mined) and auxiliaries (drawn at a ratio of the target quota) in one flat index space.

    Args:
        targets: ``{name: dataset | (dataset, ratio) | Pool}``, at least one; their samples are mined.
        auxiliaries: ``{name: (dataset, ratio) | Pool}``; drawn uniformly, exactly their quota per epoch.

    Example:
        >>> bbu = [{"x": i} for i in range(100)]
        >>> lvis = [{"x": -i} for i in range(1000)]
        >>> fusion = FusionDataset(targets={"bbu": bbu}, auxiliaries={"lvis": (lvis, 0.08)})
        >>> len(fusion), fusion.num_mineable, fusion.quotas()
        (1100, 100, {'bbu': 100, 'lvis': 8})
        >>> item = fusion[100]
        >>> item["source"], fusion.decode(item["sample_id"])
        ('lvis', ('lvis', 0))
        >>> sampler = fusion.make_sampler(seed=0)
        >>> len(sampler), sampler.source_counts()
        (108, {'bbu': 100, 'lvis': 8})
    """

    def __init__(self, targets: Mapping[str, Any], auxiliaries: Mapping[str, Any] | None = None) -> None:
        if not isinstance(targets, Mapping) or not targets:
            raise ValueError(f"FusionDataset needs at least one target source, but got targets={targets!r}")
        auxiliaries = {} if auxiliaries is None else auxiliaries
        if not isinstance(auxiliaries, Mapping):
            raise TypeError(f"auxiliaries must be a mapping name -> (dataset, ratio), but got "
                            f"{type(auxiliaries).__name__}")
        pools = [(n, "target", _as_pool(n, v, "target")) for n, v in targets.items()]
        pools += [(n, "auxiliary", _as_pool(n, v, "auxiliary")) for n, v in auxiliaries.items()]
        specs = []
        for name, kind, pool in pools:
            if kind == "target" and pool.replacement:
                raise ValueError(f"target {name!r}: replacement applies to auxiliaries only; a target draws "
                                 "every sample by its mining weight")
            size = _size(name, kind, pool.dataset)
            specs.append(SourceSpec(name, kind, size, pool.ratio, bool(pool.replacement), pool.salt))
        self._layout = FusionLayout(specs)
        self._datasets = [pool.dataset for _, _, pool in pools]
        self._starts = self._layout.offsets[:-1].tolist()
        self._codes = self._layout.codes.tolist()
        self._warn_short_pools()

    def _warn_short_pools(self) -> None:
        lay = self._layout
        for i in range(lay.num_targets, len(lay.specs)):
            s, quota = lay.specs[i], int(lay.quotas[i])
            if not s.replacement and quota > s.size:
                warnings.warn(f"auxiliary {s.name!r}: its quota of {quota} draws per epoch exceeds its "
                              f"{s.size} samples, so it cannot be drawn without replacement; each epoch "
                              f"draws every sample {quota // s.size} time(s) plus {quota % s.size} more "
                              "without replacement (set replacement=True to draw with replacement instead)",
                              UserWarning, stacklevel=3)

    @classmethod
    def from_config(cls, config: FusionConfig | Mapping[str, Any] | str | PathLike[str],
                    pools: Mapping[str, Any]) -> FusionDataset:
        """Build from the YAML ``fusion`` block and the datasets the user loaded, by source name."""
        if isinstance(config, FusionConfig):
            cfg = config
        elif isinstance(config, Mapping):
            cfg = FusionConfig.model_validate(config)
        else:
            cfg = FusionConfig.from_yaml(config)
        named = [*cfg.targets, *cfg.auxiliaries]
        missing = [n for n in named if n not in pools]
        if missing:
            raise ValueError(f"no dataset given for source(s) {missing} of the fusion config (pools has "
                             f"{sorted(pools)})")
        unknown = sorted(set(pools) - set(named))
        if unknown:
            raise ValueError(f"pools {unknown} are not sources of the fusion config (sources: {named})")
        targets = {n: Pool(pools[n], ratio=t.ratio, salt=t.salt) for n, t in cfg.targets.items()}
        auxiliaries = {n: Pool(pools[n], ratio=a.ratio, replacement=a.replacement, salt=a.salt)
                       for n, a in cfg.auxiliaries.items()}
        return cls(targets, auxiliaries)

    # ------------------------------------------------------------------ the map
    def __len__(self) -> int:
        return self._layout.size

    def _locate(self, i: Any) -> tuple[int, int]:
        i = operator.index(i)
        n = self._layout.size
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"index {i} is out of range for a FusionDataset of length {n}")
        s = bisect_right(self._starts, i) - 1
        return s, i - self._starts[s]

    def __getitem__(self, i: int) -> Any:
        s, j = self._locate(i)
        item = self._datasets[s][j]
        if isinstance(item, Mapping):
            return {**item, "sample_id": (self._codes[s] << ID_BITS) | j, "source": self._layout.names[s]}
        return item

    # ------------------------------------------------------------------ ids
    def sample_id(self, flat_index: Any) -> Any:
        """The sample id of a flat index (an int), or of an array of them (an int64 array)."""
        if np.ndim(flat_index) == 0:
            s, j = self._locate(flat_index)
            return (self._codes[s] << ID_BITS) | j
        return self._layout.ids(flat_index)

    def decode(self, sample_id: int) -> tuple[str, int]:
        """``(source name, index in that source)`` of one sample id; ValueError when it decodes to none."""
        src, index = self._layout.decode(operator.index(sample_id))
        return self._layout.names[int(src[0])], int(index[0])

    def decode_many(self, sample_ids: Any) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised :meth:`decode`: ``(source names, indices)`` arrays."""
        src, index = self._layout.decode(sample_ids)
        return np.asarray(self._layout.names, dtype=str)[src], index

    def id_index(self) -> FusionLayout:
        """The ledger's id -> slot index (slot == flat index)."""
        return self._layout

    def describe(self) -> dict[str, Any]:
        """JSON-able sources, kinds, sizes, ratios, quotas and id codes (what ``decode_ids`` reads)."""
        return self._layout.describe()

    # ------------------------------------------------------------------ schedule
    @property
    def num_mineable(self) -> int:
        """Total size of the target pools: flat indices ``0..num_mineable-1`` are the targets."""
        return self._layout.num_mineable

    @property
    def epoch_length(self) -> int:
        """Draws per epoch: the target quota plus the auxiliary quotas."""
        return self._layout.epoch_length

    @property
    def sources(self) -> tuple[str, ...]:
        return self._layout.names

    @property
    def targets(self) -> tuple[str, ...]:
        return self._layout.names[: self._layout.num_targets]

    @property
    def auxiliaries(self) -> tuple[str, ...]:
        return self._layout.names[self._layout.num_targets :]

    def quotas(self) -> dict[str, int]:
        """Draws per source per epoch."""
        return dict(zip(self._layout.names, self._layout.quotas.tolist()))

    def make_sampler(self, *, seed: int = 0, max_repeats: int | None = None) -> FusionSampler:
        """The fixed-length epoch sampler: targets by mining weight, auxiliaries at their quotas."""
        return FusionSampler(self._layout, seed=seed, max_repeats=max_repeats)

    def eval_view(self, sources: Sequence[str] | None = None) -> FusionEvalView:
        """The pools concatenated in order (or only ``sources``), each sample once: no quotas, no shuffle."""
        return FusionEvalView(self, sources)

    def __repr__(self) -> str:
        parts = ", ".join(f"{n}[{s.kind}, {s.size}] x{q}"
                          for n, s, q in zip(self.sources, self._layout.specs, self._layout.quotas))
        return f"FusionDataset({parts}; epoch_length={self.epoch_length})"


class FusionEvalView:
    """Evaluation view of a fusion: the chosen pools in order, every sample once, items as ``fusion[i]``.

    >>> fusion = FusionDataset({"a": [{"x": 0}, {"x": 1}]}, {"b": ([{"x": 2}], 0.5)})
    >>> [item["x"] for item in fusion.eval_view()], len(fusion.eval_view(["a"]))
    ([0, 1, 2], 2)
    """

    def __init__(self, fusion: FusionDataset, sources: Sequence[str] | None = None) -> None:
        lay = fusion.id_index()
        names = list(lay.names) if sources is None else list(sources)
        unknown = [n for n in names if n not in lay.names]
        if unknown or len(set(names)) != len(names):
            raise ValueError(f"eval_view sources must be distinct names of this fusion {list(lay.names)}, "
                             f"but got {names}")
        pos = [lay.names.index(n) for n in names]
        self.fusion = fusion
        self.sources = tuple(names)
        self._flat_starts = [int(lay.offsets[p]) for p in pos]
        sizes = [int(lay.sizes[p]) for p in pos]
        self._starts = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).tolist()

    def __len__(self) -> int:
        return int(self._starts[-1])

    def flat_index(self, i: int) -> int:
        """The fusion's flat index of view index ``i``."""
        i = operator.index(i)
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"index {i} is out of range for a FusionEvalView of length {n}")
        s = bisect_right(self._starts, i) - 1
        return int(self._flat_starts[s] + i - self._starts[s])

    def __getitem__(self, i: int) -> Any:
        return self.fusion[self.flat_index(i)]

    def __repr__(self) -> str:
        return f"FusionEvalView(sources={list(self.sources)}, len={len(self)})"
