"""``miner.end_epoch`` across 2 gloo ranks with 1M (id, loss) pairs in all: gather time and whole end_epoch.

    python benchmarks/bench_gather.py [--pairs 1000000] [--repeats 3]

Spawns 2 CPU processes (gloo). Target: the gather under 1 s.
"""

from __future__ import annotations

import argparse
import os
import socket
import time

import numpy as np
import torch.distributed as dist
import torch.multiprocessing as mp


def _run(rank: int, world: int, port: int, pairs: int, repeats: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    from hardmine import HardMiner, distributed

    n = pairs // world
    rng = np.random.default_rng(rank)
    ids = rng.permutation(pairs)[:n].astype(np.int64)
    losses = rng.random(n)
    gathers, ends = [], []
    for epoch in range(repeats):
        distributed.barrier()
        t0 = time.perf_counter()
        out = distributed.all_gather_concat([ids, losses, ids])
        gathers.append(time.perf_counter() - t0)
        assert out[0].size == n * world
        miner = HardMiner(
            {"trigger": {"kind": "epoch", "start_epoch": 0}, "select": {"kind": "top_k", "k": 1000}},
            num_samples=pairs,
        )
        miner.record(ids, losses, indices=ids)
        distributed.barrier()
        t0 = time.perf_counter()
        event = miner.end_epoch(epoch)
        ends.append(time.perf_counter() - t0)
        assert event.num_observed == n * world
    if rank == 0:
        print(
            f"gather of {pairs:,} (id, loss, index) triples over {world} gloo ranks: "
            f"median {np.median(gathers):.3f} s (max {max(gathers):.3f} s)"
        )
        print(
            f"whole miner.end_epoch (gather + ledger + top-k + plan of {pairs:,}): "
            f"median {np.median(ends):.3f} s (max {max(ends):.3f} s)"
        )
        print("target: gather < 1 s ->", "PASS" if np.median(gathers) < 1.0 else "FAIL")
    dist.destroy_process_group()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=1_000_000)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_run, args=(2, port, a.pairs, a.repeats), nprocs=2, join=True)


if __name__ == "__main__":
    main()
