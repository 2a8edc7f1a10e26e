"""LossLedger vs a Python-dict ledger: 1,000 updates of 1,024 ids plus the fold into scores.

Targets (issue 2): >= 20x faster than the dict ledger for a known dense id range, >= 2x for arbitrary int64
ids; resident memory <= 16 bytes/id dense, <= 40 bytes/id arbitrary; `HardMiner.record` in microseconds.
Run: python benchmarks/bench_ledger.py
"""

from __future__ import annotations

import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _timing import best_of  # noqa: E402

from hardmine import HardMiner, LossLedger  # noqa: E402

CALLS, BATCH = 1_000, 1_024
N = CALLS * BATCH


def dict_ledger(batches: list[tuple[np.ndarray, np.ndarray]]) -> dict[int, float]:
    """The baseline: an EMA in a dict, first observation initialising the score."""
    scores: dict[int, float] = {}
    for ids, losses in batches:
        for i, x in zip(ids.tolist(), losses.tolist()):
            old = scores.get(i)
            scores[i] = x if old is None else 0.9 * old + 0.1 * x
    return scores


def run_ledger(batches: list[tuple[np.ndarray, np.ndarray]], num_ids: int | None) -> LossLedger:
    ledger = LossLedger("ema", 0.9, num_ids=num_ids)
    for ids, losses in batches:
        ledger.update(ids, losses)
    ledger.scores()
    return ledger


def memory_per_id(batches: list[tuple[np.ndarray, np.ndarray]], num_ids: int | None) -> float:
    tracemalloc.start()
    ledger = run_ledger(batches, num_ids)
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del ledger
    return current / N


def compare(name: str, ids: np.ndarray, losses: np.ndarray, num_ids: int | None) -> str:
    """Speed and memory of LossLedger against the dict ledger on one stream of ids."""
    batches = [(ids[k : k + BATCH], losses[k : k + BATCH]) for k in range(0, N, BATCH)]
    t_dict = best_of(lambda: dict_ledger(batches))
    t_ours = best_of(lambda: run_ledger(batches, num_ids))
    tracemalloc.start()
    d = dict_ledger(batches)
    dict_bytes = tracemalloc.get_traced_memory()[0] / N
    tracemalloc.stop()
    del d
    return (f"{name:>16}: dict {t_dict:6.3f}s  LossLedger {t_ours:6.3f}s  speed-up {t_dict / t_ours:5.1f}x   "
            f"memory {memory_per_id(batches, num_ids):5.1f} B/id (dict {dict_bytes:5.1f} B/id)")


def main() -> None:
    rng = np.random.default_rng(0)
    losses = rng.random(N).astype(np.float32)
    dense_ids = rng.permutation(N)  # one epoch over a dense range: every id once
    sparse_ids = rng.choice(2**62, N, replace=False).astype(np.int64) - 2**61
    for name, ids, num_ids in (("dense 0..N-1", dense_ids, N), ("arbitrary int64", sparse_ids, None)):
        print(compare(name, ids, losses, num_ids), flush=True)
    miner = HardMiner(None, num_samples=N)
    ids, ls = dense_ids[:BATCH], losses[:BATCH]
    reps = 2_000
    t = time.perf_counter()
    for _ in range(reps):
        miner.record(ids, ls)
    per_call = (time.perf_counter() - t) / reps
    print(f"HardMiner.record of {BATCH} ids: {per_call * 1e6:.1f} us per call", flush=True)


if __name__ == "__main__":
    main()
