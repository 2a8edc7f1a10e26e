"""LossLedger vs a Python-dict ledger: 1,000 updates of 1,024 ids plus the fold into scores.

Targets (issue 2): >= 20x faster than the dict ledger for a known dense id range, >= 2x for arbitrary int64
ids; resident memory <= 16 bytes/id dense, <= 40 bytes/id arbitrary; `HardMiner.record` in microseconds.
Issue 15: >= 3x the plain dict for arbitrary int64 ids drawn from 0..1M (repeats within and across updates).

The issue anchors "a Python-dict ledger" at about 0.4 s for these 1M updates where the floor
`torch.randperm(10M).tolist()` took about 0.5 s. Three dict ledgers run here, each in this process:
the bare EMA dict (a score per id, nothing else: less work than the anchor's), a dict ledger keeping what
LossLedger keeps (score, count, first loss, last-seen epoch; NaN/inf skipped), and the anchor itself scaled
by this machine's floor (0.4 s x floor / 0.5 s).
Run: python benchmarks/bench_ledger.py
"""

from __future__ import annotations

import math
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _timing import best_of  # noqa: E402

from hardmine import HardMiner, LossLedger  # noqa: E402

CALLS, BATCH = 1_000, 1_024
N = CALLS * BATCH
ANCHOR_DICT_S, ANCHOR_FLOOR_S, FLOOR_N = 0.4, 0.5, 10_000_000  # the anchors


def dict_ledger(batches: list[tuple[np.ndarray, np.ndarray]]) -> dict[int, float]:
    """The baseline: an EMA in a dict, first observation initialising the score."""
    scores: dict[int, float] = {}
    for ids, losses in batches:
        for i, x in zip(ids.tolist(), losses.tolist()):
            old = scores.get(i)
            scores[i] = x if old is None else 0.9 * old + 0.1 * x
    return scores


def dict_ledger_full(batches: list[tuple[np.ndarray, np.ndarray]]) -> dict[int, list[float]]:
    """A dict ledger keeping what LossLedger keeps: [EMA score, count, first loss, last-seen epoch] per id,
    non-finite losses skipped and counted."""
    table: dict[int, list[float]] = {}
    epoch, skipped = 0, 0
    for ids, losses in batches:
        for i, x in zip(ids.tolist(), losses.tolist()):
            if not math.isfinite(x):
                skipped += 1
                continue
            rec = table.get(i)
            if rec is None:
                table[i] = [x, 1, x, epoch]
            else:
                rec[0] = 0.9 * rec[0] + 0.1 * x
                rec[1] += 1
                rec[3] = epoch
    return table


def feed(ledger: LossLedger, batches: list[tuple[np.ndarray, np.ndarray]]) -> LossLedger:
    """One epoch of updates into ``ledger``, then the fold into scores."""
    for ids, losses in batches:
        ledger.update(ids, losses)
    ledger.scores()
    return ledger


def run_ledger(batches: list[tuple[np.ndarray, np.ndarray]], num_ids: int | None) -> LossLedger:
    return feed(LossLedger("ema", 0.9, num_ids=num_ids), batches)


def second_epoch(batches: list[tuple[np.ndarray, np.ndarray]], num_ids: int | None, repeats: int = 3) -> float:
    """The same updates and fold again, into a ledger that has seen every id once (best of ``repeats``)."""
    best = float("inf")
    for _ in range(repeats):
        ledger = run_ledger(batches, num_ids)
        ledger.set_epoch(1)
        t = time.perf_counter()
        feed(ledger, batches)
        best = min(best, time.perf_counter() - t)
    return best


def bytes_per_id(fn: Callable[[], object]) -> float:
    """Resident bytes per id of what ``fn`` returns, by tracemalloc."""
    tracemalloc.start()
    kept = fn()
    current = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del kept
    return current / N


def compare(name: str, ids: np.ndarray, losses: np.ndarray, num_ids: int | None, anchor_s: float) -> str:
    """Speed and memory of LossLedger against the dict ledgers on one stream of ids."""
    batches = [(ids[k : k + BATCH], losses[k : k + BATCH]) for k in range(0, N, BATCH)]
    t_ours = best_of(lambda: run_ledger(batches, num_ids))
    t_bare = best_of(lambda: dict_ledger(batches))
    t_full = best_of(lambda: dict_ledger_full(batches))
    return (f"{name}: LossLedger {t_ours:.3f}s, {bytes_per_id(lambda: run_ledger(batches, num_ids)):.1f} B/id\n"
            f"  vs bare EMA dict        {t_bare:6.3f}s: {t_bare / t_ours:5.1f}x  "
            f"({bytes_per_id(lambda: dict_ledger(batches)):.0f} B/id)\n"
            f"  vs same-records dict    {t_full:6.3f}s: {t_full / t_ours:5.1f}x  "
            f"({bytes_per_id(lambda: dict_ledger_full(batches)):.0f} B/id)\n"
            f"  vs issue anchor scaled  {anchor_s:6.3f}s: {anchor_s / t_ours:5.1f}x\n"
            f"  (a second epoch, every id seen before: LossLedger {second_epoch(batches, num_ids):.3f}s)")


def main() -> None:
    rng = np.random.default_rng(0)
    losses = rng.random(N).astype(np.float32)
    dense_ids = rng.permutation(N)  # one epoch over a dense range: every id once
    sparse_ids = rng.choice(2**62, N, replace=False).astype(np.int64) - 2**61
    drawn_ids = rng.integers(0, 1_000_000, N).astype(np.int64)  # issue 15: drawn from 0..1M, repeats included
    floor = best_of(lambda: torch.randperm(FLOOR_N).tolist())
    anchor_s = ANCHOR_DICT_S * floor / ANCHOR_FLOOR_S
    print(f"floor torch.randperm({FLOOR_N:,}).tolist() {floor:.3f}s (the issue's: {ANCHOR_FLOOR_S} s), so the "
          f"issue's {ANCHOR_DICT_S} s dict ledger is {anchor_s:.3f}s here", flush=True)
    cases = (("dense 0..N-1", dense_ids, N), ("arbitrary int64 ids drawn from 0..1M (repeats)", drawn_ids, None),
             ("arbitrary int64 ids spread over 2**62", sparse_ids, None))
    for name, ids, num_ids in cases:
        print(compare(name, ids, losses, num_ids, anchor_s), flush=True)
    miner = HardMiner(None, num_samples=N)
    ids, ls = dense_ids[:BATCH], losses[:BATCH]
    reps = 2_000

    def record_many() -> None:
        for _ in range(reps):
            miner.record(ids, ls)
        miner.buffer.clear()  # drop what was recorded: each repeat starts empty

    per_call = best_of(record_many) / reps
    print(f"HardMiner.record of {BATCH} ids: {per_call * 1e6:.1f} us per call", flush=True)


if __name__ == "__main__":
    main()
