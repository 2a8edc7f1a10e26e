"""A tiny HardMiningTrainer run that kills itself (SIGKILL) at a chosen moment of a chosen checkpoint save.

usage: python tests/dist/hf_crash_train.py OUT full|kill|resume [MOMENT:N | CHECKPOINT]
- full: the uninterrupted run; kill: the same run, killed at the N-th time MOMENT happens (see MOMENTS);
- resume: ``train(resume_from_checkpoint=CHECKPOINT or True)`` on OUT; a hardmine error is written, not raised.
Writes OUT/<mode>.json: the recorded (id, loss) stream, the miner's end state, the step resumed from, or the error.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import transformers  # noqa: E402
from transformers import trainer as trainer_module  # noqa: E402
from transformers.trainer_callback import TrainerState  # noqa: E402

import hardmine._serialization as serialization  # noqa: E402
from hardmine.integrations.hf import HardMiningTrainer  # noqa: E402
from tests.hf_tiny import TokenDataset, record_stream, stack_collate, tiny_args, tiny_qwen3  # noqa: E402

MINING = {"trigger": {"kind": "epoch", "start_epoch": 0}, "select": {"kind": "top_k", "k": 5},
          "resample": {"hard_weight": 4.0, "max_repeats": 3}}
N, BATCH, EPOCHS, SAVE_STEPS = 24, 4, 3, 3
# the moments of one checkpoint save, in the order they happen (each: module, attribute)
class _Os:
    """hardmine._serialization's view of ``os``: the real module, with a ``replace`` of its own to wrap."""

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    replace = staticmethod(os.replace)


serialization.os = _Os()  # type: ignore[assignment]
MOMENTS = {
    "state_written": (serialization.os, "replace"),  # hardmine's temporary file written and synced, not renamed
    "state_renamed": (serialization, "_sync_folder"),  # hardmine_state.npz in place
    "model_saved": (transformers.Trainer, "save_model"),
    "optimizer_saved": (transformers.Trainer, "_save_optimizer_and_scheduler"),
    "trainer_state_saved": (TrainerState, "save_to_json"),  # the checkpoint looks finished
    "rotated": (trainer_module, "rotate_checkpoints"),  # older checkpoints deleted (save_total_limit=2)
}


def kill_at(moment: str, nth: int) -> None:
    owner, name = MOMENTS[moment]
    original = getattr(owner, name)
    calls = [0]

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == nth and moment == "state_written":  # before the rename
            os.kill(os.getpid(), signal.SIGKILL)
        out = original(*args, **kwargs)
        if calls[0] == nth:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no flush: what a preemption does
        return out

    setattr(owner, name, wrapped)


def main(out: Path, mode: str, arg: str | None) -> None:
    if mode == "kill" and arg:
        moment, nth = arg.split(":")
        kill_at(moment, int(nth))
    args = tiny_args(out / "run", per_device_train_batch_size=BATCH, num_train_epochs=EPOCHS,
                     save_strategy="steps", save_steps=SAVE_STEPS, save_total_limit=2, logging_steps=3)
    trainer = HardMiningTrainer(model=tiny_qwen3(seed=1), args=args, train_dataset=TokenDataset(N),
                                data_collator=stack_collate, mining=MINING)
    stream = record_stream(trainer)
    result: dict[str, Any] = {}
    try:
        resume = (arg or True) if mode == "resume" else None
        trainer.train(resume_from_checkpoint=resume)
    except (ValueError, FileNotFoundError) as e:
        if "hardmine" not in str(e):
            raise
        result["error"] = str(e)
    miner = trainer.miner
    assert miner is not None
    ids, scores = miner.ledger.scores()
    result.update(stream=stream, hard_ids=miner.hard_ids.tolist(), ledger_ids=ids.tolist(),
                  scores=np.asarray(scores, np.float64).tolist(), history=[e.to_dict() for e in miner.history])
    (out / f"{mode}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
