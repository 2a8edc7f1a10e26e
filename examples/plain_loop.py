"""Hard-sample mining in a plain PyTorch loop: a small long-tail classification task.

Each class has a common mode (most samples) and a rare mode (few samples, elsewhere in feature space).
Uniform sampling under-fits the rare modes; HardMiner finds them by their loss after a couple of epochs
and draws them more often, with the epoch length unchanged. Runs in seconds on 2 CPU cores:

    python examples/plain_loop.py            # or: make demo
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

import hardmine as hm


class LongTail(Dataset):
    """Gaussian blobs: per class one common mode and one rare mode; items carry their index as sample_id."""

    def __init__(self, n: int, *, classes: int = 8, dim: int = 16, rare_share: float = 0.04, seed: int = 0,
                 centers: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        rng = np.random.default_rng(seed)
        if centers is None:  # a rare mode sits close to the common mode of the next class: hard, learnable
            common = rng.normal(0, 1.5, (classes, dim))
            centers = (common, np.roll(common, -1, axis=0) + rng.normal(0, 1.0, (classes, dim)))
        self.centers = centers
        self.y = rng.integers(0, classes, n)
        self.rare = rng.random(n) < rare_share
        mode = np.where(self.rare[:, None], centers[1][self.y], centers[0][self.y])
        self.x = (mode + rng.normal(0, 1.1, (n, dim))).astype(np.float32)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict:
        return {"x": torch.from_numpy(self.x[i]), "y": int(self.y[i]), "sample_id": i}


def accuracy(model: nn.Module, ds: LongTail) -> tuple[float, float]:
    with torch.no_grad():
        pred = model(torch.from_numpy(ds.x)).argmax(1).numpy()
    hit = pred == ds.y
    return float(hit[~ds.rare].mean()), float(hit[ds.rare].mean())


def train(use_mining: bool, epochs: int, seed: int) -> list[tuple[float, float]]:
    torch.manual_seed(seed)
    train_ds = LongTail(6000, seed=seed)
    test_ds = LongTail(4000, seed=seed + 1000, centers=train_ds.centers)
    cfg = hm.HardMiningConfig.model_validate({
        "enabled": use_mining,
        "seed": seed,
        "trigger": {"kind": "epoch", "start_epoch": 1},
    })
    miner = hm.HardMiner(cfg, dataset=train_ds)
    loader = DataLoader(train_ds, batch_size=64, sampler=miner.sampler)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    curve = []
    for epoch in range(epochs):
        miner.sampler.set_epoch(epoch)
        for batch in loader:
            per_sample = nn.functional.cross_entropy(model(batch["x"]), batch["y"], reduction="none")
            per_sample.mean().backward()
            opt.step()
            opt.zero_grad()
            miner.record(batch["sample_id"], per_sample.detach())  # one line per step
        event = miner.end_epoch(epoch)  # gathers, scores, selects, re-plans the next epoch
        common, rare = accuracy(model, test_ds)
        curve.append((common, rare))
        if use_mining:
            mined_rare = float(train_ds.rare[miner.hard_ids].mean()) if miner.hard_ids.size else 0.0
            ratio = "" if event.draw_ratio is None else f"  drawn {event.draw_ratio:.1f}x"
            print(f"  epoch {epoch}: hard set {event.num_hard:4d} (rare share {mined_rare:4.0%}){ratio:>14}  "
                  f"test acc common {common:.3f}  rare {rare:.3f}")
        else:
            print(f"  epoch {epoch}: {'uniform':>44}  test acc common {common:.3f}  rare {rare:.3f}")
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(2)
    print("uniform sampling (mining disabled: the sampler is a plain permutation)")
    base = train(False, args.epochs, args.seed)
    print("hard-sample mining with the defaults (top 15% by EMA loss drawn 4x as often, noise guards on), "
          "from the end of epoch 1")
    mined = train(True, args.epochs, args.seed)
    for label, (b, m) in (("final epoch", (base[-1], mined[-1])),
                          ("mean of epochs 2+", (np.mean(base[2:], axis=0), np.mean(mined[2:], axis=0)))):
        print(f"{label:>17}  uniform: common {b[0]:.3f} rare {b[1]:.3f}   mining: common {m[0]:.3f} rare {m[1]:.3f}"
              f"   (rare {100 * (m[1] - b[1]):+.1f} points, common {100 * (m[0] - b[0]):+.1f} points)")


if __name__ == "__main__":
    main()
