"""One training run: a small MLP trained at a fixed step budget, sampled uniformly or by a HardMiner.

The loop drives :class:`hardmine.HardMiner` exactly as a user's plain loop would: iterate
``miner.sampler``, ``miner.record(ids, per_sample_losses)`` every step, ``miner.end_epoch(epoch)`` at
the end of every epoch. Guards are passed as :mod:`hardmine.guards` objects (``HardMiner(..., guards=)``),
so every variant, also "no guard", is explicit whatever the config's ``guard`` default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from benchmarks.quality.task import Task
from hardmine import HardMiner
from hardmine.guards import Guard

__all__ = ["RunResult", "TrainSettings", "train"]

EPOCHS = 20
BATCH = 64
LR = 1e-3
HIDDEN = 64


@dataclass(frozen=True)
class TrainSettings:
    """The step budget and model: identical for every sampling strategy compared."""

    epochs: int = EPOCHS
    batch_size: int = BATCH
    lr: float = LR
    hidden: int = HIDDEN


@dataclass
class RunResult:
    overall: float
    common: float
    rare: float
    excluded: dict[str, int] = field(default_factory=dict)  # last epoch's exclusions
    hard_noisy: float = float("nan")  # share of the last mined set that is mislabeled
    hard_rare: float = float("nan")  # share of the last mined set that is clean rare


def _model(d: int, hidden: int, k: int) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(d, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden),
                               torch.nn.ReLU(), torch.nn.Linear(hidden, k))


def train(task: Task, seed: int, mining: dict[str, Any] | None, guards: Sequence[Guard] | None = (),
          settings: TrainSettings = TrainSettings()) -> RunResult:
    """Train for ``settings.epochs`` epochs of ``len(task.x)`` samples; ``mining=None`` is uniform.

    ``guards=None`` uses the config's ``guard`` section (the shipped default when ``mining`` has none)."""
    torch.manual_seed(seed)
    x, y = torch.from_numpy(task.x), torch.from_numpy(task.y)
    n = len(y)
    model = _model(x.shape[1], settings.hidden, task.num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    miner = None if mining is None else HardMiner({**mining, "seed": seed}, num_samples=n,
                                                 guards=None if guards is None else list(guards))
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(settings.epochs):
        if miner is not None:
            miner.sampler.set_epoch(epoch)
            order = torch.as_tensor(list(miner.sampler), dtype=torch.int64)
        else:
            order = torch.randperm(n, generator=gen)
        for start in range(0, n, settings.batch_size):
            idx = order[start:start + settings.batch_size]
            losses = torch.nn.functional.cross_entropy(model(x[idx]), y[idx], reduction="none")
            opt.zero_grad(set_to_none=True)
            losses.mean().backward()
            opt.step()
            if miner is not None:
                miner.record(idx, losses.detach())
        if miner is not None:
            miner.end_epoch(epoch)
    with torch.no_grad():
        ok = (model(torch.from_numpy(task.x_test)).argmax(1).numpy() == task.y_test)
    # overall accuracy weighs the subsets by their share of the training distribution
    share = float(task.rare.mean())
    common, rare = float(ok[~task.rare_test].mean()), float(ok[task.rare_test].mean())
    res = RunResult(overall=(1 - share) * common + share * rare, common=common, rare=rare)
    if miner is not None and miner.hard_ids.size:
        h = miner.hard_ids
        res.excluded = dict(miner.history[-1].excluded)
        res.hard_noisy = float(task.noisy[h].mean())
        res.hard_rare = float((task.rare[h] & ~task.noisy[h]).mean())
    return res
