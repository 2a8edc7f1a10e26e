"""Scale: time and memory per stage of a dense run with the default guards, at N = 1M, 10M, 20M (and 50M).

Per N, one miner records an epoch of losses (1,024 per call) and ends it, seven times: epoch 0 (the first end:
the trigger fires, the ledger and guard columns are new), epochs 1-4 (steady, while the cartography guard
warms up: its warm-up is set to 5 here so that the stages are those of issue 15), epochs 5-6 (the guard
judges: it keeps the flat-loss ids with a confidence below 0.25 out, about half of them; the selection is
redone unguarded for the report). Then one weighted epoch is iterated and the miner is saved. Printed:
- end_epoch time against the floor ``torch.randperm(N).tolist()``, timed right after each end_epoch so both
  see the same machine state (target at 20M: <= 3x);
- memory per sample (tracemalloc, i.e. NumPy and Python objects; torch's own allocations are not seen):
  retained by the miner between epochs (target <= 40 B), peak extra during any end_epoch (target <= 48 B),
  peak extra while iterating the sampler (chunked: no whole-epoch Python list) and while saving (streamed from
  the live arrays: no copy of the state);
- the state file: bytes per sample (target <= 24 B for a dense run) and the save time against ``np.savez``
  of the same arrays into one file (target <= 2x), and against ``np.savez`` plus the fsync hardmine's
  durable save does; save and baselines are interleaved.
Timings and memory come from separate runs (tracing slows allocation). ``--touch GB`` first writes that many
GB once and frees them: on a VM that backs guest memory lazily (the Firecracker VM of docs/benchmarks.md
takes ~2.8 s/GB on first touch, ~0.2 s/GB after) it measures the library, not the hypervisor. Run:
    python benchmarks/bench_scale.py [--n 1000000 10000000 20000000] [--repeats 2] [--touch 0]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from hardmine import HardMiner  # noqa: E402
from hardmine._serialization import _split  # noqa: E402

CONFIG = {"trigger": {"kind": "epoch", "start_epoch": 0}, "select": {"kind": "top_k", "k": 0.1},
          "resample": {"hard_weight": 2.0, "max_repeats": 4},
          "guard": {"cartography": {"warmup": 5}, "staleness": {}}}  # the default guards, judging from epoch 5
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


EPOCHS = 7  # 0: first end; 1-4: steady, the cartography guard warming up (warm-up 5); 5-6: it judges
LOSS_SCALE = 3.0  # flat losses uniform in [0, 3): confidence exp(-loss) below 0.25 for those above ln 4


def floor(n: int) -> float:
    t = time.perf_counter()
    torch.randperm(n).tolist()
    return time.perf_counter() - t


def timed(fn: Any, settle: bool = False) -> float:
    """Seconds ``fn()`` takes; ``settle``: write every dirty page to disk first, so that a timed write is not
    throttled by the previous one's writeback."""
    gc.collect()
    if settle:
        os.sync()
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def durable_savez(path: Path, arrays: dict[str, Any]) -> None:
    """``np.savez`` and an fsync of the file: what a durable save of the same arrays costs at least."""
    np.savez(path, **arrays)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def one_run(n: int, losses: np.ndarray, tmp: Path, best: dict[str, float], ratios: dict[str, list[float]]) -> None:
    """One miner through EPOCHS epochs, an iterated epoch and three saves; the fastest times go into ``best``,
    each end_epoch over the floor timed right after it into ``ratios``."""
    miner = HardMiner(CONFIG, num_samples=n)

    def keep(key: str, seconds: float) -> float:
        best[key] = min(best[key], seconds)
        return seconds

    for epoch in range(EPOCHS):
        keep("record", record_epoch(miner, losses, epoch))
        stage = "end_first" if epoch == 0 else "end_steady" if epoch < 5 else "end_guarded"
        end = keep(stage, timed(lambda: miner.end_epoch(epoch)))  # noqa: B023 (called at once)
        ratios[stage].append(end / keep("floor", floor(n)))
    assert miner.history[-1].excluded.get("hard_to_learn", 0) > 0, "the cartography guard should judge by epoch 5"
    keep("iterate", timed(lambda: sum(1 for _ in miner.sampler)))
    arrays: dict[str, Any] = {}
    _split(miner.state_dict(), arrays, "")
    for _ in range(2):  # interleaved: the disk's state moves between writes
        keep("save", timed(lambda: miner.save(tmp / "miner.npz"), settle=True))
        keep("np_save", timed(lambda: np.savez(tmp / "baseline.npz", **arrays), settle=True))
        keep("np_save_fsync", timed(lambda: durable_savez(tmp / "durable.npz", arrays), settle=True))
    best["file"] = (tmp / "miner.npz").stat().st_size / n


