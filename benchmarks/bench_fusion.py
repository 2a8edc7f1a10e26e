"""Fusion epoch build: 1M target + 10M auxiliary samples vs one ``torch.randperm`` over the epoch length.

Run: ``.venv/bin/python benchmarks/bench_fusion.py`` (add ``--quick`` for a 10x smaller run). Prints,
for a uniform epoch and a mined epoch (10% of targets at weight 3, max_repeats 4), the best of 3 times
(``--repeats``) of ``list(sampler)`` for a fresh epoch and of ``torch.randperm(epoch_len).tolist()``,
in the same process. The three are timed in interleaved rounds, so that load from other processes
hits them alike.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch

from hardmine.fusion import FusionDataset, FusionSampler


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="100k target + 1M auxiliary")
    parser.add_argument("--ratio", type=float, default=0.5, help="auxiliary ratio of the target quota")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds; the best of each is shown")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    n_target, n_aux = 1_000_000 // scale, 10_000_000 // scale
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fusion = FusionDataset(targets={"target": range(n_target)},
                               auxiliaries={"aux": (range(n_aux), args.ratio)})
    length = fusion.epoch_length
    uniform_sampler = fusion.make_sampler(seed=0, max_repeats=4)
    mined_sampler = fusion.make_sampler(seed=0, max_repeats=4)
    weights = np.ones(fusion.num_mineable)
    hard = np.random.default_rng(0).choice(fusion.num_mineable, fusion.num_mineable // 10, replace=False)
    weights[hard] = 3.0
    mined_sampler.set_weights(weights)
    epochs = iter(range(10**6))

    def build_epoch(sampler: FusionSampler) -> list[int]:
        sampler.set_epoch(next(epochs))  # a fresh epoch each time: no cached plan
        return list(sampler)

    times: dict[str, list[float]] = {"baseline": [], "uniform": [], "mined": []}
    for _ in range(args.repeats):
        times["baseline"].append(timed(lambda: torch.randperm(length).tolist()))
        times["uniform"].append(timed(lambda: build_epoch(uniform_sampler)))
        times["mined"].append(timed(lambda: build_epoch(mined_sampler)))
    baseline, uniform, mined = (min(times[k]) for k in ("baseline", "uniform", "mined"))
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}; {n_target:,} target + {n_aux:,} "
          f"auxiliary samples, auxiliary ratio {args.ratio}: epoch length {length:,}")
    print(f"torch.randperm(epoch_len).tolist(): {baseline * 1e3:8.1f} ms")
    print(f"fusion epoch, uniform:              {uniform * 1e3:8.1f} ms   ratio {uniform / baseline:.2f}x")
    print(f"fusion epoch, mined (10% at 3x):    {mined * 1e3:8.1f} ms   ratio {mined / baseline:.2f}x")


if __name__ == "__main__":
    main()
