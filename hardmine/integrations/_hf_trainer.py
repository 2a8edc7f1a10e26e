"""The Hugging Face Trainer adapter proper (imports transformers; public via ``hardmine.integrations.hf``)."""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Callable, Mapping
from os import PathLike
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from transformers import Trainer, TrainerCallback
from transformers.loss.loss_utils import LOSS_MAPPING, ForCausalLMLoss
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

from hardmine import distributed
from hardmine._serialization import load_state, save_state
from hardmine.config import HardMiningConfig
from hardmine.integrations._hf_ids import (
    BATCH_KEYS,
    BatchIds,
    IndexedDataset,
    SampleIdCollator,
    pop_sample_ids,
)
from hardmine.integrations._hf_loss import (
    TokenLossCapture,
    per_sample_means,
    segment_starts,
    shift_targets,
    token_losses_from_hidden,
    token_losses_from_logits,
)
from hardmine.miner import HardMiner, MiningEvent

__all__ = ["STATE_FILE", "HardMiningTrainer", "HardMiningTrainerMixin", "HardSampleMiningCallback"]

logger = logging.getLogger("hardmine")

STATE_FILE = "hardmine_state.npz"
PerSampleLossFn = Callable[[Any, Mapping[str, Any]], torch.Tensor]
_FLUSH_EVERY = 16  # steps of per-sample losses kept on the device before one host copy
_BOUNDARY_KEYS = ("position_ids", "attention_mask", "cu_seq_lens_q", "cu_seq_lens_k", "seq_idx")


def resolve_config(
    mining: HardMiningConfig | Mapping[str, Any] | str | PathLike[str] | None,
) -> HardMiningConfig:
    """``mining=`` as a config: a HardMiningConfig, a dict, a YAML path, or None (defaults)."""
    if mining is None:
        return HardMiningConfig.model_validate({})
    if isinstance(mining, HardMiningConfig):
        return mining
    if isinstance(mining, Mapping):
        return HardMiningConfig.model_validate(dict(mining))
    if isinstance(mining, (str, PathLike)):
        if not os.path.isfile(mining):
            raise FileNotFoundError(
                f"hardmine: mining={str(mining)!r} does not exist. Pass the path of a YAML file holding "
                "custom.hard_sample_mining, a dict, or a HardMiningConfig."
            )
        return HardMiningConfig.from_yaml(mining)
    raise TypeError(
        f"hardmine: mining= takes a HardMiningConfig, a dict or a YAML path, but got {type(mining).__name__}."
    )


