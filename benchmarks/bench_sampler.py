"""Weighted epoch plan vs the floor `torch.randperm(N).tolist()` and `WeightedRandomSampler`.

Targets (issue 2): N = 10M, 10% weighted 3x, max_repeats 4, set_weights + full iteration <= 2x the floor;
N = 50M works within 3x the floor at that N (WeightedRandomSampler refuses more than 2^24 categories).
Run: python benchmarks/bench_sampler.py [--sizes 10000000 50000000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import WeightedRandomSampler

sys.path.insert(0, str(Path(__file__).parent))
from _timing import best_of  # noqa: E402

from hardmine import HardMiningSampler  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000_000, 50_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    for n in args.sizes:
        print(bench(n, args.repeats), flush=True)


def bench(n: int, repeats: int) -> str:
    """One line of figures for a dataset of ``n`` samples, 10% of them weighted 3x."""
    rng = np.random.default_rng(0)
    weights = np.ones(n)
    weights[rng.choice(n, n // 10, replace=False)] = 3.0
    sampler = HardMiningSampler(n, seed=0, max_repeats=4)
    epochs = iter(range(10**9))

    def floor() -> None:
        torch.randperm(n).tolist()

    def ours() -> None:
        sampler.set_weights(weights)
        sampler.set_epoch(next(epochs))
        for _ in sampler:
            pass

    t_floor = best_of(floor, repeats)
    t_ours = best_of(ours, repeats)
    line = f"N={n:>11,}  floor randperm+tolist {t_floor:6.2f}s  HardMiningSampler {t_ours:6.2f}s  " \
           f"ratio {t_ours / t_floor:4.2f}x"
    if n <= 2**24:
        w = torch.from_numpy(weights)
        t_wrs = best_of(lambda: list(WeightedRandomSampler(w, n, replacement=True)), 1)
        return line + f"  WeightedRandomSampler {t_wrs:6.2f}s ({t_wrs / t_ours:4.1f}x slower than ours)"
    try:
        list(WeightedRandomSampler(torch.ones(n, dtype=torch.float64), 1))
        return line + "  WeightedRandomSampler: ran"
    except RuntimeError as e:
        return line + f"  WeightedRandomSampler refuses: {str(e).splitlines()[0][:60]}"


if __name__ == "__main__":
    main()
