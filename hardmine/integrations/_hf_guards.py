"""Checks that a mined Trainer run is the run hardmine plans: at construction, and at the first steps.

- :func:`refuse_dataset_packing`: TRL's ``packing=True`` and ms-swift's ``packing`` pack the dataset
  before hardmine sees it, so a sample has no identity left; refused at construction, naming what works.
- :class:`PlanGuard`: at the first training batch of an epoch, the dataset indices actually fetched must
  lie in the first draws of the miner's plan. Whatever built the train DataLoader, if the miner's sampler
  does not drive it, the run stops at the first step instead of logging draw ratios that never happen.
  At the first batch of the run it also compares the ranks' batches: identical batches on every rank
  mean the data is not sharded (every sample counted world-size times); it warns once.
"""

from __future__ import annotations

import logging
import warnings
from itertools import islice
from typing import Any

import numpy as np
import torch

import hardmine.distributed as hd
from hardmine.integrations._hf_loader import describe, drives

__all__ = ["PlanGuard", "refuse_dataset_packing"]

logger = logging.getLogger("hardmine")


def refuse_dataset_packing(args: Any, template: Any = None) -> None:
    """ValueError when the trainer packs the dataset itself (TRL ``packing``, an ms-swift template's ``packing``).

    A packed row holds pieces of several samples and no ids; the per-sample alternative keeps one sample
    per item and flattens each batch instead (no padding either).
    """
    if bool(getattr(args, "packing", False)):
        strategy = getattr(args, "packing_strategy", None)
        raise ValueError(
            f"hardmine: TRL packing=True (packing_strategy={strategy!r}) packs the dataset before hardmine sees "
            "it: packed rows carry no sample ids ('bfd' keeps only input_ids) or cut samples apart ('wrapped'), "
            "so there is nothing per sample to mine. Use padding_free=True with packing=False (each batch is "
            "flattened into one row without padding; every sample keeps its id), or pack the rows yourself "
            "with a 'sample_id' list per row; or set mining enabled: false.")
    if bool(getattr(template, "packing", False)):
        raise ValueError(
            "hardmine: ms-swift packing=True packs the dataset into rows of several samples before hardmine "
            "sees it, so there is no sample to mine. Use padding_free=True with packing=False (each batch is "
            "flattened into one row; hardmine splits it at ms-swift's position ids), or set mining enabled: false.")


class PlanGuard:
    """The runtime check that the indices the train DataLoader fetches follow the miner's plan.

    Rank ``r``'s first batch of an epoch, of ``b`` indices, lies in the first ``world_size * b`` draws of
    the global stream under every sharding accelerate or ms-swift uses (interleaved batches, strided
    samples, split or dispatched batches). A loader over another sampler fetches indices outside that
    window at once (a sequential or random order over ``N`` samples almost never fits it). An epoch the
    run resumes into skips batches, so its first batch is not checked; the next epoch's is.
    """

    def __init__(self, sampler: Any) -> None:
        self.sampler = sampler
        self.loader: Any = None  # the train DataLoader, when the Trainer tells its callbacks
        self._epoch: int | None = None
        self._first_batch_of_run = True

    def begin_epoch(self, epoch: int, check: bool = True) -> None:
        """Check the next training batch against ``epoch``'s plan (``check=False``: a resumed epoch)."""
        self._epoch = epoch if check else None

    def check(self, indices: torch.Tensor | None) -> None:
        """On a training batch: the plan check when one is due, the ranks' comparison on the run's first batch."""
        if self._first_batch_of_run:
            self._first_batch_of_run = False
            _warn_if_ranks_share_data(indices, self.loader)
        if self._epoch is None:
            return
        epoch, self._epoch = self._epoch, None
        if indices is None:
            self._check_structure()
            return
        fetched = np.unique(indices.detach().cpu().numpy())
        size = max(1, hd.get_world_size()) * max(1, int(indices.numel()))
        window = np.fromiter(islice(iter(self.sampler), size), dtype=np.int64)
        stray = np.setdiff1d(fetched, window)
        if stray.size:
            where = "" if self.loader is None else f" The train DataLoader draws from {describe(self.loader)}."
            raise RuntimeError(
                f"hardmine: the train DataLoader is not driven by the miner's sampler: the first batch of epoch "
                f"{epoch} fetched dataset indices {stray[:8].tolist()} that the plan does not draw among its first "
                f"{size}.{where} Resampling would not happen while the logs said it did. Build the train "
                "DataLoader with the sampler from _get_train_sampler() (ms-swift: put HardMiningTrainerMixin first "
                "among the bases of the trainer class, see docs/stacks/ms_swift.md), or set mining enabled: false.")

    def _check_structure(self) -> None:
        """Batches without dataset indices (a collator of the user's own): look for the sampler in the loader."""
        if self.loader is not None and not drives(self.loader, self.sampler):
            raise RuntimeError(
                f"hardmine: the train DataLoader ({describe(self.loader)}) does not draw from the miner's sampler. "
                "Build it with the sampler from _get_train_sampler(), or set mining enabled: false.")


def _warn_if_ranks_share_data(indices: torch.Tensor | None, loader: Any) -> None:
    """Warn once when every rank's first batch holds the same dataset indices (a collective over all ranks)."""
    world = hd.get_world_size()
    if world < 2:
        return
    mine = np.zeros(0, dtype=np.int64) if indices is None else indices.detach().cpu().numpy().astype(np.int64)
    (flat,), sizes = hd.all_gather_concat_sizes([mine])
    parts = np.split(flat, np.cumsum(sizes)[:-1])
    if mine.size and len(parts) > 1 and all(np.array_equal(parts[0], p) for p in parts[1:]):
        shards = getattr(getattr(loader, "batch_sampler", None), "num_processes", None)
        message = (
            f"hardmine: all {world} ranks were fed the same first batch (dataset indices {mine[:8].tolist()}): "
            "the train data is not sharded across ranks, so every rank trains on every sample and hardmine "
            f"counts each sample {world} times (the DataLoader shards over {shards or 1} process(es)). On CPU "
            "(gloo, DeepSpeed without GPUs) set use_cpu=True in TrainingArguments so accelerate knows the "
            "processes; elsewhere check the launcher and the accelerate config.")
        logger.warning(message)
        warnings.warn(message, UserWarning, stacklevel=3)