def _base_model(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers model under PEFT (whose forward calls ``self.loss_function``)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def _is_token_ce_model(model: torch.nn.Module) -> bool:
    """Whether the model's loss is ``ForCausalLMLoss`` (causal LMs, VLMs such as Qwen3-VL)."""
    if getattr(model, "_loss_function", None) is not None or not hasattr(type(model), "loss_function"):
        return False
    if getattr(getattr(model, "config", None), "is_encoder_decoder", False):
        return False
    return LOSS_MAPPING.get(getattr(model, "loss_type", None) or "ForCausalLM") is ForCausalLMLoss


class HardMiningTrainerMixin:
    """Adds hard-sample mining to any ``transformers.Trainer`` subclass.

    ``class MyTrainer(HardMiningTrainerMixin, SFTTrainer)``; then ``MyTrainer(..., mining=cfg)``.

    Args:
        mining: a :class:`~hardmine.HardMiningConfig`, a dict, or a YAML path (reads
            ``custom.hard_sample_mining``). ``enabled: false`` leaves the stock Trainer untouched.
        per_sample_loss_fn: ``fn(outputs, inputs) -> Tensor[num_samples]`` for models whose loss is not
            token cross-entropy (a detection head). The gradient stays the model's own loss.
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

    def __init__(
        self,
        *args: Any,
        mining: HardMiningConfig | Mapping[str, Any] | str | PathLike[str] | None = None,
        per_sample_loss_fn: PerSampleLossFn | None = None,
        **kwargs: Any,
    ) -> None:
        self.mining_config = resolve_config(mining)  # before super(): a bad path fails fast
        super().__init__(*args, **kwargs)
        self.per_sample_loss_fn = per_sample_loss_fn
        self.miner = None
        self._hm_on = self.mining_config.enabled
        self._hm_capture: TokenLossCapture | None = None
        self._hm_buf: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = []
        self._hm_ids_decided = False
        self._hm_restored = False  # a checkpoint's miner state was loaded and may leave an epoch to end
        self._hm_signature_extra = False
        self._hm_num_skipped_rows = 0
        self._hm_want_hidden = bool(self.args.use_liger_kernel) or getattr(self.args, "loss_type", None) == (
            "chunked_nll"
        )
        if self.train_dataset is not None:
            self._hm_ensure_miner()
        if not self._hm_on:
            return
        base = _base_model(self.model)
        if per_sample_loss_fn is None and _is_token_ce_model(base):
            self._hm_capture = TokenLossCapture()
            base.loss_function = self._hm_capture  # type: ignore[assignment]
        self.add_callback(HardSampleMiningCallback(self))
        strategy = getattr(self.args, "train_sampling_strategy", "random")
        if strategy != "random" or getattr(self.args, "group_by_length", False):
            warnings.warn(
                f"hardmine: train_sampling_strategy={strategy!r} is ignored while mining is enabled: the "
                "HardMiningSampler decides the order (set enabled: false to get it back).",
                UserWarning,
                stacklevel=2,
            )

    # ------------------------------------------------------------------ the miner
    def _hm_ensure_miner(self) -> HardMiner:
        if self.miner is None:
            if self.train_dataset is None or not hasattr(self.train_dataset, "__len__"):
                raise ValueError(
                    "hardmine: mining needs a map-style train_dataset (with __len__); got "
                    f"{type(self.train_dataset).__name__}. Use a map-style dataset or set enabled: false."
                )
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            self.miner = HardMiner(self.mining_config, dataset=self.train_dataset, seed=seed)
        return self.miner

    # ------------------------------------------------------------------ data pipeline
    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()  # type: ignore[misc]
        if self._hm_signature_extra and self._signature_columns is not None:
            extra = [k for k in BATCH_KEYS if k not in self._signature_columns]
            self._signature_columns = [*self._signature_columns, *extra]  # a new list: see below

    def get_train_dataloader(self) -> Any:
        """The stock train DataLoader over an index-tagged view, with ``sample_id`` kept and collated."""
        if not self._hm_on:
            return super().get_train_dataloader()  # type: ignore[misc]
        self._hm_ensure_miner()
        dataset, collator = self.train_dataset, self.data_collator
        self._hm_signature_extra = True
        try:
            view = dataset
            if _is_hf_dataset(view):
                view = self._remove_unused_columns(view, description="training")  # keeps sample_id
            self.train_dataset = IndexedDataset(view)
            self.data_collator = SampleIdCollator(collator)
            return super().get_train_dataloader()  # type: ignore[misc]
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
    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> Any:
        """The stock loss (and gradient); in training, also records one loss per sample."""
        if not self._hm_on:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)  # type: ignore[misc]
        ids = pop_sample_ids(inputs)
        if not model.training:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)  # type: ignore[misc]
        if ids is None:
            raise ValueError(
                "hardmine: the training batch has no 'sample_id'. The collator that built it dropped the ids "
                "(a get_train_dataloader override, or a data_collator set after the trainer was built). "
                "Build "
                "the train DataLoader with HardMiningTrainer.get_train_dataloader(), or make the collator "
                "return 'sample_id' (a LongTensor per row, or per-row lists for packed rows)."
            )
        labels = inputs.get("labels")
        if labels is None and self.per_sample_loss_fn is None:
            raise ValueError(
                "hardmine: the training batch has no 'labels'. The per-sample loss is the token "
                "cross-entropy over labels (-100 = ignored): have the collator return labels, or pass "
                "per_sample_loss_fn=fn(outputs, inputs) -> Tensor[batch] for a model whose loss is not "
                "token CE."
            )
        self._hm_decide_ids(ids)
        boundary_inputs = {k: inputs.get(k) for k in _BOUNDARY_KEYS}
        if self._hm_want_hidden and self.per_sample_loss_fn is None:
            inputs["output_hidden_states"] = True
        if self._hm_capture is not None:
            self._hm_capture.arm()
        loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)  # type: ignore[misc]
        if self.per_sample_loss_fn is not None:
            per_sample = self._hm_custom_losses(outputs, {**inputs, "labels": labels}, ids)
        else:
            assert labels is not None
            per_token, targets = self._hm_token_losses(model, outputs, {**inputs, **boundary_inputs}, labels)
            starts = segment_starts(boundary_inputs, per_token.shape)
            per_sample = per_sample_means(per_token, targets, ids.ids.numel(), starts)
        self._hm_buf.append((ids.ids, per_sample.detach().float(), ids.indices))
        if len(self._hm_buf) >= _FLUSH_EVERY:
            self._hm_flush()
        return (loss, outputs) if return_outputs else loss

    def _hm_decide_ids(self, ids: BatchIds) -> None:
        """Decided from the first collated batch: items with their own ``sample_id`` mean custom ids."""
        if self._hm_ids_decided:
            return
        miner = self._hm_ensure_miner()
        if ids.own and not miner.custom_ids and not miner.is_fusion:
            miner.use_custom_ids()
        self._hm_ids_decided = True

    def _hm_token_losses(
        self, model: torch.nn.Module, outputs: Any, inputs: Mapping[str, Any], labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        captured = self._hm_capture.take() if self._hm_capture is not None else None
        if captured is not None:
            return captured
        targets = shift_targets(inputs, labels)
        logits = _output(outputs, "logits")
        if logits is not None:
            return token_losses_from_logits(logits, targets), targets.to(logits.device)
        hidden = _output(outputs, "hidden_states")
        unwrapped: Any = _base_model(self.accelerator.unwrap_model(model))
        head = unwrapped.get_output_embeddings()
        if hidden is not None and head is not None:
            return token_losses_from_hidden(hidden[-1], head, targets), targets.to(hidden[-1].device)
        raise ValueError(
            "hardmine: the model returned logits=None (a fused cross-entropy: use_liger_kernel=True, or TRL "
            "loss_type='chunked_nll') and no hidden states to recompute per-sample losses from. Set "
            "use_liger_kernel=True in TrainingArguments (hardmine then asks for hidden states), turn the "
            "fused "
            "loss off, or pass per_sample_loss_fn=fn(outputs, inputs) -> Tensor[batch]."
        )

    def _hm_custom_losses(self, outputs: Any, inputs: Mapping[str, Any], ids: BatchIds) -> torch.Tensor:
        assert self.per_sample_loss_fn is not None
        with torch.no_grad():
            losses = torch.as_tensor(self.per_sample_loss_fn(outputs, inputs)).reshape(-1)
        if losses.numel() != ids.ids.numel():
            raise ValueError(
                f"hardmine: per_sample_loss_fn returned {losses.numel()} losses for a batch of "
                f"{ids.ids.numel()} sample ids; it must return one loss per sample (Tensor[batch])."
            )
        return losses

    def _hm_flush(self) -> None:
        """Hand the buffered per-step losses to the miner with one device-to-host copy."""
        if not self._hm_buf or self.miner is None:
            self._hm_buf = []
            return
        buf, self._hm_buf = self._hm_buf, []
        if all(idx is not None for _, _, idx in buf):
            ids = torch.cat([b[0] for b in buf]).cpu().numpy()
            losses = torch.cat([b[1] for b in buf]).cpu().numpy()
            indices = torch.cat([b[2] for b in buf]).cpu().numpy()  # type: ignore[misc]
            self.miner.record(ids, losses, indices=indices)
            return
        for ids_t, losses_t, idx_t in buf:
            self.miner.record(
                ids_t.cpu().numpy(),
                losses_t.cpu().numpy(),
                indices=None if idx_t is None else idx_t.cpu().numpy(),
            )

    # ------------------------------------------------------------------ epochs (called by the callback)
    def _hm_end_epoch(self, epoch: int, metrics: Mapping[str, Any]) -> MiningEvent:
        """``miner.end_epoch`` on every rank (it gathers), then the event into the Trainer's logs."""
        self._hm_flush()
        miner = self._hm_ensure_miner()
        numeric = {
            k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        event = miner.end_epoch(epoch, numeric)
        logs: dict[str, float] = {
            "hardmine/triggered": float(event.triggered),
            "hardmine/num_hard": float(event.num_hard),
            "hardmine/num_seen": float(event.num_seen),
            "hardmine/num_observed": float(event.num_observed),
            "hardmine/num_skipped": float(event.num_skipped),
        }
        if event.score_cut is not None and math.isfinite(event.score_cut):
            logs["hardmine/score_cut"] = float(event.score_cut)
        if event.draw_ratio is not None:
            logs["hardmine/draw_ratio"] = float(event.draw_ratio)
        logs.update({f"hardmine/source/{name}": float(n) for name, n in event.per_source.items()})
        self.log(logs)
        return event

    def _hm_catch_up(self, epoch: int, metrics: Mapping[str, Any]) -> None:
        """End epochs a restored checkpoint left open (saved at an epoch's last step, before epoch end)."""
        if not self._hm_restored:
            return  # a fresh miner starts at whatever epoch training starts
        self._hm_restored = False
        miner = self._hm_ensure_miner()
        last = miner.history[-1].epoch if miner.history else -1
        for missing in range(last + 1, epoch):
            self._hm_end_epoch(missing, metrics)

    # ------------------------------------------------------------------ checkpoints
    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        super()._save_checkpoint(model, trial)  # type: ignore[misc]
        if not self._hm_on:
            return
        run_dir = self._get_output_dir(trial=trial)
        folder = os.path.join(run_dir, f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        self.save_mining_state(folder)

    def save_mining_state(self, folder: str | PathLike[str]) -> None:
        """Write the miner state, all ranks' pending losses included, to ``folder/hardmine_state.npz``.

        A collective: call it on every rank. The process that saves checkpoints writes, atomically.
        """
        self._hm_flush()
        state = self._hm_ensure_miner().state_dict()
        pending = state["pending"]
        ids, losses, indices = distributed.all_gather_concat(
            [pending["ids"], pending["losses"].astype(np.float64), pending["indices"]]
        )
        (sizes,) = distributed.all_gather_concat([np.array([pending["ids"].size], dtype=np.int64)])
        if not self.args.should_save:
            return
        state["pending"] = {"ids": ids, "losses": losses, "indices": indices}
        state["hf"] = {"pending_sizes": sizes, "ids_decided": self._hm_ids_decided}
        save_state(state, os.path.join(folder, STATE_FILE), kind="HardMiner")

    def load_mining_state(self, folder: str | PathLike[str]) -> bool:
        """Restore the miner from ``folder/hardmine_state.npz``; False (with a warning) when there is none."""
        path = os.path.join(folder, STATE_FILE)
        if not os.path.isfile(path):
            logger.warning("hardmine: checkpoint %s holds no %s; mining starts fresh", folder, STATE_FILE)
            warnings.warn(
                f"hardmine: checkpoint {folder} holds no {STATE_FILE}; mining starts fresh",
                UserWarning,
                stacklevel=2,
            )
            return False
        state = load_state(path, kind="HardMiner")
        miner = self._hm_ensure_miner()
        if int(state["num_samples"]) != miner.num_samples:
            raise ValueError(
                f"hardmine: checkpoint {folder} was saved for a train dataset of {int(state['num_samples'])} "
                f"samples, but this train_dataset has {miner.num_samples}. Resume with the same dataset, or "
                f"delete {path} to start mining fresh."
            )
        extra = state.pop("hf", {})
        sizes = np.asarray(extra.get("pending_sizes", []), dtype=np.int64)
        state["pending"] = _rank_share(state["pending"], sizes)
        miner.load_state_dict(state)
        self._hm_ids_decided = bool(extra.get("ids_decided", False))
        self._hm_buf = []
        self._hm_restored = True
        return True

    def train(self, resume_from_checkpoint: str | bool | None = None, *args: Any, **kwargs: Any) -> Any:
        """``Trainer.train``; resuming also restores the miner (ledger, plan, this epoch's losses so far)."""
        if self._hm_on and resume_from_checkpoint not in (None, False):
            if resume_from_checkpoint is True:
                resume_from_checkpoint = get_last_checkpoint(self.args.output_dir)  # type: ignore[no-untyped-call]
                if resume_from_checkpoint is None:
                    raise ValueError(
                        f"No valid checkpoint found in output directory ({self.args.output_dir})"
                    )
            self.load_mining_state(str(resume_from_checkpoint))
        return super().train(resume_from_checkpoint, *args, **kwargs)  # type: ignore[misc]


def _rank_share(pending: Mapping[str, np.ndarray], sizes: np.ndarray) -> dict[str, np.ndarray]:
    """This rank's slice of the gathered pending losses (everything to rank 0 if the world size changed)."""
    rank, world = distributed.get_rank(), distributed.get_world_size()
    arrays = {k: np.asarray(v) for k, v in pending.items()}
    if sizes.size == world:
        start = int(sizes[:rank].sum())
        return {k: v[start : start + int(sizes[rank])] for k, v in arrays.items()}
    if sizes.size:
        warnings.warn(
            f"hardmine: the checkpoint was saved by {sizes.size} processes and is resumed by {world}; this "
            "epoch's losses so far all go to rank 0 (the folding order can differ from an uninterrupted "
            "run).",
            UserWarning,
            stacklevel=3,
        )
    if rank == 0:
        return arrays
    return {k: v[:0] for k, v in arrays.items()}


def _output(outputs: Any, name: str) -> Any:
    if hasattr(outputs, name):  # ModelOutput: the attribute, not the dict (None never enters the dict)
        return getattr(outputs, name)
    return outputs.get(name) if isinstance(outputs, Mapping) else None


def _is_hf_dataset(dataset: Any) -> bool:
    try:
        import datasets
    except ImportError:
        return False
    return isinstance(dataset, datasets.Dataset)


class HardSampleMiningCallback(TrainerCallback):
    """Drives the miner from the Trainer's events; installed by :class:`HardMiningTrainerMixin`.

    Every event runs on every rank, so ``miner.end_epoch`` (a collective) is called on every rank.
    ``end_epoch`` waits for the epoch-end evaluation when one is due, so a plateau trigger can monitor
    ``eval_loss`` or ``eval_map`` of the epoch that just ended.
    """

    def __init__(self, trainer: HardMiningTrainerMixin) -> None:
        self.trainer = trainer
        self.eval_metrics: dict[str, Any] = {}
        self._epoch = 0
        self._deferred: int | None = None

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # transformers 5.x: a mid-epoch DDP resume never tells the sampler its epoch: tell it here,
        # before the Trainer calls iter() on the DataLoader.
        self._epoch = int(state.epoch or 0)
        self.trainer._hm_catch_up(self._epoch, self.eval_metrics)
        miner = self.trainer._hm_ensure_miner()
        miner.sampler.set_epoch(self._epoch)

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if control.should_evaluate:
            self._deferred = self._epoch  # end it in on_evaluate, with this epoch's eval metrics
        else:
            self.trainer._hm_end_epoch(self._epoch, self.eval_metrics)

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Any = None, **kwargs: Any) -> None:
        self.eval_metrics = dict(metrics or {})
        if self._deferred is not None:
            epoch, self._deferred = self._deferred, None
            self.trainer._hm_end_epoch(epoch, self.eval_metrics)


class HardMiningTrainer(HardMiningTrainerMixin, Trainer):
    """``transformers.Trainer`` with hard-sample mining: ``HardMiningTrainer(..., mining=cfg)``."""
