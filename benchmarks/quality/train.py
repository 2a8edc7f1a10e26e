"""One training run: a small MLP at a fixed step budget, its epochs drawn by one sampling strategy.

Every strategy draws ``len(task.x)`` samples per epoch, so every run takes the same optimizer steps. The
hardmine strategies drive :class:`hardmine.HardMiner` exactly as a user's plain loop would: iterate
``miner.sampler``, ``miner.record(ids, per_sample_losses)`` every step, ``miner.end_epoch(epoch)`` at the
end of every epoch. The frequency baselines are what a practitioner writes in 20 lines: per-sample weights
from the label counts and ``torch.multinomial`` with replacement (``WeightedRandomSampler``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from benchmarks.quality.task import Task
from hardmine import HardMiner
from hardmine.guards import Guard

__all__ = ["SETTINGS", "Mining", "RunResult", "Sampling", "TrainSettings", "Uniform", "WithReplacement", "diagnose",
           "train"]


@dataclass(frozen=True)
class TrainSettings:
    """The step budget and model of a task: identical for every sampling strategy compared."""

    epochs: int = 20
    batch_size: int = 64
    hidden: int = 64


SETTINGS = {"subpop": TrainSettings(), "small_object": TrainSettings(),
            "digits_lt": TrainSettings(epochs=30, batch_size=32, hidden=64)}


@dataclass
class RunResult:
    balanced: float  # mean per-class recall on the (class-balanced) test set
    common: float  # accuracy on the common test samples (common modes / classes 0-6)
    rare: float  # accuracy on the rare ones (rare modes, small objects / classes 7-9)
    excluded: dict[str, int] = field(default_factory=dict)  # last epoch's exclusions
    hard_noisy: float = float("nan")  # share of the last mined set that is mislabeled
    hard_rare: float = float("nan")  # share of the last mined set that is clean rare
    prior_boost_share: float = float("nan")  # last epoch: share of the boost owed to the prior
    flag_noisy: float = float("nan")  # last epoch: share of the mislabeled samples a noise guard keeps out
    flag_clean_rare: float = float("nan")  # ... of the clean rare ones (false alarms that cost the most)
    flag_clean_common: float = float("nan")  # ... of the clean common ones


class Sampling(Protocol):
    """How a run draws its epochs: an order per epoch, and what it learns from the losses."""

    def order(self, epoch: int) -> torch.Tensor: ...

    def record(self, idx: torch.Tensor, losses: torch.Tensor) -> None: ...

    def end_epoch(self, epoch: int) -> None: ...


class Uniform:
    """A fresh permutation every epoch (the stock ``RandomSampler``)."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.gen = n, torch.Generator().manual_seed(seed)

    def order(self, epoch: int) -> torch.Tensor:
        return torch.randperm(self.n, generator=self.gen)

    def record(self, idx: torch.Tensor, losses: torch.Tensor) -> None:
        pass

    def end_epoch(self, epoch: int) -> None:
        pass


class WithReplacement(Uniform):
    """``WeightedRandomSampler(weights, len(dataset), replacement=True)``: the practitioner's baseline."""

    def __init__(self, weights: np.ndarray, seed: int) -> None:
        super().__init__(len(weights), seed)
        self.weights = torch.as_tensor(weights, dtype=torch.float64)

    def order(self, epoch: int) -> torch.Tensor:
        return torch.multinomial(self.weights, self.n, replacement=True, generator=self.gen)


class Mining:
    """A :class:`hardmine.HardMiner` driven as a plain loop drives it."""

    def __init__(self, miner: HardMiner) -> None:
        self.miner = miner

    def order(self, epoch: int) -> torch.Tensor:
        self.miner.sampler.set_epoch(epoch)
        return torch.as_tensor(list(self.miner.sampler), dtype=torch.int64)

    def record(self, idx: torch.Tensor, losses: torch.Tensor) -> None:
        self.miner.record(idx, losses)

    def end_epoch(self, epoch: int) -> None:
        self.miner.end_epoch(epoch)


def mining(config: dict[str, Any], guards: Callable[[], Sequence[Guard] | None] | None = None,
           categories: bool = True) -> Callable[[Task, int], Sampling]:
    """A strategy factory: a miner with ``config`` (and ``guards``; None: the config's), given the task's
    observed labels as categories unless ``categories`` is False."""

    def build(task: Task, seed: int) -> Sampling:
        g = None if guards is None else guards()
        return Mining(HardMiner({**config, "seed": seed}, num_samples=len(task.y),
                                guards=None if g is None else list(g),
                                categories=task.categories if categories else None))

    return build


def _model(d: int, hidden: int, k: int) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(d, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden),
                               torch.nn.ReLU(), torch.nn.Linear(hidden, k))


def train(task: Task, seed: int, sampling: Sampling, lr: float, settings: TrainSettings) -> RunResult:
    """Train for ``settings.epochs`` epochs of ``len(task.x)`` draws each, Adam at ``lr``; score on the test set."""
    torch.manual_seed(seed)
    x, y = torch.from_numpy(task.x), torch.from_numpy(task.y)
    n = len(y)
    model = _model(x.shape[1], settings.hidden, task.num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=lr, foreach=True)  # one kernel per step, not one per tensor
    for epoch in range(settings.epochs):
        order = sampling.order(epoch)
        assert order.numel() == n  # equal steps for every strategy
        for start in range(0, n, settings.batch_size):
            idx = order[start:start + settings.batch_size]
            losses = torch.nn.functional.cross_entropy(model(x[idx]), y[idx], reduction="none")
            opt.zero_grad(set_to_none=True)
            losses.mean().backward()
            opt.step()
            sampling.record(idx, losses.detach())
        sampling.end_epoch(epoch)
    with torch.no_grad():
        pred = model(torch.from_numpy(task.x_test)).argmax(1).numpy()
    ok = pred == task.y_test
    recall = [ok[task.y_test == c].mean() for c in range(task.num_classes)]
    res = RunResult(balanced=float(np.mean(recall)), common=float(ok[~task.rare_test].mean()),
                    rare=float(ok[task.rare_test].mean()))
    miner = getattr(sampling, "miner", None)
    if miner is not None:
        diagnose(res, miner, task.noisy, task.rare)
    return res


def diagnose(res: RunResult, miner: HardMiner, noisy: np.ndarray, rare: np.ndarray) -> None:
    """Fill ``res``'s diagnostics from the miner's last epoch: what it excluded, the prior's share of the boost,
    what the noise guards keep out (``noisy``, ``rare``: per sample id, the truth the miner never sees) and what
    the mined set is made of."""
    if not miner.history:
        return
    last = miner.history[-1]
    res.excluded = dict(last.excluded)
    if last.prior_boost_share is not None:
        res.prior_boost_share = float(last.prior_boost_share)
    if len(miner.guards):
        stats = miner.id_space.eligible(miner.ledger.stats(miner.config.min_observations))
        flagged = np.zeros(noisy.size, dtype=bool)
        flagged[stats.ids[miner.guards.noise_flags(miner.guards.judge(stats, last.epoch))]] = True
        clean = ~noisy
        res.flag_noisy = float(flagged[noisy].mean()) if noisy.any() else float("nan")
        res.flag_clean_rare = float(flagged[clean & rare].mean())
        res.flag_clean_common = float(flagged[clean & ~rare].mean())
    h = miner.hard_ids
    if h.size:
        res.hard_noisy = float(noisy[h].mean())
        res.hard_rare = float((rare[h] & ~noisy[h]).mean())
