"""Hugging Face Trainer adapter: per-sample losses with the stock gradient, the mining sampler, exact resume.

>>> from hardmine.integrations.hf import HardMiningTrainer  # doctest: +SKIP
>>> trainer = HardMiningTrainer(model=model, args=args, train_dataset=ds,  # doctest: +SKIP
...                             data_collator=collate, mining="train.yaml")
>>> trainer.train(); trainer.miner.hard_ids                  # doctest: +SKIP

- :class:`HardMiningTrainer` is ``transformers.Trainer`` with mining; :class:`HardMiningTrainerMixin` adds
  the same to any Trainer subclass (``class T(HardMiningTrainerMixin, SFTTrainer)``, ms-swift's trainers).
- ``mining=`` takes a :class:`~hardmine.HardMiningConfig`, a dict, or a YAML path
  (``custom.hard_sample_mining``).
  ``enabled: false`` installs nothing: the stock Trainer, bit for bit.
- Items may carry ``sample_id`` (augmented variants share it); otherwise the dataset index is the id.
  A packed item (one row holding several samples, ``position_ids`` restarting at 0) carries a list.
- Causal LMs and VLMs need nothing else: the per-token cross-entropy is computed once, reduced exactly
  as the stock loss, and averaged per sample from the same tensor. Other heads pass
  ``per_sample_loss_fn(outputs, inputs) -> Tensor[batch]``.
- Each checkpoint folder gets ``hardmine_state.npz``; ``train(resume_from_checkpoint=...)`` restores it.
- DDP and DeepSpeed: accelerate shards the miner's global-stream sampler; ``end_epoch`` gathers over
  ``torch.distributed`` on every rank (NCCL or gloo), the same code path for both.
- ms-swift builds its own train DataLoader: the mixin rebuilds it over the miner's sampler. Whatever built
  the loader, the first batch of each epoch must follow the plan, or the run stops there; ranks fed the same
  data are warned about. TRL's and ms-swift's dataset packing are refused when the trainer is built.
  Recipes per stack: ``docs/stacks/``.

Importing this module does not import transformers; the names below load it on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["HardMiningTrainer", "HardMiningTrainerMixin", "HardSampleMiningCallback", "STATE_FILE"]

if TYPE_CHECKING:
    from hardmine.integrations._hf_trainer import (
        STATE_FILE,
        HardMiningTrainer,
        HardMiningTrainerMixin,
        HardSampleMiningCallback,
    )


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        from hardmine.integrations import _hf_trainer
    except ImportError as err:
        raise ImportError(
            f"hardmine.integrations.hf.{name} needs transformers and accelerate: pip install 'hardmine[hf]' "
            f"({err})"
        ) from err
    return getattr(_hf_trainer, name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
