"""HardMiner: record losses every step, decide and re-plan once per epoch, identically on every rank."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from hardmine import distributed
from hardmine._serialization import load_state, save_state
from hardmine._validation import as_id_array, as_loss_array
from hardmine.config import HardMiningConfig
from hardmine.guards import Guard, attribute, build_guards, count_reasons
from hardmine.ledger import LedgerStats, LossLedger
from hardmine.sampler import HardMiningSampler
from hardmine.selection import Percentile, Selection, Selector, Threshold, TopK
from hardmine.triggers import EpochTrigger, PlateauTrigger, Trigger

__all__ = ["HardMiner", "MiningEvent"]

logger = logging.getLogger("hardmine")

_STATE_VERSION = 1
_SCORE_BINS = 30


@dataclass
class MiningEvent:
    """What happened at the end of one epoch (one record of ``HardMiner.history``).

    >>> miner = HardMiner({"trigger": {"kind": "epoch", "start_epoch": 0},
    ...                    "select": {"kind": "top_k", "k": 2}}, num_samples=6)
    >>> miner.record([0, 1, 2, 3, 4, 5], [0.1, 0.2, 0.3, 0.4, 2.0, 3.0])
    >>> event = miner.end_epoch(0)
    >>> event.fired, event.num_hard, event.score_cut, event.draws_hist
    (True, 2, 2.0, [1, 4, 1])
    """

    epoch: int
    triggered: bool  # mining is active for the next epoch
    fired: bool = False  # the trigger fired at this epoch (mining starts now)
    num_hard: int = 0
    score_cut: float | None = None
    num_seen: int = 0  # distinct ids in the ledger
    num_eligible: int = 0  # ids that could be selected (observations, source, guards)
    num_observed: int = 0  # (id, loss) pairs gathered this epoch, all ranks
    num_skipped: int = 0  # non-finite losses skipped so far
    excluded: dict[str, int] = field(default_factory=dict)  # guard -> ids it kept out of the hard set
    reason: str | None = None  # why nothing was mined, when nothing was
    per_source: dict[str, int] = field(default_factory=dict)  # draws per source in the next epoch
    overlap_prev: int | None = None  # hard ids shared with the previous epoch's set
    draw_ratio: float | None = None  # mean draws of a mined index / of any other, next epoch
    draws_hist: list[int] = field(default_factory=list)  # indices drawn 0, 1, 2, ... times next epoch
    score_hist: dict[str, list[float]] = field(default_factory=dict)  # eligible scores: counts, edges
    metric: float | None = None  # the monitored metric, for a plateau trigger

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _score_histogram(scores: np.ndarray) -> dict[str, list[float]]:
    """Counts and edges of the eligible scores; log-spaced when they are positive and span over a decade
    (losses are heavy-tailed: linear bins would put the cut inside the first one)."""
    x = np.asarray(scores, dtype=np.float32)  # the ledger's precision: enough for 30 bins, half the memory traffic
    lo, hi = float(x.min()), float(x.max())
    if lo > 0 and hi / lo > 10:  # uniform bins of log(score): NumPy's fast path, then back to scores
        counts, log_edges = np.histogram(np.log(x), bins=_SCORE_BINS, range=(np.log(lo), np.log(hi)))
        return {"counts": counts.tolist(), "edges": np.exp(log_edges).tolist()}
    counts, edges = np.histogram(x, bins=_SCORE_BINS)
    return {"counts": counts.tolist(), "edges": edges.tolist()}


def _build_trigger(cfg: HardMiningConfig) -> Trigger:
    t = cfg.trigger
    if t.kind == "epoch":
        return EpochTrigger(t.start_epoch)
    return PlateauTrigger(t.monitor, t.mode, t.patience, t.threshold, t.threshold_mode, t.cooldown)


def _build_selector(cfg: HardMiningConfig) -> Selector:
    s = cfg.select
    if s.kind == "top_k":
        return TopK(s.k)
    if s.kind == "percentile":
        return Percentile(s.percentile)
    return Threshold(s.threshold)


def _coerce_config(config: HardMiningConfig | dict[str, Any] | str | PathLike[str] | None) -> HardMiningConfig:
    if config is None:
        return HardMiningConfig()
    if isinstance(config, HardMiningConfig):
        return config
    if isinstance(config, dict):
        return HardMiningConfig.model_validate(config)
    if isinstance(config, (str, PathLike)):
        return HardMiningConfig.from_yaml(config)
    raise TypeError(f"config must be a HardMiningConfig, a dict or a YAML path, but got {type(config).__name__}")


def _is_fusion(dataset: Any) -> bool:
    return all(hasattr(dataset, a) for a in ("id_index", "make_sampler", "num_mineable"))


class HardMiner:
    """The orchestrator: ledger + trigger + selection + sampler, driven by ``record`` and ``end_epoch``.

    Args:
        config: a :class:`HardMiningConfig`, a dict, a YAML path, or None for defaults.
        num_samples: the dataset length (or give ``dataset``).
        dataset: anything with ``len``; a :class:`~hardmine.FusionDataset` gets a fusion-aware sampler
            that mines its targets only.
        seed: used when the config sets none (e.g. the training seed).
        sample_ids: int64 array mapping each dataset index to its logical id (default: the index).
        custom_ids: items carry their own arbitrary ``sample_id``; the index -> id map is learned from
            ``record(..., indices=...)``.
        guards: :class:`~hardmine.guards.Guard` objects to use instead of the config's ``guard`` section
            (your own guards, or ``[]`` for none).

    Example (a plain loop):
        >>> miner = HardMiner({"trigger": {"kind": "epoch", "start_epoch": 0},
        ...                    "select": {"kind": "top_k", "k": 2}}, num_samples=8)
        >>> for epoch in range(2):
        ...     miner.sampler.set_epoch(epoch)
        ...     for idx in miner.sampler:
        ...         miner.record([idx], [float(idx)])  # loss of sample idx
        ...     event = miner.end_epoch(epoch)
        >>> event.triggered, event.num_hard, miner.hard_ids.tolist()
        (True, 2, [6, 7])
    """

    def __init__(self, config: HardMiningConfig | dict[str, Any] | str | PathLike[str] | None = None, *,
                 num_samples: int | None = None, dataset: Any = None, seed: int | None = None,
                 sample_ids: Any = None, custom_ids: bool = False, guards: Sequence[Guard] | None = None) -> None:
        self.config = _coerce_config(config)
        cfg = self.config
        if dataset is not None:
            n = len(dataset)
            if num_samples is not None and int(num_samples) != n:
                raise ValueError(f"num_samples={num_samples} disagrees with len(dataset)={n}")
            num_samples = n
        if num_samples is None:
            raise ValueError("give num_samples or dataset")
        self.num_samples = int(num_samples)
        self.seed = int(cfg.seed if cfg.seed is not None else (seed or 0))
        self.dataset = dataset
        self._fusion = dataset is not None and _is_fusion(dataset)
        max_repeats = cfg.resample.max_repeats
        self._index_ids: np.ndarray | None = None  # weighted index -> logical id, when not the identity
        if self._fusion:
            self.sampler: Any = dataset.make_sampler(seed=self.seed, max_repeats=max_repeats)
            self.num_weighted = int(dataset.num_mineable)
            self.ledger = LossLedger(cfg.aggregate, cfg.ema_decay, index=dataset.id_index())
        else:
            self.sampler = HardMiningSampler(self.num_samples, seed=self.seed, max_repeats=max_repeats)
            self.num_weighted = self.num_samples
            if sample_ids is not None:
                self._index_ids = as_id_array(sample_ids, "sample_ids")
                if self._index_ids.size != self.num_samples:
                    raise ValueError(f"sample_ids must have one id per sample: expected length "
                                     f"{self.num_samples}, but got length {self._index_ids.size}")
                self.ledger = LossLedger(cfg.aggregate, cfg.ema_decay)
            elif custom_ids:
                self._index_ids = np.full(self.num_samples, -1, dtype=np.int64)
                self.ledger = LossLedger(cfg.aggregate, cfg.ema_decay)
            else:
                self.ledger = LossLedger(cfg.aggregate, cfg.ema_decay, num_ids=self.num_samples)
        self.trigger = _build_trigger(cfg)
        self.selector = _build_selector(cfg)
        self.guards: list[Guard] = (list(guards) if guards is not None else
                                    build_guards(None if cfg.guard is None else cfg.guard.model_dump()))
        self.active = False
        self.hard_ids = np.empty(0, dtype=np.int64)
        self.history: list[MiningEvent] = []
        self._mined_ids = np.empty(0, dtype=np.int64)  # every id ever mined, with how many epochs
        self._mined_epochs = np.empty(0, dtype=np.int64)
        self._buf: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = []  # (ids, losses, indices)
        # the fusion layout (sources, sizes, id codes): decodes ids in reports, also without the data
        self.fusion_description: dict[str, Any] | None = dataset.describe() if self._fusion else None

    # ------------------------------------------------------------------ properties
    @property
    def enabled(self) -> bool:
        return self.config.enabled

    @property
    def is_fusion(self) -> bool:
        """Whether the miner trains a FusionDataset (its ids are assigned by the fusion)."""
        return self._fusion

    @property
    def custom_ids(self) -> bool:
        """Whether ids are the items' own ``sample_id`` rather than dataset indices."""
        return self._index_ids is not None

    @property
    def pending(self) -> int:
        """(id, loss) pairs recorded on this rank since the last ``end_epoch``."""
        return sum(b[0].size for b in self._buf)

    def use_custom_ids(self) -> None:
        """Switch to items' own arbitrary ``sample_id`` (before anything is recorded)."""
        if self.custom_ids:
            return
        if self._fusion:
            raise ValueError("a FusionDataset assigns sample ids itself; custom ids do not apply")
        if self._buf or len(self.ledger):
            raise ValueError("use_custom_ids() must be called before the first record()")
        self._index_ids = np.full(self.num_samples, -1, dtype=np.int64)
        self.ledger = LossLedger(self.config.aggregate, self.config.ema_decay)

    # ------------------------------------------------------------------ per step
    def record(self, ids: Any, losses: Any, indices: Any = None) -> None:
        """Buffer per-sample losses on this rank (no collective). ``indices``: their dataset indices."""
        if not self.enabled:
            return
        ids_a = as_id_array(ids, "ids")
        losses_a = as_loss_array(losses, "losses")
        if ids_a.size != losses_a.size:
            raise ValueError(f"ids and losses must have the same length, but got {ids_a.size} ids and "
                             f"{losses_a.size} losses")
        idx = None
        if indices is not None:
            idx = as_id_array(indices, "indices")
            if idx.size != ids_a.size:
                raise ValueError(f"indices and ids must have the same length, but got {idx.size} indices and "
                                 f"{ids_a.size} ids")
            if idx.size and int(idx.view(np.uint64).max()) >= self.num_samples:
                raise ValueError(f"indices must lie in 0..{self.num_samples - 1}, but got "
                                 f"{int(idx[(idx < 0) | (idx >= self.num_samples)][0])}")
        self.ledger.check_ids(ids_a)
        if ids_a.size:
            self._buf.append((ids_a, losses_a, idx))

    # ------------------------------------------------------------------ per epoch
    def end_epoch(self, epoch: int, metrics: dict[str, float] | None = None) -> MiningEvent:
        """Gather, fold, trigger, select and re-plan epoch ``epoch + 1``. Call it on every rank; rank 0 logs it."""
        epoch = int(epoch)
        if self.sampler is None:
            raise RuntimeError("this miner was loaded from a fusion run without its FusionDataset, which is "
                               "enough to report on but not to train: pass dataset= to HardMiner.load")
        if not self.enabled:
            event = MiningEvent(epoch=epoch, triggered=False, reason="disabled")
            self.history.append(event)
            return event
        ids, losses, indices = self._gather()
        if self._index_ids is not None and indices is not None:
            known = indices >= 0
            self._index_ids[indices[known]] = ids[known]
        self.ledger.set_epoch(epoch)
        self.ledger.extend(ids, losses)  # checked when recorded; the gathered arrays are ours: no copies
        metrics = dict(metrics or {})
        if "train_loss" not in metrics:
            finite = losses[np.isfinite(losses)]
            if finite.size:
                metrics["train_loss"] = float(finite.mean())
        fired = False
        if not self.active:
            fired = self.trigger.step(epoch, metrics)
            self.active = fired
        monitor = getattr(self.trigger, "monitor", None)
        event = MiningEvent(epoch=epoch, triggered=self.active, fired=fired, num_observed=int(ids.size),
                            metric=None if monitor is None or monitor not in metrics else float(metrics[monitor]))
        previous = self.hard_ids
        stats = self._eligible()
        # every epoch, also before the trigger: stateful guards follow each id's trend
        who = attribute(self.guards, stats, epoch) if self.guards else None
        positions = np.empty(0, dtype=np.int64)
        if self.active:
            positions = self._mine(stats if who is None else stats.subset(who < 0), event, num_seen=len(stats))
            if who is not None:  # what the guards changed: ids the unguarded selection would have mined
                would = self._select(stats, len(stats)).ids
                event.excluded = count_reasons(self.guards, who[np.searchsorted(stats.ids, would)])
        else:
            event.reason = "trigger has not fired"
        event.num_seen = len(self.ledger)
        event.num_skipped = self.ledger.num_skipped
        if self.active and previous.size:
            event.overlap_prev = int(np.intersect1d(previous, self.hard_ids, assume_unique=True).size)
        self.sampler.set_epoch(epoch + 1)
        self._describe_plan(event, positions)
        self._log(event)
        self.history.append(event)
        return event

    def _gather(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Every rank's records, in rank order (one collective pair; none in a single process)."""
        ids, losses, indices = self._local_records()
        self._buf = []
        if distributed.get_world_size() > 1:  # the collective wants the same 8-byte arrays on every rank
            idx = np.full(ids.size, -1, dtype=np.int64) if indices is None else indices
            ids, losses, indices = distributed.all_gather_concat([ids, losses.astype(np.float64), idx])
        return ids, losses, indices

    def _local_records(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """This rank's buffered (ids, losses, indices or None when no record gave any), as single arrays."""
        if not self._buf:
            return np.empty(0, np.int64), np.empty(0, np.float32), None
        ids = np.concatenate([b[0] for b in self._buf])
        losses = np.concatenate([b[1] for b in self._buf])
        if all(b[2] is None for b in self._buf):
            return ids, losses, None
        indices = np.concatenate([np.full(b[0].size, -1, np.int64) if b[2] is None else b[2] for b in self._buf])
        return ids, losses, indices

    def _eligible(self) -> LedgerStats:
        """Ids that may be mined: seen ``min_observations`` times and, in a fusion, from a target source."""
        stats = self.ledger.stats(self.config.min_observations, copy=False)  # read within this end_epoch only
        if self._fusion:
            stats = stats.subset(self.ledger_slots(stats.ids) < self.num_weighted)
        return stats

    def _select(self, stats: LedgerStats, num_seen: int) -> Selection:
        """The selector on ``stats``; a top-k fraction is of ``num_seen`` ids, not of what guards left."""
        selector = self.selector
        if isinstance(selector, TopK) and selector.k < 1:
            count = selector.count(num_seen)
            selector = TopK(count) if count else selector
        return selector.select(stats.ids, stats.scores)

    def _mine(self, stats: LedgerStats, event: MiningEvent, num_seen: int) -> np.ndarray:
        """Select among ``stats`` (eligible, past the guards) and re-weight the next epoch's plan.

        Returns the positions of the mined ids in the weight vector (empty when nothing was mined)."""
        event.num_eligible = len(stats)
        if len(stats):
            event.score_hist = _score_histogram(stats.scores)
        selection = self._select(stats, num_seen)
        self.hard_ids = selection.ids
        event.num_hard = len(selection)
        event.score_cut = selection.cut
        if not len(selection):
            event.reason = ("no id was eligible" if not len(stats) else
                            f"no eligible id met the cut of {self.selector!r}")
            self.sampler.set_weights(None)
            return np.empty(0, dtype=np.int64)
        positions = self._weighted_positions(selection.ids)
        weights = np.ones(self.num_weighted, dtype=np.float64)
        weights[positions] = self.config.resample.hard_weight
        self.sampler.set_weights(weights)
        self._count_mined(selection.ids)
        return positions

    def ledger_slots(self, ids: np.ndarray) -> np.ndarray:
        """Positions of ids in the ledger's dense table (dense and fusion ledgers)."""
        index = self.ledger.index
        assert index is not None
        return np.asarray(index.slots(ids), dtype=np.int64)

    def _weighted_positions(self, hard_ids: np.ndarray) -> np.ndarray:
        if self._index_ids is not None:  # several indices may share one logical id
            return np.flatnonzero(np.isin(self._index_ids, hard_ids))
        return self.ledger_slots(hard_ids)

    def _count_mined(self, ids: np.ndarray) -> None:
        """Add one mined epoch to each of ``ids`` (ascending, unique) in the running (id, epochs) table."""
        keys = np.concatenate([self._mined_ids, ids])
        keys.sort(kind="stable")  # two sorted runs: a linear merge
        keys = keys[np.r_[True, keys[1:] != keys[:-1]]] if keys.size else keys
        epochs = np.zeros(keys.size, dtype=np.int64)
        epochs[np.searchsorted(keys, self._mined_ids)] = self._mined_epochs
        epochs[np.searchsorted(keys, ids)] += 1
        self._mined_ids, self._mined_epochs = keys, epochs

    def mined_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Every id mined so far and in how many epochs it was mined."""
        return self._mined_ids.copy(), self._mined_epochs.copy()

    def _describe_plan(self, event: MiningEvent, positions: np.ndarray) -> None:
        """Draws of the next epoch's plan: histogram, per source, and how much more often the mined
        ``positions`` (distinct indices of the weight vector) are drawn."""
        weighted = self.sampler.counts()[: self.num_weighted]
        event.draws_hist = np.bincount(weighted).tolist()
        if hasattr(self.sampler, "source_counts"):
            event.per_source = dict(self.sampler.source_counts())
        if positions.size:
            rest = self.num_weighted - positions.size
            if rest == 0:
                event.draw_ratio = 1.0
            else:
                hard_draws = float(weighted[positions].sum())
                other_mean = (float(weighted.sum()) - hard_draws) / rest
                event.draw_ratio = hard_draws / positions.size / max(other_mean, 1e-12)

    def _log(self, event: MiningEvent) -> None:
        """One INFO line per epoch, from rank 0 only: every rank holds the same event in ``history``."""
        if distributed.get_rank() != 0:
            return
        if not self.active:
            logger.info("hardmine: epoch %d: mining not triggered yet (%d ids seen)", event.epoch, event.num_seen)
            return
        head = "mining triggered at epoch" if event.fired else "mining at epoch"
        cut = "n/a" if event.score_cut is None else f"{event.score_cut:.4g}"
        labels = {g.name: g.label for g in self.guards}
        extra = "".join(f"; {n} excluded as {labels.get(r, r)}" for r, n in event.excluded.items() if n)
        ratio = "" if event.draw_ratio is None else f"; mined samples drawn {event.draw_ratio:.2f}x as often next epoch"
        why = f" ({event.reason})" if event.reason and not event.num_hard else ""
        logger.info("hardmine: %s %d: %d hard samples (score >= %s)%s%s%s", head, event.epoch, event.num_hard, cut,
                    extra, ratio, why)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit for bit, including this rank's not-yet-gathered records."""
        ids, losses, indices = self._local_records()
        local = [ids, losses.astype(np.float64), np.full(ids.size, -1, np.int64) if indices is None else indices]
        state: dict[str, Any] = {
            "version": _STATE_VERSION,
            "config": self.config.model_dump(mode="json"),
            "num_samples": self.num_samples,
            "seed": self.seed,
            "active": self.active,
            "hard_ids": self.hard_ids.copy(),
            "mined_ids": self._mined_ids.copy(),
            "mined_epochs": self._mined_epochs.copy(),
            "index_ids": None if self._index_ids is None else self._index_ids.copy(),
            "ledger": self.ledger.state_dict(),
            "trigger": self.trigger.state_dict(),
            "guards": [g.state_dict() for g in self.guards],
            "sampler": self.sampler.state_dict(),
            "history": [e.to_dict() for e in self.history],
            "pending": {"ids": local[0], "losses": local[1], "indices": local[2]},
        }
        if self.fusion_description is not None:
            state["fusion"] = self.fusion_description
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        version = state.get("version")
        if version != _STATE_VERSION:
            raise ValueError(f"cannot load HardMiner state of version {version!r}; this hardmine reads "
                             f"version {_STATE_VERSION}")
        if int(state["num_samples"]) != self.num_samples:
            raise ValueError(f"HardMiner state is for a dataset of {state['num_samples']} samples, but this "
                             f"miner has {self.num_samples}")
        index_ids = state.get("index_ids")
        if index_ids is not None and self._fusion:
            raise ValueError("HardMiner state uses custom sample ids, but this miner trains a FusionDataset")
        if index_ids is None and self._index_ids is not None:
            raise ValueError("HardMiner state uses dataset indices as ids, but this miner uses custom sample ids")
        if index_ids is not None:
            self.use_custom_ids()
            self._index_ids = as_id_array(index_ids, "index_ids")
        self.ledger.load_state_dict(state["ledger"])
        self.trigger.load_state_dict(state["trigger"])
        guard_states = state.get("guards", [])
        if len(guard_states) != len(self.guards):
            raise ValueError(f"HardMiner state holds {len(guard_states)} guard state(s), but this miner runs "
                             f"{len(self.guards)} guard(s): {self.guards}")
        for guard, guard_state in zip(self.guards, guard_states):
            guard.load_state_dict(guard_state)
        self.sampler.load_state_dict(state["sampler"])
        self.seed = int(state["seed"])
        self._load_results(state)
        p = state["pending"]
        indices = np.asarray(p["indices"], np.int64)
        pend = (np.asarray(p["ids"], np.int64), np.asarray(p["losses"], np.float64),
                None if bool(np.all(indices < 0)) else indices)
        self._buf = [pend] if pend[0].size else []

    def _load_results(self, state: dict[str, Any]) -> None:
        """What a run produced: activity, hard set, mined counts and history (all a report needs)."""
        self.active = bool(state["active"])
        self.hard_ids = np.asarray(state["hard_ids"], dtype=np.int64)
        self._mined_ids = np.asarray(state["mined_ids"], dtype=np.int64)
        self._mined_epochs = np.asarray(state["mined_epochs"], dtype=np.int64)
        self.history = [MiningEvent(**e) for e in state["history"]]

    def save(self, path: str | PathLike[str]) -> Path:
        """Write state and history to one ``.npz`` file (what ``hardmine report`` reads)."""
        save_state(self.state_dict(), path, kind="HardMiner")
        return Path(path)

    @classmethod
    def load(cls, path: str | PathLike[str], *, dataset: Any = None) -> HardMiner:
        """A miner restored from :meth:`save`. Pass the ``FusionDataset`` for a fusion run to keep training."""
        state = load_state(path, kind="HardMiner")
        cfg = HardMiningConfig.model_validate(state["config"])
        if dataset is None and "fusion" in state:  # enough to report on, not to train
            miner = cls(cfg, num_samples=int(state["num_samples"]), custom_ids=True)
            miner.sampler = None
            miner.fusion_description = state["fusion"]
            miner.ledger.load_state_dict({**state["ledger"], "size": None})
            miner._load_results(state)
            return miner
        miner = cls(cfg, num_samples=int(state["num_samples"]), dataset=dataset,
                    custom_ids=state.get("index_ids") is not None and dataset is None)
        miner.load_state_dict(state)
        return miner

    def __repr__(self) -> str:
        return (f"HardMiner(enabled={self.enabled}, num_samples={self.num_samples}, active={self.active}, "
                f"num_hard={self.hard_ids.size}, ledger={self.ledger!r})")
