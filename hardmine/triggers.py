"""When to start mining: at a fixed epoch, or when a monitored metric plateaus.

A trigger has one method, ``step(epoch, metrics) -> bool``: True when it fires at the end of ``epoch``.
The miner latches the first firing: once mining is active it stays active.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from hardmine._state import Versioned

__all__ = ["EpochTrigger", "PlateauTrigger", "Trigger"]

logger = logging.getLogger("hardmine")


class Trigger(Versioned):
    """Base class: decide, at the end of an epoch, whether mining should start. One method, ``step``.

    >>> class AfterLossBelow(Trigger):
    ...     def __init__(self, level):
    ...         self.level = level
    ...     def step(self, epoch, metrics):
    ...         return metrics.get("train_loss", float("inf")) < self.level
    >>> t = AfterLossBelow(1.0)
    >>> [t.step(e, {"train_loss": v}) for e, v in enumerate([2.0, 0.5])]
    [False, True]
    """

    def step(self, epoch: int, metrics: Mapping[str, float]) -> bool:
        raise NotImplementedError


class EpochTrigger(Trigger):
    """Fires at the end of ``start_epoch`` (0-based) and every epoch after.

    >>> t = EpochTrigger(start_epoch=2)
    >>> [t.step(e, {}) for e in range(4)]
    [False, False, True, True]
    """

    def __init__(self, start_epoch: int = 0) -> None:
        if int(start_epoch) != start_epoch or start_epoch < 0:
            raise ValueError(f"start_epoch must be an integer >= 0, but got {start_epoch=}")
        self.start_epoch = int(start_epoch)

    def step(self, epoch: int, metrics: Mapping[str, float]) -> bool:
        return int(epoch) >= self.start_epoch

    def __repr__(self) -> str:
        return f"EpochTrigger(start_epoch={self.start_epoch})"


class PlateauTrigger(Trigger):
    """Fires when ``monitor`` stops improving, with ``torch.optim.lr_scheduler.ReduceLROnPlateau`` semantics.

    ``step`` returns True exactly at the epochs where ReduceLROnPlateau (same mode, threshold,
    threshold_mode, patience, cooldown) would reduce the learning rate, except that a metric missing from
    ``metrics`` or NaN is warned about once and the epoch is not counted (ReduceLROnPlateau counts a NaN as a
    bad epoch).

    >>> t = PlateauTrigger(monitor="eval_loss", patience=1, threshold=0.0)
    >>> [t.step(e, {"eval_loss": v}) for e, v in enumerate([3.0, 2.0, 2.0, 2.0])]
    [False, False, False, True]
    """

    _MODES = ("min", "max")
    _THRESHOLD_MODES = ("rel", "abs")

    def __init__(self, monitor: str = "train_loss", mode: str = "min", patience: int = 2,
                 threshold: float = 0.01, threshold_mode: str = "rel", cooldown: int = 0) -> None:
        if mode not in self._MODES:
            raise ValueError(f"mode must be one of {self._MODES}, but got {mode=}")
        if threshold_mode not in self._THRESHOLD_MODES:
            raise ValueError(f"threshold_mode must be one of {self._THRESHOLD_MODES}, but got {threshold_mode=}")
        if int(patience) != patience or patience < 0:
            raise ValueError(f"patience must be an integer >= 0, but got {patience=}")
        if int(cooldown) != cooldown or cooldown < 0:
            raise ValueError(f"cooldown must be an integer >= 0, but got {cooldown=}")
        if not math.isfinite(threshold) or threshold < 0:
            raise ValueError(f"threshold must be a finite number >= 0, but got {threshold=}")
        self.monitor = str(monitor)
        self.mode = mode
        self.patience = int(patience)
        self.threshold = float(threshold)
        self.threshold_mode = threshold_mode
        self.cooldown = int(cooldown)
        self.best = self._worst()
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self._warned_missing = False
        self._warned_nan = False

    def _worst(self) -> float:
        return math.inf if self.mode == "min" else -math.inf

    def _is_better(self, a: float, best: float) -> bool:
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < best * (1.0 - self.threshold)
        if self.mode == "min":
            return a < best - self.threshold
        if self.threshold_mode == "rel":
            return a > best * (1.0 + self.threshold)
        return a > best + self.threshold

    def step(self, epoch: int, metrics: Mapping[str, float]) -> bool:
        value = metrics.get(self.monitor) if metrics is not None else None
        if value is None:
            if not self._warned_missing:
                logger.warning("hardmine: plateau trigger monitors %r but the metrics at epoch %d hold only %s; "
                               "this epoch is not counted (warned once).", self.monitor, epoch,
                               sorted(metrics or {}))
                self._warned_missing = True
            return False
        current = float(value)
        if math.isnan(current):
            if not self._warned_nan:
                logger.warning("hardmine: plateau trigger monitors %r, which is NaN at epoch %d; NaN epochs are not "
                               "counted (warned once).", self.monitor, epoch)
                self._warned_nan = True
            return False
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
            return True
        return False

    _STATE_KEYS = ("best", "num_bad_epochs", "cooldown_counter")

    def _state(self) -> dict[str, Any]:
        return {"best": self.best, "num_bad_epochs": self.num_bad_epochs, "cooldown_counter": self.cooldown_counter}

    def _load(self, state: Mapping[str, Any]) -> None:
        if int(state["num_bad_epochs"]) < 0 or int(state["cooldown_counter"]) < 0:
            raise ValueError(f"cannot load PlateauTrigger state with negative counters: {dict(state)}")
        self.best = float(state["best"])
        self.num_bad_epochs = int(state["num_bad_epochs"])
        self.cooldown_counter = int(state["cooldown_counter"])

    def __repr__(self) -> str:
        return (f"PlateauTrigger(monitor={self.monitor!r}, mode={self.mode!r}, patience={self.patience}, "
                f"threshold={self.threshold}, threshold_mode={self.threshold_mode!r}, cooldown={self.cooldown})")
