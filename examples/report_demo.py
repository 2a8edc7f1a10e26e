"""Train a tiny classifier with hard-sample mining and save the miner, for ``hardmine report``.

The data has a rare sub-population (hard but learnable) and a few flipped labels (noise), so the report
has something to show. Runs in a few seconds on a CPU:

    python examples/report_demo.py runs/demo/miner.npz
    hardmine report runs/demo/miner.npz --plot runs/demo/report.png --export runs/demo/mined.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import hardmine as hm


def make_data(n: int = 600, seed: int = 0) -> TensorDataset:
    """Two classes on a plane; 6% of class 1 sit in a small far-away cluster; 3% of labels are flipped."""
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(n, generator=g) < 0.5).long()
    x = torch.randn(n, 2, generator=g) * 0.8 + torch.where(y[:, None] == 1, 1.5, -1.5)
    rare = (y == 1) & (torch.rand(n, generator=g) < 0.12)
    x[rare] = torch.randn(int(rare.sum()), 2, generator=g) * 0.3 + torch.tensor([-2.5, 2.5])
    flip = torch.rand(n, generator=g) < 0.03
    y = torch.where(flip, 1 - y, y)
    return TensorDataset(x, y, torch.arange(n))


def train(out: Path, epochs: int = 8, n: int = 600, seed: int = 0) -> hm.HardMiner:
    """Train for ``epochs`` epochs, mining from the end of epoch 1, and save the miner to ``out``."""
    torch.manual_seed(seed)
    ds = make_data(n, seed)
    # the shipped defaults (top 15% of the seen ids, drawn 4x as often, noise guards on), mining from epoch 1
    miner = hm.HardMiner({"seed": seed, "trigger": {"kind": "epoch", "start_epoch": 1}}, num_samples=len(ds))
    model = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    loader = DataLoader(ds, batch_size=32, sampler=miner.sampler)  # the plan lives in the sampler
    for epoch in range(epochs):
        miner.sampler.set_epoch(epoch)
        for x, y, idx in loader:
            losses = nn.functional.cross_entropy(model(x), y, reduction="none")  # one loss per sample
            losses.mean().backward()
            opt.step()
            opt.zero_grad()
            miner.record(idx, losses.detach())
        miner.end_epoch(epoch)
    miner.save(out)
    return miner


if __name__ == "__main__":
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("out", nargs="?", default="runs/demo/miner.npz", help="where to save the miner")
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    train(Path(args.out), epochs=args.epochs)
    print(f"saved {args.out}; now run: hardmine report {args.out} --plot report.png")
