"""The epoch lifecycle of a mined Trainer run: tell the sampler its epoch, end each epoch once, log it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from transformers import TrainerCallback

from hardmine.event import MiningEvent
from hardmine.integrations._hf_guards import PlanGuard
from hardmine.miner import HardMiner


class _Host(Protocol):
    """What the callback needs of its trainer."""

    _hm_guard: PlanGuard

    def _hm_ensure_miner(self) -> HardMiner: ...
    def log(self, logs: dict[str, float], start_time: float | None = None) -> None: ...


def _numbers(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


class HardSampleMiningCallback(TrainerCallback):
    """Drives the miner from the Trainer's events; installed by :class:`HardMiningTrainerMixin`.

    Every event runs on every rank, so ``miner.end_epoch`` (a collective) is called on every rank.
    It owns the epoch bookkeeping: the sampler is told its epoch before the DataLoader is iterated (a
    mid-epoch DDP resume in transformers 5.x never tells it); an epoch end waits for the epoch-end
    evaluation when one is due, so a plateau trigger can monitor ``eval_loss`` or ``eval_map`` of the
    epoch that just ended; after a restore, epochs the checkpoint left open are ended first. It tells the
    trainer's :class:`~hardmine.integrations._hf_guards.PlanGuard` which epoch's first batch to check.
    """

    def __init__(self, trainer: _Host) -> None:
        self.trainer = trainer
        self.eval_metrics: dict[str, Any] = {}
        self.restored = False  # a checkpoint's miner state was loaded and may leave an epoch to end
        self._epoch = 0
        self._deferred: int | None = None
        self._resumed = False

    def on_train_begin(self, args: Any, state: Any, control: Any, train_dataloader: Any = None,
                       **kwargs: Any) -> None:
        self.trainer._hm_guard.loader = train_dataloader
        self._resumed = bool(state.global_step)  # the first epoch resumes mid-way: its first batches are skipped

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._epoch = int(state.epoch or 0)
        miner = self.trainer._hm_ensure_miner()
        if self.restored:  # saved at an epoch's last step, before its end: end it now
            self.restored = False
            last = miner.history[-1].epoch if miner.history else -1
            for missing in range(last + 1, self._epoch):
                self.end_epoch(missing)
        miner.sampler.set_epoch(self._epoch)
        self.trainer._hm_guard.begin_epoch(self._epoch, check=not self._resumed)
        self._resumed = False

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if control.should_evaluate:
            self._deferred = self._epoch  # end it in on_evaluate, with this epoch's eval metrics
        else:
            self.end_epoch(self._epoch)

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Any = None, **kwargs: Any) -> None:
        self.eval_metrics = dict(metrics or {})
        if self._deferred is not None:
            epoch, self._deferred = self._deferred, None
            self.end_epoch(epoch)

    def end_epoch(self, epoch: int) -> MiningEvent:
        """``miner.end_epoch`` on every rank (it gathers), then the event into the Trainer's logs."""
        event = self.trainer._hm_ensure_miner().end_epoch(epoch, _numbers(self.eval_metrics))
        self.trainer.log(event.scalars())
        return event
