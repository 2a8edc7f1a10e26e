"""Scale: time and memory per stage of a dense run with the default guards, at N = 1M, 10M, 20M (and 50M).

Per N, one miner records an epoch of losses (1,024 per call), ends it (the trigger fires at epoch 0), and
does that again (steady state); then one weighted epoch is iterated and the miner is saved. Printed:
- end_epoch time against the floor ``torch.randperm(N).tolist()`` (target at 20M: <= 3x);
- memory per sample (tracemalloc, i.e. NumPy and Python objects; torch's own allocations are not seen):
  retained by the miner between epochs (target <= 40 B), peak extra during end_epoch (target <= 48 B),
  peak extra while iterating the sampler (chunked: no whole-epoch Python list);
- the state file: bytes per sample (target <= 24 B for a dense run) and the save time against ``np.save``
  of the same arrays into one file (target <= 2x).
Timings and memory come from separate runs (tracing slows allocation). Run:
    python benchmarks/bench_scale.py [--n 1000000 10000000 20000000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _timing import best_of  # noqa: E402

from hardmine import HardMiner  # noqa: E402
from hardmine._serialization import _split  # noqa: E402

CONFIG = {"trigger": {"kind": "epoch", "start_epoch": 0}, "select": {"kind": "top_k", "k": 0.1},
          "resample": {"hard_weight": 2.0, "max_repeats": 4}}  # the default guards: learnability + staleness
BATCH = 1024


def record_epoch(miner: HardMiner, losses: np.ndarray, epoch: int) -> float:
    """Record one epoch in the sampler's order, BATCH at a time; returns the seconds it took."""
    miner.sampler.set_epoch(epoch)
    ids = np.random.default_rng(epoch).permutation(losses.size)  # every index once, in a shuffled order
    t = time.perf_counter()
    for k in range(0, ids.size, BATCH):
        part = ids[k : k + BATCH]
        miner.record(part, losses[part])
    return time.perf_counter() - t


def timings(n: int, repeats: int) -> dict[str, float]:
    losses = np.random.default_rng(1).random(n).astype(np.float32)
    best = {"record": np.inf, "end_first": np.inf, "end_steady": np.inf, "iterate": np.inf, "save": np.inf,
            "np_save": np.inf}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            miner = HardMiner(CONFIG, num_samples=n)
            for epoch, key in ((0, "end_first"), (1, "end_steady")):
                best["record"] = min(best["record"], record_epoch(miner, losses, epoch))
                t = time.perf_counter()
                miner.end_epoch(epoch)
                best[key] = min(best[key], time.perf_counter() - t)
            t = time.perf_counter()
            for _ in miner.sampler:
                pass
            best["iterate"] = min(best["iterate"], time.perf_counter() - t)
            t = time.perf_counter()
            path = miner.save(Path(tmp) / "miner.npz")
            best["save"] = min(best["save"], time.perf_counter() - t)
            best["file"] = path.stat().st_size / n
            arrays: dict[str, Any] = {}
            _split(miner.state_dict(), arrays, "")
            t = time.perf_counter()
            np.savez(Path(tmp) / "baseline.npz", **arrays)  # the same arrays, as NumPy writes them
            best["np_save"] = min(best["np_save"], time.perf_counter() - t)
            del miner, arrays
            gc.collect()
    best["floor"] = best_of(lambda: torch.randperm(n).tolist(), repeats)
    return best


def memory(n: int) -> dict[str, float]:
    """Bytes per sample: retained between epochs, peak extra in end_epoch, peak extra iterating."""
    losses = np.random.default_rng(1).random(n).astype(np.float32)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    miner = HardMiner(CONFIG, num_samples=n)
    out: dict[str, float] = {}
    for epoch in range(2):
        record_epoch(miner, losses, epoch)
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        miner.end_epoch(epoch)
        out["end_peak"] = (tracemalloc.get_traced_memory()[1] - before) / n
        out["retained"] = (tracemalloc.get_traced_memory()[0] - base) / n
    before = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    for _ in miner.sampler:
        pass
    out["iterate_peak"] = (tracemalloc.get_traced_memory()[1] - before) / n
    tracemalloc.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, nargs="+", default=[1_000_000, 10_000_000, 20_000_000])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(2)
    print("N           floor  record  end_epoch first / steady (x floor)   iterate  retained  end peak  iter peak"
          "  file    save / np.save", flush=True)
    for n in args.n:
        t = timings(n, args.repeats)
        m = memory(n)
        first = t["end_first"] / t["floor"]
        print(f"{n:>11,} {t['floor']:5.2f}s {t['record']:6.2f}s {t['end_first']:6.2f}s ({first:.2f}x)"
              f" / {t['end_steady']:5.2f}s ({t['end_steady'] / t['floor']:.2f}x)  {t['iterate']:6.2f}s"
              f"  {m['retained']:5.1f} B  {m['end_peak']:5.1f} B  {m['iterate_peak']:6.2f} B  {t['file']:4.1f} B"
              f"  {t['save']:5.2f}s / {t['np_save']:5.2f}s ({t['save'] / t['np_save']:.2f}x)", flush=True)


if __name__ == "__main__":
    main()
