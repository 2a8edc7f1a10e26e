"""TRL's SFTTrainer with and without hardmine: step time, and what ``return_outputs=True`` used to cost.

    python benchmarks/bench_trl_overhead.py [--steps 20] [--rounds 3] [--seq 256] [--batch 8] [--vocab 32000]

Three variants on a tiny Qwen3, interleaved over ``--rounds`` in this process (median per-step time):
``stock`` (trl.SFTTrainer), ``hardmine`` (the mixin: per-sample losses from the fused head's log-probs,
taken by a forward hook), and ``outputs`` (the mixin's old way: ``compute_loss(return_outputs=True)``,
for which TRL runs an extra no-grad forward that builds the full logits).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _trainer(kind: str, opts: argparse.Namespace, out: str) -> Any:
    import datasets
    import torch
    import trl
    from transformers import Qwen3Config, Qwen3ForCausalLM, TrainerCallback

    from hardmine.integrations.hf import HardMiningTrainerMixin
    from tests.hf_tiny import tiny_tokenizer

    class AskOutputs(trl.SFTTrainer):
        def compute_loss(self, model: Any, inputs: Any, return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
            return (loss, outputs) if return_outputs else loss

    class Timer(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self.t0 = 0.0

        def on_step_begin(self, *args: Any, **kwargs: Any) -> None:
            self.t0 = time.perf_counter()

        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            self.times.append(time.perf_counter() - self.t0)

    torch.manual_seed(0)
    config = Qwen3Config(vocab_size=opts.vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=16)
    model = Qwen3ForCausalLM(config)
    n = opts.steps * opts.batch
    rows = torch.randint(0, opts.vocab, (n, opts.seq), generator=torch.Generator().manual_seed(0))
    data = datasets.Dataset.from_dict({"input_ids": rows.tolist()})
    args = trl.SFTConfig(output_dir=out, report_to="none", use_cpu=True, disable_tqdm=True, save_strategy="no",
                         per_device_train_batch_size=opts.batch, num_train_epochs=1, logging_steps=10**6,
                         max_length=None, seed=0)
    base = {"stock": trl.SFTTrainer, "hardmine": trl.SFTTrainer, "outputs": AskOutputs}[kind]
    timer = Timer()
    kw: dict[str, Any] = dict(model=model, args=args, train_dataset=data, processing_class=tiny_tokenizer(),
                              callbacks=[timer])
    if kind == "stock":
        trainer = base(**kw)
    else:
        cls = type(f"Mined{base.__name__}", (HardMiningTrainerMixin, base), {})
        trainer = cls(**kw, mining={"trigger": {"kind": "epoch", "start_epoch": 99}})
    trainer.timer = timer
    return trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=32000)
    opts = parser.parse_args()
    medians: dict[str, list[float]] = {"stock": [], "hardmine": [], "outputs": []}
    with tempfile.TemporaryDirectory() as out, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TRL's per-step return_outputs warning (variant "outputs")
        for _ in range(opts.rounds):
            for kind in medians:
                trainer = _trainer(kind, opts, out)
                trainer.train()
                medians[kind].append(statistics.median(trainer.timer.times[2:]))  # past the warm-up steps
    stock = statistics.median(medians["stock"])
    print(f"TRL SFTTrainer, tiny Qwen3 (vocab {opts.vocab}, seq {opts.seq}, batch {opts.batch}), "
          f"median step over {opts.rounds} rounds of {opts.steps} steps")
    for kind, values in medians.items():
        t = statistics.median(values)
        print(f"  {kind:9s} {1000 * t:8.1f} ms/step  {100 * (t / stock - 1):+6.1f} %")


if __name__ == "__main__":
    main()
