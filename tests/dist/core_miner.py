"""Run under `torch.distributed.run --nproc_per_node=2`: each rank records its half of every epoch."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch.distributed as dist

import hardmine as hm


def main(out: Path) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    logging.basicConfig(level=logging.INFO, format=f"rank{rank}: %(message)s")
    n = 101
    miner = hm.HardMiner({"trigger": {"kind": "epoch", "start_epoch": 1}, "select": {"kind": "top_k", "k": 10},
                          "resample": {"hard_weight": 3.0, "max_repeats": 4}, "guard": None},
                         num_samples=n, seed=5)
    difficulty = np.linspace(0.0, 2.0, n)
    events = []
    for epoch in range(3):
        miner.sampler.set_epoch(epoch)
        stream = np.array(list(miner.sampler))
        mine = stream[rank::world]  # what accelerate's BatchSamplerShard would give this rank (batch 1)
        for chunk in np.array_split(mine, 7):
            miner.record(chunk, difficulty[chunk] + 0.01 * rank)
        events.append(miner.end_epoch(epoch).to_dict())
    ids, scores = miner.ledger.scores()
    result = {"weights": miner.sampler.weights.tolist(), "hard": miner.hard_ids.tolist(), "ids": ids.tolist(),
              "counts": miner.ledger.stats().counts.tolist(), "next": list(miner.sampler), "events": events}
    (out / f"rank{rank}.json").write_text(json.dumps(result))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
