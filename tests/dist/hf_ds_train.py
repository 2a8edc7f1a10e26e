"""A HardMiningTrainer run under DeepSpeed ZeRO-3 on 2 gloo CPU ranks (launched by tests/test_hf_deepspeed.py).

usage: python -m torch.distributed.run --nproc_per_node=2 tests/dist/hf_ds_train.py OUT stock|never|full|resume [CKPT]
stock: the stock Trainer fed the order an un-triggered miner draws; never: mining on, never triggered;
full / resume: mining from epoch 0, the whole run / resumed from CKPT. Each rank writes OUT/<mode>_rank<r>.json:
its recorded (id, loss) stream, the logged losses, its ZeRO-3 partition of every parameter, the miner's state.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

ZERO3 = {
    "zero_optimization": {"stage": 3},
    "train_micro_batch_size_per_gpu": "auto",
    "gradient_accumulation_steps": "auto",
    "train_batch_size": "auto",
    "gradient_clipping": "auto",
    "zero_allow_untested_optimizer": True,
}
# without use_cpu=True accelerate sees one process: with no train_batch_size for DeepSpeed to check, every
# rank is fed the whole dataset (the silent variant of the mistake; with "auto" it crashes in initialize)
DUP = {k: v for k, v in ZERO3.items() if k != "train_batch_size"}
MINING: dict[str, Any] = {
    "trigger": {"kind": "epoch", "start_epoch": 0},
    "select": {"kind": "top_k", "k": 5},
    "resample": {"hard_weight": 4.0, "max_repeats": 3},
    # an untrained tiny model: every loss is high and flat, which the default guard reads as hard to learn
    # once it has seen 3 epochs; with a warm-up of 4 it tracks every id but judges none in these 3 epochs
    "guard": {"cartography": {"warmup": 4}, "staleness": {}},
}


def main(out: Path, mode: str, checkpoint: str | None) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from transformers import Trainer, TrainerCallback

    import hardmine.distributed as hd
    from hardmine import HardMiningSampler
    from hardmine.integrations.hf import HardMiningTrainer
    from tests.hf_tiny import TokenDataset, record_stream, stack_collate, tiny_args, tiny_qwen3

    class SameOrderTrainer(Trainer):
        def _get_train_sampler(self, train_dataset: Any = None) -> Any:
            return HardMiningSampler(len(self.train_dataset), seed=self.args.seed)

    def partitions(model: Any) -> dict[str, list[float]]:
        return {n: p.ds_tensor.detach().reshape(-1).tolist() for n, p in model.named_parameters()}

    class FirstEpochEnd(TrainerCallback):
        """This rank's ZeRO-3 partitions after the last optimizer step of epoch 0."""

        def __init__(self) -> None:
            self.partitions: dict[str, list[float]] | None = None

        def on_epoch_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
            if self.partitions is None and state.epoch <= 1:
                self.partitions = partitions(model)

    snap = FirstEpochEnd()
    args = tiny_args(out / mode, per_device_train_batch_size=2, num_train_epochs=3, save_strategy="steps",
                     save_steps=3, logging_steps=1, ddp_backend="gloo", deepspeed=ZERO3 if mode != "dup" else DUP, use_cpu=mode != "dup")
    common: dict[str, Any] = dict(model=tiny_qwen3(seed=1), args=args, train_dataset=TokenDataset(24),
                                  data_collator=stack_collate, callbacks=[snap])
    if mode == "stock":
        trainer: Any = SameOrderTrainer(**common)
    else:
        never = {"trigger": {"kind": "epoch", "start_epoch": 99}}
        trainer = HardMiningTrainer(**common, mining=never if mode == "never" else MINING)
    stream = record_stream(trainer) if mode != "stock" else []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.train(resume_from_checkpoint=checkpoint)
    miner = trainer.miner if mode != "stock" else None
    result: dict[str, Any] = {
        "world_size": hd.get_world_size(),
        "stream": stream,
        "losses": [h["loss"] for h in trainer.state.log_history if "loss" in h],
        "partitions": partitions(trainer.model),
        "epoch0_partitions": snap.partitions,
        "steps": trainer.state.global_step,
        "warnings": [str(w.message) for w in caught if "hardmine" in str(w.message)],
    }
    if miner is not None:
        ids, scores = miner.ledger.scores()
        result.update(hard_ids=miner.hard_ids.tolist(), ledger_ids=ids.tolist(), scores=scores.tolist(),
                      history=[e.to_dict() for e in miner.history])
    (out / f"{mode}_rank{hd.get_rank()}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.torchrun import run_rank

    run_rank(main)
