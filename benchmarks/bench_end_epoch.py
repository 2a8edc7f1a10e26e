"""HardMiner.end_epoch on one epoch of 10M dense ids (fold + select + plan) vs the floor randperm(N).tolist().

Target (issue 2): fold + select + plan at most 3x the floor. The epoch's (id, loss) pairs are recorded
beforehand in 1,024-id steps, as a training loop would; the timed part is end_epoch alone. Printed with
and without the default noise guards, for the first epoch (every id new) and the next (steady state).
Run: python benchmarks/bench_end_epoch.py [--n 10000000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _timing import best_of  # noqa: E402

from hardmine import HardMiner  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    n = args.n
    torch.set_num_threads(2)
    t_floor = best_of(lambda: torch.randperm(n).tolist(), args.repeats)
    for guard in (None, {}):
        first, second = time_end_epoch(n, args.repeats, guard)
        name = "no guard (fold + select + plan)" if guard is None else "default guards (+ cartography, staleness)"
        print(f"N={n:,} {name:>44}: floor randperm+tolist {t_floor:.2f}s  end_epoch first {first:.2f}s "
              f"({first / t_floor:.2f}x)  steady state {second:.2f}s ({second / t_floor:.2f}x)", flush=True)


def time_end_epoch(n: int, repeats: int, guard: dict | None) -> tuple[float, float]:
    """Best-of-``repeats`` seconds of the first end_epoch (empty ledger) and of the next one."""
    rng = np.random.default_rng(0)
    losses = rng.random(n).astype(np.float32)
    cfg = {"trigger": {"kind": "epoch", "start_epoch": 0}, "select": {"kind": "top_k", "k": 0.1},
           "resample": {"hard_weight": 3.0, "max_repeats": 4}, "guard": guard}
    best = [float("inf"), float("inf")]
    for _ in range(repeats):
        miner = HardMiner(cfg, num_samples=n)
        for epoch in range(2):
            miner.sampler.set_epoch(epoch)
            order = rng.permutation(n)
            for k in range(0, n, 1024):
                miner.record(order[k : k + 1024], losses[order[k : k + 1024]])
            t = time.perf_counter()
            event = miner.end_epoch(epoch)
            best[epoch] = min(best[epoch], time.perf_counter() - t)
            assert event.num_hard == n // 10
    return best[0], best[1]


if __name__ == "__main__":
    main()
