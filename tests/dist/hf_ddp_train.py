"""A whole HardMiningTrainer run on 2 gloo ranks (launched by tests/test_hf_distributed.py via torchrun).

usage: python -m torch.distributed.run --nproc_per_node=2 tests/dist/hf_ddp_train.py OUT full|resume [CKPT]
Each rank writes OUT/<mode>_rank<r>.json: its recorded (id, loss) stream, the miner's end state, and the
sequence of hardmine collectives it called (the test asserts every rank called the same ones).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


def main(out: Path, mode: str, checkpoint: str | None) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import hardmine.distributed as hd
    from hardmine.integrations.hf import HardMiningTrainer
    from tests.hf_tiny import TokenDataset, record_stream, stack_collate, tiny_args, tiny_qwen3

    calls: list[str] = []

    def logged(name: str) -> Any:
        collective = getattr(hd, name)

        def call(arrays: list[Any]) -> Any:
            calls.append(f"{sys._getframe(1).f_code.co_name}:{name}:{len(arrays)}")
            return collective(arrays)

        return call

    for name in ("all_gather_concat", "all_gather_concat_sizes"):  # hardmine calls them through the module
        setattr(hd, name, logged(name))

    args = tiny_args(out / mode, per_device_train_batch_size=2, num_train_epochs=3, save_strategy="steps",
                     save_steps=3, logging_steps=3, ddp_backend="gloo")
    mining = {
        "trigger": {"kind": "epoch", "start_epoch": 0},
        "select": {"kind": "top_k", "k": 5},
        "resample": {"hard_weight": 4.0, "max_repeats": 3},
        # an untrained tiny model: every loss is high and flat, which the default guard reads as hard to learn
        # once it has seen 3 epochs; with a warm-up of 4 it tracks every id but judges none in these 3 epochs
        "guard": {"cartography": {"warmup": 4}, "staleness": {}},
    }
    trainer = HardMiningTrainer(
        model=tiny_qwen3(seed=1),
        args=args,
        train_dataset=TokenDataset(24),
        data_collator=stack_collate,
        mining=mining,
    )
    stream = record_stream(trainer)
    trainer.train(resume_from_checkpoint=checkpoint)
    miner = trainer.miner
    assert miner is not None
    rank = hd.get_rank()
    ids, scores = miner.ledger.scores()
    result = {
        "world_size": hd.get_world_size(),
        "stream": stream,
        "hard_ids": miner.hard_ids.tolist(),
        "ledger_ids": ids.tolist(),
        "scores": scores.tolist(),
        "history": [e.to_dict() for e in miner.history],
        "collectives": calls,
        "steps": trainer.state.global_step,
    }
    (out / f"{mode}_rank{rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.torchrun import run_rank

    run_rank(main)
