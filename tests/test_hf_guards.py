"""The runtime guard: the indices a train DataLoader fetches must follow the miner's plan (first step)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest.importorskip("transformers")

import hardmine.distributed as hd  # noqa: E402
from hardmine import HardMiningSampler  # noqa: E402
from hardmine.integrations._hf_guards import PlanGuard  # noqa: E402
from hardmine.integrations._hf_loader import describe, drives  # noqa: E402
from hardmine.integrations.hf import HardMiningTrainer  # noqa: E402
from tests.hf_tiny import TokenDataset, stack_collate, tiny_args, tiny_qwen3  # noqa: E402

EARLY = {"trigger": {"kind": "epoch", "start_epoch": 0}, "select": {"kind": "top_k", "k": 4}}


def _stream(sampler: HardMiningSampler) -> np.ndarray:
    return np.fromiter(iter(sampler), dtype=np.int64)


def _shards(stream: np.ndarray, world: int, batch: int) -> dict[str, list[np.ndarray]]:
    """Each rank's first batch under the shardings accelerate and ms-swift use."""
    return {
        "interleaved batches": [stream[r * batch:(r + 1) * batch] for r in range(world)],  # accelerate
        "strided samples": [stream[r::world][:batch] for r in range(world)],  # ms-swift's BatchSamplerShard
        "split global batch": [stream[:batch * world].reshape(world, batch)[r] for r in range(world)],
    }


@pytest.mark.parametrize("world", [1, 2, 4])
@pytest.mark.parametrize("weighted", [False, True])
def test_every_rank_first_batch_of_a_sharded_plan_passes(
    monkeypatch: pytest.MonkeyPatch, world: int, weighted: bool
) -> None:
    monkeypatch.setattr(hd, "get_world_size", lambda: world)
    sampler = HardMiningSampler(64, seed=3, max_repeats=4)
    if weighted:
        sampler.set_weights(np.where(np.arange(64) < 8, 4.0, 1.0))
    sampler.set_epoch(2)
    for name, batches in _shards(_stream(sampler), world, batch=4).items():
        for batch in batches:
            guard = PlanGuard(sampler)
            guard.begin_epoch(2)
            guard.check(torch.from_numpy(batch.copy()))  # no error
            assert name


@pytest.mark.parametrize("order", ["sequential", "another seed", "last batch"])
def test_a_batch_from_another_order_is_refused(order: str) -> None:
    sampler = HardMiningSampler(64, seed=3)
    sampler.set_epoch(1)
    stream = _stream(sampler)
    other = {"sequential": np.arange(64), "another seed": _stream(HardMiningSampler(64, seed=4)),
             "last batch": stream}[order]
    batch = other[-4:] if order == "last batch" else other[:4]
    guard = PlanGuard(sampler)
    guard.begin_epoch(1)
    with pytest.raises(RuntimeError, match="first batch of epoch 1 fetched dataset indices"):
        guard.check(torch.from_numpy(batch.copy()))


def test_only_the_first_batch_of_a_checked_epoch_is_looked_at() -> None:
    sampler = HardMiningSampler(64, seed=3)
    guard = PlanGuard(sampler)
    guard.begin_epoch(0, check=False)  # an epoch the run resumed into: its first batch is further in
    guard.check(torch.arange(60, 64))
    guard.begin_epoch(0)
    guard.check(torch.from_numpy(_stream(sampler)[:4].copy()))
    guard.check(torch.arange(60, 64))  # later batches: not checked


def test_batches_without_indices_are_checked_on_the_loader(tmp_path: Path) -> None:
    sampler = HardMiningSampler(8, seed=0)
    ours = torch.utils.data.DataLoader(TokenDataset(8), sampler=sampler, batch_size=4)
    theirs = torch.utils.data.DataLoader(TokenDataset(8), batch_size=4)
    assert drives(ours, sampler) and not drives(theirs, sampler)
    assert describe(theirs).endswith("torch.utils.data.sampler.SequentialSampler")
    guard = PlanGuard(sampler)
    guard.loader = ours
    guard.begin_epoch(0)
    guard.check(None)
    guard.loader = theirs
    guard.begin_epoch(1)
    with pytest.raises(RuntimeError, match="does not draw from the miner's sampler"):
        guard.check(None)


def test_a_trainer_whose_loader_ignores_the_miner_stops_at_the_first_step(tmp_path: Path) -> None:
    """The generic case of what ms-swift did: a get_train_dataloader that never asks _get_train_sampler."""

    class OwnOrder(HardMiningTrainer):
        def get_train_dataloader(self) -> Any:
            loader = super().get_train_dataloader()  # the id-carrying dataset and collator, then its own order
            return torch.utils.data.DataLoader(loader.dataset, batch_size=4, collate_fn=loader.collate_fn)

    data = TokenDataset(24)
    trainer = OwnOrder(model=tiny_qwen3(), args=tiny_args(tmp_path, per_device_train_batch_size=4,
                                                          num_train_epochs=2, save_strategy="no"),
                       train_dataset=data, data_collator=stack_collate, mining=EARLY)
    with pytest.raises(RuntimeError, match=r"not driven by the miner's sampler.*SequentialSampler"):
        trainer.train()
    assert data.reads == [0, 1, 2, 3]  # the first batch only
    assert trainer.miner is not None and trainer.miner.pending == 0 and not trainer.miner.history
    assert not any(k.startswith("hardmine/") for h in trainer.state.log_history for k in h)
