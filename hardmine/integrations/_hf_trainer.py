"""The Hugging Face Trainer adapter proper (imports transformers; public via ``hardmine.integrations.hf``).

The mixin keeps only the Trainer overrides mining needs: the sampler, the id-carrying DataLoader, the
loss (which also records per-sample losses), and checkpoints. The epoch lifecycle lives in the callback
(``_hf_callback``), the per-sample loss paths in ``_hf_loss``, ids through the data pipeline in ``_hf_ids``.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from transformers import Trainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

from hardmine._checkpoints import MARKER, STATE_FILE, TRAINER_STATE, newest_with_state, written_with_mining
from hardmine._serialization import load_state, remove_orphans, save_state
from hardmine.categories import Categories
from hardmine.config import HardMiningConfig
from hardmine.integrations._hf_callback import HardSampleMiningCallback
from hardmine.integrations._hf_guards import PlanGuard, refuse_dataset_packing
from hardmine.integrations._hf_ids import BATCH_KEYS, IndexedDataset, SampleIdCollator, pop_sample_ids
from hardmine.integrations._hf_loader import take_over
from hardmine.integrations._hf_loss import PerSampleLoss, PerSampleLossFn
from hardmine.miner import HardMiner
from hardmine.run_record import MINER_KIND

__all__ = ["STATE_FILE", "HardMiningTrainer", "HardMiningTrainerMixin", "HardSampleMiningCallback"]

logger = logging.getLogger("hardmine")


def _is_hf_dataset(dataset: Any) -> bool:
    try:
        import datasets
    except ImportError:
        return False
    return isinstance(dataset, datasets.Dataset)


class HardMiningTrainerMixin:
    """Adds hard-sample mining to any ``transformers.Trainer`` subclass.

    ``class MyTrainer(HardMiningTrainerMixin, SFTTrainer)``; then ``MyTrainer(..., mining=cfg)``.

    Args:
        mining: a :class:`~hardmine.HardMiningConfig`, a dict, or a YAML path (reads
            ``custom.hard_sample_mining``). ``enabled: false`` leaves the stock Trainer untouched.
        per_sample_loss_fn: ``fn(outputs, inputs) -> Tensor[num_samples]`` for models whose loss is not
            token cross-entropy (a detection head). The gradient stays the model's own loss.
        categories: the categories present in each training sample, for the frequency prior
            (``resample.prior``): ``categories[i]`` an int or an iterable of ints (the object classes of
            image ``i``), ``{target name: ...}`` for a FusionDataset, or the name of a column of a
            ``datasets.Dataset`` train set (``"objects.category"``), read from its Arrow table without
            decoding images.
    """

    miner: HardMiner | None
    if TYPE_CHECKING:  # what the mixin uses of the Trainer it is mixed into
        args: Any
        model: Any
        state: Any
        accelerator: Any
        train_dataset: Any
        data_collator: Any
        _signature_columns: Any

        def _remove_unused_columns(self, dataset: Any, description: str | None = None) -> Any: ...
        def _get_output_dir(self, trial: Any) -> str: ...
        def log(self, logs: dict[str, float], start_time: float | None = None) -> None: ...
        def add_callback(self, callback: Any) -> None: ...

    def __init__(self, *args: Any, mining: HardMiningConfig | Mapping[str, Any] | str | PathLike[str] | None = None,
                 per_sample_loss_fn: PerSampleLossFn | None = None, categories: Any = None, **kwargs: Any) -> None:
        self.mining_config = HardMiningConfig.coerce(mining, name="mining")  # before super(): fail fast
        if self.mining_config.enabled:  # before TRL packs the dataset
            refuse_dataset_packing(kwargs.get("args", args[1] if len(args) > 1 else None))
        self.mining_categories = categories
        super().__init__(*args, **kwargs)
        self.per_sample_loss_fn = per_sample_loss_fn
        self.miner = None
        self._hm_on = self.mining_config.enabled
        self._hm_signature_extra = False
        if self.train_dataset is not None:
            self._hm_ensure_miner()
        if not self._hm_on:
            return
        refuse_dataset_packing(None, getattr(self, "template", None))  # an ms-swift trainer's template
        self._hm_guard = PlanGuard(self._hm_ensure_miner().sampler)
        want_hidden = bool(self.args.use_liger_kernel) or getattr(self.args, "loss_type", None) == "chunked_nll"
        self._hm_loss = PerSampleLoss(self.model, per_sample_loss_fn, want_hidden)
        self._hm_callback = HardSampleMiningCallback(self)
        self.add_callback(self._hm_callback)
        strategy = getattr(self.args, "train_sampling_strategy", "random")
        if strategy != "random" or getattr(self.args, "group_by_length", False):
            warnings.warn(f"hardmine: train_sampling_strategy={strategy!r} is ignored while mining is enabled: the "
                          "HardMiningSampler decides the order (set enabled: false to get it back).",
                          UserWarning, stacklevel=2)

    def _hm_ensure_miner(self) -> HardMiner:
        if self.miner is None:
            if self.train_dataset is None or not hasattr(self.train_dataset, "__len__"):
                raise ValueError("hardmine: mining needs a map-style train_dataset (with __len__); got "
                                 f"{type(self.train_dataset).__name__}. Use a map-style dataset or set enabled: false.")
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            categories = self.mining_categories
            if isinstance(categories, str):  # a column of the train set: its Arrow data, no image decoding
                categories = Categories.from_column(self.train_dataset, categories)
            self.miner = HardMiner(self.mining_config, dataset=self.train_dataset, seed=seed, categories=categories)
        return self.miner

    # ------------------------------------------------------------------ data pipeline
    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()  # type: ignore[misc]
        if self._hm_signature_extra and self._signature_columns is not None:
            extra = [k for k in BATCH_KEYS if k not in self._signature_columns]
            self._signature_columns = [*self._signature_columns, *extra]  # a new list: see below

    def get_train_dataloader(self, *args: Any, **kwargs: Any) -> Any:
        """The stock train DataLoader over an index-tagged view, with ``sample_id`` kept and collated.

        A loader that does not ask ``_get_train_sampler`` (ms-swift's, whose ``skip_batches`` passes through) is
        rebuilt over the miner's sampler (:func:`~hardmine.integrations._hf_loader.take_over`).
        """
        if not self._hm_on:
            return super().get_train_dataloader(*args, **kwargs)  # type: ignore[misc]
        self._hm_ensure_miner()
        dataset, collator = self.train_dataset, self.data_collator
        self._hm_signature_extra = True
        try:
            view = dataset
            if _is_hf_dataset(view):
                view = self._remove_unused_columns(view, description="training")  # keeps sample_id
            self.train_dataset = IndexedDataset(view)
            self.data_collator = SampleIdCollator(collator)
            loader = super().get_train_dataloader(*args, **kwargs)  # type: ignore[misc]
            return take_over(loader, self._hm_ensure_miner().sampler)
        finally:
            self.train_dataset, self.data_collator = dataset, collator
            self._hm_signature_extra = False
            # The train collator keeps its own list; evaluation sees the stock columns again.
            if self._signature_columns is not None:
                self._signature_columns = [c for c in self._signature_columns if c not in BATCH_KEYS]

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        """The miner's global-stream sampler (accelerate shards it); its length never changes."""
        if not self._hm_on:
            return super()._get_train_sampler(train_dataset)  # type: ignore[misc]
        return self._hm_ensure_miner().sampler

    # ------------------------------------------------------------------ per-sample loss
    def compute_loss(self, model: torch.nn.Module, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: torch.Tensor | int | None = None) -> Any:
        """The stock loss (and gradient); in training, also records one loss per sample."""
        if not self._hm_on:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)  # type: ignore[misc]
        ids = pop_sample_ids(inputs)
        if not model.training:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)  # type: ignore[misc]
        if ids is None:
            raise ValueError(
                "hardmine: the training batch has no 'sample_id'. The collator that built it dropped the ids "
                "(a get_train_dataloader override, or a data_collator set after the trainer was built). Build "
                "the train DataLoader with HardMiningTrainer.get_train_dataloader(), or make the collator "
                "return 'sample_id' (a LongTensor per row, or per-row lists for packed rows).")
        miner = self._hm_ensure_miner()
        self._hm_guard.check(ids.indices)
        before = self._hm_loss.prepare(inputs)
        if ids.own and miner.id_space.kind == "index":
            miner.use_custom_ids()  # the items carry their own ids: the first batch says so
        # called as the Trainer calls it: the outputs come from a forward hook (TRL runs no extra forward)
        result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)  # type: ignore[misc]
        outputs = result[1] if return_outputs else None
        losses = self._hm_loss.compute(lambda: self.accelerator.unwrap_model(model), outputs, inputs, before,
                                       ids.ids.numel())
        miner.record(ids.ids, losses, ids.indices)
        return result

    # ------------------------------------------------------------------ checkpoints
    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        """The mining state first, then the Trainer's checkpoint: a checkpoint that looks finished
        (``trainer_state.json``) always holds its ``hardmine_state.npz``, and says mining was on."""
        if self._hm_on:
            run_dir = self._get_output_dir(trial=trial)
            self.save_mining_state(os.path.join(run_dir, f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"))
            self.state.stateful_callbacks[MARKER] = {"args": {}, "attributes": {"state_file": STATE_FILE}}
        super()._save_checkpoint(model, trial)  # type: ignore[misc]

    def save_mining_state(self, folder: str | PathLike[str]) -> None:
        """Write the miner state, all ranks' pending losses included, to ``folder/hardmine_state.npz``.

        A collective: call it on every rank. The process that saves checkpoints writes, atomically and durably.
        """
        state = self._hm_ensure_miner().state_dict(all_ranks=True, copy=False)  # written out at once
        if self.args.should_save:
            save_state(state, os.path.join(folder, STATE_FILE), kind=MINER_KIND)

    def load_mining_state(self, folder: str | PathLike[str]) -> bool:
        """Restore the miner from ``folder/hardmine_state.npz``; False (with a warning) when the checkpoint was
        written with mining off. A checkpoint written with mining on whose state is missing, or one whose save
        was interrupted, is an error naming the newest checkpoint that can be resumed (``on_missing_state:
        fresh`` starts mining fresh instead)."""
        ckpt = Path(folder)
        path = ckpt / STATE_FILE
        remove_orphans(path)  # temporary files of a save that was killed here
        newest = newest_with_state(ckpt.parent)
        instead = (f"resume from {newest}, the newest checkpoint that holds one" if newest
                   else "no checkpoint next to it holds one")
        if not (ckpt / TRAINER_STATE).is_file():
            raise ValueError(f"hardmine: checkpoint {ckpt} has no {TRAINER_STATE}: its save was interrupted (or it "
                             f"is not a Trainer checkpoint), so its model, its optimizer and the mining state may not "
                             f"match; {instead}, or delete the folder")
        if not path.is_file():
            lost = written_with_mining(ckpt)
            if lost and self.mining_config.on_missing_state == "error":
                raise FileNotFoundError(
                    f"hardmine: checkpoint {ckpt} was written with mining on, but {path} is missing (ledger, hard "
                    f"set and plan would be lost and the data order would diverge); {instead}, or set "
                    "on_missing_state: fresh in custom.hard_sample_mining to start mining fresh")
            why = "its mining state is missing" if lost else f"it holds no {STATE_FILE} (written with mining off)"
            logger.warning("hardmine: checkpoint %s: %s; mining starts fresh", ckpt, why)
            warnings.warn(f"hardmine: checkpoint {ckpt}: {why}; mining starts fresh", UserWarning, stacklevel=2)
            return False
        state = load_state(path, kind=MINER_KIND)
        miner = self._hm_ensure_miner()
        if int(state["num_samples"]) != miner.num_samples:
            raise ValueError(
                f"hardmine: checkpoint {ckpt} was saved for a train dataset of {int(state['num_samples'])} "
                f"samples, but this train_dataset has {miner.num_samples}. Resume with the same dataset, or "
                f"delete {path} to start mining fresh.")
        miner.load_state_dict(state, where=str(path))
        self._hm_callback.restored = True
        return True

    def train(self, resume_from_checkpoint: str | bool | None = None, *args: Any, **kwargs: Any) -> Any:
        """``Trainer.train``; resuming also restores the miner (ledger, plan, this epoch's losses so far)."""
        if self._hm_on and resume_from_checkpoint not in (None, False):
            if resume_from_checkpoint is True:
                resume_from_checkpoint = get_last_checkpoint(self.args.output_dir)  # type: ignore[no-untyped-call]
                if resume_from_checkpoint is None:
                    raise ValueError(f"No valid checkpoint found in output directory ({self.args.output_dir})")
            self.load_mining_state(str(resume_from_checkpoint))
        return super().train(resume_from_checkpoint, *args, **kwargs)  # type: ignore[misc]


class HardMiningTrainer(HardMiningTrainerMixin, Trainer):
    """``transformers.Trainer`` with hard-sample mining: ``HardMiningTrainer(..., mining=cfg)``."""
