"""HardMiner: record losses every step; once per epoch, on every rank, run the mining pipeline.

``end_epoch`` is a chain of stages, each a part with one job that returns a value:

    records = buffer.gather()            every rank's (id, loss, index) records        buffer.py
    ledger.extend(records)               one score per logical id                      ledger.py
    fired = trigger.step(...)            latched: once on, mining stays on             triggers.py
    stats = id_space.eligible(...)       observed often enough, mineable source        ids.py
    verdict = guards.judge(stats)        every epoch: who keeps which id out           guards/
    selection = select_among(...)        the hard ids among those kept                 selection.py
    figures = planner.plan(sampler, ...) next epoch's weights, and what the plan draws planner.py
    MiningEvent(...)                     built once, frozen, appended to the history   event.py
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from os import PathLike
from pathlib import Path
from typing import Any, Union

import numpy as np

from hardmine._serialization import load_state, save_state
from hardmine._state import check_state, stamp
from hardmine.buffer import RecordBuffer
from hardmine.config import HardMiningConfig, check_resume
from hardmine.event import MiningEvent, log_event, score_histogram
from hardmine.guards import Guard, GuardChain, Verdict
from hardmine.history import MiningHistory
from hardmine.ids import IdSpace, MappedIds, id_space_for
from hardmine.ledger import LedgerStats
from hardmine.planner import Planner, lift_cap
from hardmine.prior import prior_and_groups
from hardmine.run_record import MINER_KIND, MINER_VERSION, RunRecord
from hardmine.selection import select_among, why_none

__all__ = ["HardMiner"]

ConfigLike = Union[HardMiningConfig, dict[str, Any], str, "PathLike[str]", None]


class HardMiner:
    """The orchestrator the adapters call: ``record`` every step, ``end_epoch`` every epoch, on every rank.

    Args:
        config: a :class:`HardMiningConfig`, a dict, a YAML path, or None for defaults.
        num_samples: the dataset length (or give ``dataset``).
        dataset: anything with ``len``; a :class:`~hardmine.FusionDataset` mines its targets only.
        seed: used when the config sets none (e.g. the training seed).
        sample_ids: int64 array mapping each dataset index to its logical id (default: the index).
        custom_ids: items carry their own arbitrary ``sample_id``; the index -> id map is learned from
            ``record(..., indices=...)``.
        guards: :class:`~hardmine.guards.Guard` objects instead of the config's ``guard`` section (``[]``: none).
        categories: the categories present in each sample (``categories[i]``: an int or an iterable of ints,
            e.g. the object classes of image ``i``), or a :class:`~hardmine.Categories`; with a FusionDataset,
            ``{target name: categories}``. They give the frequency prior (``resample.prior``), which makes
            rare categories drawn more often from the first epoch on and multiplies with hardness.

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

    def __init__(self, config: ConfigLike = None, *, num_samples: int | None = None, dataset: Any = None,
                 seed: int | None = None, sample_ids: Any = None, custom_ids: bool = False,
                 guards: Sequence[Guard] | None = None, categories: Any = None) -> None:
        self.config = cfg = HardMiningConfig.coerce(config)
        if dataset is not None:
            if num_samples is not None and int(num_samples) != len(dataset):
                raise ValueError(f"num_samples={num_samples} disagrees with len(dataset)={len(dataset)}")
            num_samples = len(dataset)
        if num_samples is None:
            raise ValueError("give num_samples or dataset")
        self.num_samples = int(num_samples)
        self.seed = int(cfg.seed if cfg.seed is not None else (seed or 0))
        self.dataset = dataset
        self.id_space: IdSpace = id_space_for(self.num_samples, dataset, sample_ids, custom_ids)
        self.ledger = self.id_space.new_ledger(cfg.aggregate, cfg.ema_decay)
        self.sampler = self.id_space.new_sampler(self.seed, cfg.resample.max_repeats)
        self.buffer = RecordBuffer(check=self._check_records)
        self.trigger = cfg.trigger.build()
        self.selector = cfg.select.build()
        self.guards = GuardChain(cfg.build_guards() if guards is None else guards)
        spec = cfg.resample.build_prior(categories is not None) if cfg.enabled else None
        prior = groups = None
        if spec is not None:
            prior, groups = prior_and_groups(spec, categories, self.num_samples,
                                             fusion=getattr(self.id_space, "layout", None))
        self.planner = Planner(cfg.resample.hard_weight, prior, None if spec is None else spec.kind,
                               cfg.resample.keep_rare_share, groups)
        if prior is not None:
            self.sampler.set_weights(prior)  # the prior applies from the first epoch on
        self.active = False
        self._history = MiningHistory()

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    @property
    def history(self) -> list[MiningEvent]:
        """One :class:`MiningEvent` per ended epoch."""
        return self._history.events

    @property
    def hard_ids(self) -> np.ndarray:
        """The currently mined ids, ascending."""
        return self._history.hard_ids

    @property
    def pending(self) -> int:
        """Records buffered on this rank since the last ``end_epoch``."""
        return len(self.buffer)

    def use_custom_ids(self) -> None:
        """Switch to items' own arbitrary ``sample_id`` (before anything is recorded)."""
        if self.id_space.kind == "mapped":
            return
        if self.id_space.kind == "fusion":
            raise ValueError("a FusionDataset assigns sample ids itself; custom ids do not apply")
        if len(self.buffer) or len(self.ledger):
            raise ValueError("use_custom_ids() must be called before the first record()")
        self.id_space = MappedIds(self.num_samples)
        self.ledger = self.id_space.new_ledger(self.config.aggregate, self.config.ema_decay)

    def mined_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Every id mined so far and in how many epochs it was mined."""
        return self._history.mined_counts()

    # ------------------------------------------------------------------ per step
    def _check_records(self, ids: np.ndarray, indices: np.ndarray | None) -> None:
        self.ledger.check_ids(ids)
        if indices is not None:
            self.id_space.check_indices(indices)

    def record(self, ids: Any, losses: Any, indices: Any = None) -> None:
        """Buffer per-sample losses on this rank (no collective). ``indices``: their dataset indices.

        Lists and arrays are checked now; tensors stay on their device and are checked when a batch of them
        is copied to the host (every 16 calls, and at ``end_epoch``)."""
        if self.enabled:
            self.buffer.add(ids, losses, indices)

    # ------------------------------------------------------------------ per epoch
    def end_epoch(self, epoch: int, metrics: dict[str, float] | None = None) -> MiningEvent:
        """Gather, fold, trigger, select and re-plan epoch ``epoch + 1``. Call it on every rank; rank 0 logs it."""
        epoch = int(epoch)
        if not self.enabled:
            return self._history.append(MiningEvent(epoch=epoch, triggered=False, reason="disabled"))
        records = self.buffer.gather()
        self.id_space.learn(records.ids, records.indices)
        self.ledger.set_epoch(epoch)
        self.ledger.extend(records.ids, records.losses)  # checked when recorded; the arrays are ours
        metrics = dict(metrics or {})
        num_observed, mean_loss = len(records), records.mean_loss()
        del records  # the ledger holds them until its fold, which frees them
        if "train_loss" not in metrics and mean_loss is not None:
            metrics["train_loss"] = mean_loss
        fired = not self.active and self.trigger.step(epoch, metrics)
        self.active = self.active or fired
        seen = self.ledger.stats(self.config.min_observations, copy=False)  # views: read within this call
        stats = self.id_space.eligible(seen)
        verdict = self.guards.judge(stats, epoch) if len(self.guards) else None
        ids, scores = stats.ids, stats.scores
        kept = None if verdict is None else verdict.kept
        if kept is not None and not kept.all():
            ids, scores = ids[kept], scores[kept]
        del kept
        selection = select_among(self.selector, ids, scores, len(stats)) if self.active else None
        hard = None if selection is None else selection.ids
        lifted, boosted_flagged = self._cap(stats, verdict)
        figures = self.planner.plan(self.sampler, None if hard is None else self.id_space.positions(hard), epoch + 1)
        monitor = getattr(self.trigger, "monitor", None)
        event = MiningEvent(
            epoch=epoch, triggered=self.active, fired=fired, num_hard=len(selection or ()),
            score_cut=None if selection is None else selection.cut, num_seen=len(self.ledger),
            num_eligible=ids.size if self.active else 0, num_observed=num_observed,
            num_skipped=self.ledger.num_skipped, reason=why_none(selection, ids.size, self.selector),
            excluded={} if selection is None else self.guards.excluded(verdict, stats, self.selector),
            overlap_prev=None if hard is None else self._history.overlap(hard),
            score_hist=score_histogram(scores) if self.active else {},
            metric=float(metrics[monitor]) if monitor in metrics else None, cap_lifted=lifted,
            boosted_flagged=boosted_flagged, **asdict(figures))
        log_event(event, self.guards.labels())
        return self._history.append(event, hard)

    def _cap(self, stats: LedgerStats, verdict: Verdict | None) -> tuple[bool, float | None]:
        """Set the sampler's cap for the next epoch: ``max_repeats``, or none while ``lift_cap_below`` says the
        prior-boosted samples look clean. Returns (lifted, the flagged share of them; None: not measured)."""
        below, cap = self.config.resample.lift_cap_below, self.config.resample.max_repeats
        lifted, share = False, None
        if (below is not None and cap is not None and self.planner.prior is not None and verdict is not None
                and self.guards.judging):
            flagged = np.zeros(self.planner.boosted.size, dtype=bool)
            flagged[self.id_space.positions(stats.ids[self.guards.noise_flags(verdict)])] = True
            lifted, share = lift_cap(self.planner.boosted, flagged, below)
        self.sampler.max_repeats = None if lifted else cap
        return lifted, share

    # ------------------------------------------------------------------ state
    def _parts(self) -> dict[str, Any]:
        return {"id_space": self.id_space, "ledger": self.ledger, "trigger": self.trigger, "guards": self.guards,
                "sampler": self.sampler, "history": self._history}

    def state_dict(self, all_ranks: bool = False, *, copy: bool = True) -> dict[str, Any]:
        """Everything needed to continue bit for bit, with this rank's not-yet-gathered records
        (``all_ranks=True``: every rank's; a collective, for a checkpoint one process writes).

        ``copy=False`` shares arrays with the live parts instead of copying them (valid until the next
        ``record`` or ``end_epoch``): what :meth:`save` writes out at once, with no full in-memory copy."""
        return stamp(MINER_KIND, MINER_VERSION, config=self.config.model_dump(mode="json"),
                     num_samples=self.num_samples, seed=self.seed, active=self.active,
                     buffer=self.buffer.state_dict(all_ranks), prior=self.planner.fingerprint(),
                     **{k: p.state_dict(copy=copy) for k, p in self._parts().items()})

    def load_state_dict(self, state: dict[str, Any], where: str | None = None) -> None:
        """Continue from ``state`` (``where``: the file it came from, named in errors).

        Settings that decide the epoch in flight or the meaning of the saved scores must not change (see
        :func:`~hardmine.config.check_resume`): a change is a ValueError naming the field and both values.
        Every other setting of ``self.config`` applies from the next epoch end on."""
        at = where or "a HardMiner state"
        check_state(state, MINER_KIND, MINER_VERSION, ("config", "num_samples", "seed", "active", "buffer",
                                                       *self._parts()), where=where)
        if int(state["num_samples"]) != self.num_samples:
            raise ValueError(f"{at} is for a dataset of {state['num_samples']} samples, but this miner has "
                             f"{self.num_samples}")
        check_resume(state["config"], int(state["seed"]), self.config, self.seed, at)
        saved_prior, prior = state.get("prior"), self.planner.fingerprint()
        if saved_prior != prior:
            raise ValueError(f"cannot resume from {at}: it was saved with the frequency prior {saved_prior}, but "
                             f"this miner has {prior}: resume with the same categories (categories=...) and "
                             "resample.prior")
        if state["id_space"].get("kind") == "MappedIds" and self.id_space.kind == "index":
            self.use_custom_ids()  # the saved run's items carried their own ids
        for key, part in [*self._parts().items(), ("buffer", self.buffer)]:
            try:
                part.load_state_dict(state[key])
            except ValueError as e:
                raise ValueError(f"cannot resume from {at}: its {key} state does not fit: {e}") from None
        self.active = bool(state["active"])

    def run_record(self) -> RunRecord:
        """What this run did so far, as ``hardmine report`` reads it."""
        return RunRecord.from_state(self.state_dict())

    def save(self, path: str | PathLike[str]) -> Path:
        """Write state and history to one ``.npz`` file (what ``hardmine report`` reads)."""
        save_state(self.state_dict(copy=False), path, kind=MINER_KIND)  # streamed from the live arrays
        return Path(path)

    @classmethod
    def load(cls, path: str | PathLike[str], *, dataset: Any = None, categories: Any = None) -> HardMiner:
        """A miner restored from :meth:`save`; pass the ``FusionDataset`` of a fusion run and the run's
        ``categories`` when it had a prior (for a report without the data, use :meth:`RunRecord.load`)."""
        state = load_state(path, kind=MINER_KIND)
        record = RunRecord.from_state(state, where=repr(str(path)))
        if record.id_mode == "fusion" and dataset is None:
            raise ValueError(f"{str(path)!r} was saved by a FusionDataset run: pass dataset=<that FusionDataset> "
                             "to continue training, or use hardmine.RunRecord.load(path) to report on it")
        miner = cls(record.config, num_samples=record.num_samples, dataset=dataset, seed=record.seed,
                    custom_ids=record.custom_ids and dataset is None, categories=categories)
        miner.load_state_dict(state, where=repr(str(path)))
        return miner

    def __repr__(self) -> str:
        return (f"HardMiner(enabled={self.enabled}, num_samples={self.num_samples}, active={self.active}, "
                f"num_hard={self.hard_ids.size}, ledger={self.ledger!r})")
