"""HardMiningTrainer vs the stock Trainer on a tiny Qwen3 with a 32k vocabulary: step time and peak memory.

    python benchmarks/bench_hf_overhead.py [--steps 20] [--rounds 3] [--seq 256] [--batch 8]

Step time: both trainers in this process, interleaved over ``--rounds`` (median per-step time of each).
Peak memory: each variant in a fresh subprocess; peak RSS (CPU) or peak CUDA allocation (GPU) during
training minus the level before it, so a second copy of the logits would show as a ratio near 2.
Targets: time overhead <= 3 %, memory <= 1.05x.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402


def _build(kind: str, opts: argparse.Namespace, out: str) -> Any:
    from transformers import Qwen3Config, Qwen3ForCausalLM, Trainer, TrainerCallback, TrainingArguments

    from hardmine import HardMiningSampler
    from hardmine.integrations.hf import HardMiningTrainer

    class Rows(torch.utils.data.Dataset):  # type: ignore[type-arg]
        def __init__(self, n: int) -> None:
            self.x = torch.randint(0, 32000, (n, opts.seq), generator=torch.Generator().manual_seed(0))

        def __len__(self) -> int:
            return len(self.x)

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            return {"input_ids": self.x[i], "labels": self.x[i]}

    class SameOrder(Trainer):
        def _get_train_sampler(self, train_dataset: Any = None) -> Any:
            return HardMiningSampler(len(self.train_dataset), seed=0)

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_step_begin(self, *a: Any, **k: Any) -> None:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.t0 = time.perf_counter()

        def on_step_end(self, *a: Any, **k: Any) -> None:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.times.append(time.perf_counter() - self.t0)

    torch.manual_seed(0)
    cfg = Qwen3Config(
        vocab_size=32000,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
    )
    model = Qwen3ForCausalLM(cfg)
    args = TrainingArguments(
        output_dir=out,
        per_device_train_batch_size=opts.batch,
        max_steps=opts.steps,
        report_to="none",
        use_cpu=not torch.cuda.is_available(),
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        learning_rate=1e-4,
        remove_unused_columns=False,
    )
    data = Rows(opts.batch * opts.steps)
    clock = Clock()

    def collate(f: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return {k: torch.stack([x[k] for x in f]) for k in f[0]}

    if kind == "stock":
        trainer = SameOrder(model=model, args=args, train_dataset=data, data_collator=collate, callbacks=[clock])
    else:
        trainer = HardMiningTrainer(
            model=model,
            args=args,
            train_dataset=data,
            data_collator=collate,
            callbacks=[clock],
            mining={"trigger": {"kind": "epoch", "start_epoch": 99}},
        )
    return trainer, clock


def _peak_rss(reset: bool = False) -> int:
    """Peak resident set size in bytes (Linux VmHWM); ``reset`` restarts the peak from the current level.

    ``ru_maxrss`` cannot be used: it survives fork + exec, so a child starts at its parent's peak.
    """
    if reset:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _memory(kind: str, opts: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as out:
        trainer, _ = _build(kind, opts, out)
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
        else:
            before = _peak_rss(reset=True)
        trainer.train()
        peak = torch.cuda.max_memory_allocated() if cuda else _peak_rss()
    print(json.dumps({"before": before, "peak": peak}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--memory-only", choices=["stock", "mining"], default=None)
    p.add_argument("--skip-timing", action="store_true")
    opts = p.parse_args()
    if opts.memory_only:
        _memory(opts.memory_only, opts)
        return
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({torch.get_num_threads()} threads)"
    times: dict[str, list[float]] = {"stock": [], "mining": []}
    with tempfile.TemporaryDirectory() as out:
        if opts.skip_timing:
            opts.rounds = 0
        for _ in range(opts.rounds):
            for kind in ("stock", "mining"):
                trainer, clock = _build(kind, opts, out)
                trainer.train()
                times[kind] += clock.times[2:]  # the first steps warm up
    print(f"device: {device}; tiny Qwen3, vocab 32000, batch {opts.batch} x {opts.seq} tokens")
    if times["stock"] and times["mining"]:
        stock, mining = statistics.median(times["stock"]), statistics.median(times["mining"])
        print(
            f"median step: stock {stock * 1e3:.1f} ms, mining {mining * 1e3:.1f} ms, "
            f"overhead {100 * (mining / stock - 1):+.1f} % (target <= 3 %)"
        )
    peaks = {}
    for kind in ("stock", "mining"):
        cmd = [
            sys.executable,
            __file__,
            "--memory-only",
            kind,
            "--steps",
            str(min(opts.steps, 5)),
            "--seq",
            str(opts.seq),
            "--batch",
            str(opts.batch),
        ]
        peaks[kind] = json.loads(
            subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()[-1]
        )
    growth = {k: v["peak"] - v["before"] for k, v in peaks.items()}
    logits_mb = opts.batch * opts.seq * 32000 * 4 / 2**20
    print(
        f"peak memory above the pre-training level: stock {growth['stock'] / 2**20:.0f} MiB, mining "
        f"{growth['mining'] / 2**20:.0f} MiB, ratio {growth['mining'] / max(growth['stock'], 1):.3f}x "
        f"(target <= 1.05x; one float32 logits copy = {logits_mb:.0f} MiB)"
    )


if __name__ == "__main__":
    main()