STAGES = ("end_first", "end_steady", "end_guarded")


def timings(n: int, repeats: int) -> tuple[dict[str, float], dict[str, list[float]]]:
    """The best time of every step, and the paired ratios (end_epoch / the floor right after) of each stage."""
    losses = (np.random.default_rng(1).random(n) * LOSS_SCALE).astype(np.float32)
    best = dict.fromkeys(("record", *STAGES, "iterate", "save", "np_save", "np_save_fsync", "floor"), np.inf)
    ratios: dict[str, list[float]] = {k: [] for k in STAGES}
    with tempfile.TemporaryDirectory(dir=os.environ.get("HARDMINE_BENCH_DIR")) as tmp:
        for _ in range(repeats):
            one_run(n, losses, Path(tmp), best, ratios)
            gc.collect()
    return best, ratios


def memory(n: int) -> dict[str, float]:
    """Bytes per sample: retained between epochs, peak extra in any end_epoch, iterating, and saving."""
    losses = (np.random.default_rng(1).random(n) * LOSS_SCALE).astype(np.float32)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    miner = HardMiner(CONFIG, num_samples=n)
    out: dict[str, float] = {"end_peak": 0.0}
    for epoch in range(EPOCHS):
        record_epoch(miner, losses, epoch)
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        miner.end_epoch(epoch)
        out["end_peak"] = max(out["end_peak"], (tracemalloc.get_traced_memory()[1] - before) / n)
        out["retained"] = (tracemalloc.get_traced_memory()[0] - base) / n
    before = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    for _ in miner.sampler:
        pass
    out["iterate_peak"] = (tracemalloc.get_traced_memory()[1] - before) / n
    with tempfile.TemporaryDirectory(dir=os.environ.get("HARDMINE_BENCH_DIR")) as tmp:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        miner.save(Path(tmp) / "miner.npz")
        out["save_peak"] = (tracemalloc.get_traced_memory()[1] - before) / n
    tracemalloc.stop()
    return out


def touch(gb: float) -> float:
    """Write ``gb`` GB once and free them; returns the seconds it took."""
    t = time.perf_counter()
    block = np.ones(int(gb * 2**30) // 8)
    del block
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, nargs="+", default=[1_000_000, 10_000_000, 20_000_000])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--touch", type=float, default=0.0, help="GB to write once before measuring")
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.touch:
        print(f"touched {args.touch:g} GB first in {touch(args.touch):.1f}s", flush=True)
    print("end_epoch: the best time of each stage and, in brackets, the median (min-max) of its paired ratios, each\n"
          "end_epoch over the floor timed right after it (the VM's speed moves between them by tens of percent)")
    print("N           floor  record  end_epoch first / steady / guarded                                         "
          "      iterate  retained  end peak  iter peak  file   save peak  save / np.savez / +fsync", flush=True)
    for n in args.n:
        t, r = timings(n, args.repeats)
        m = memory(n)
        f = t["floor"]
        ends = " / ".join(f"{t[k]:5.2f}s ({np.median(r[k]):.2f}x, {min(r[k]):.2f}-{max(r[k]):.2f})" for k in STAGES)
        print(f"{n:>11,} {f:5.2f}s {t['record']:6.2f}s {ends}  {t['iterate']:6.2f}s"
              f"  {m['retained']:5.1f} B  {m['end_peak']:5.1f} B  {m['iterate_peak']:6.2f} B  {t['file']:4.1f} B"
              f"  {m['save_peak']:5.1f} B"
              f"  {t['save']:5.2f}s / {t['np_save']:5.2f}s ({t['save'] / t['np_save']:.2f}x)"
              f" / {t['np_save_fsync']:5.2f}s ({t['save'] / t['np_save_fsync']:.2f}x)", flush=True)


if __name__ == "__main__":
    main()
