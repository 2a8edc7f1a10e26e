"""Plot of the quality benchmark: Δ accuracy vs uniform per subset, noise level and variant."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SHOWN = ("naive_x4", "no_guard", "default", "default_x4", "tail10", "mixture")


def plot(summary: dict[tuple[str, float, str], dict[str, tuple[float, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(k[0] for k in summary))
    noises = sorted({k[1] for k in summary})
    variants = [v for v in SHOWN if any(k[2] == v for k in summary)]
    fig, axes = plt.subplots(len(tasks), 2, figsize=(11, 3.6 * len(tasks)), squeeze=False, sharey="row")
    width = 0.8 / max(len(variants), 1)
    for row, kind in enumerate(tasks):
        for col, subset in enumerate(("common", "rare")):
            ax = axes[row][col]
            for i, v in enumerate(variants):
                means, stds = [], []
                for n in noises:
                    s, b = summary.get((kind, n, v)), summary.get((kind, n, "uniform"))
                    means.append(s[subset][0] - b[subset][0] if s and b else np.nan)
                    stds.append(s[subset][1] if s else 0.0)
                ax.bar(np.arange(len(noises)) + (i - (len(variants) - 1) / 2) * width, means, width,
                       yerr=stds, capsize=2, label=v, edgecolor="black" if v == "default" else None)
            ax.axhline(0, color="black", lw=0.8)
            ax.axhline(-1, color="grey", lw=0.6, ls="--")
            ax.set_xticks(range(len(noises)), [f"{int(n * 100)}% noise" for n in noises])
            ax.set_title(f"{kind}: {subset} subset")
            ax.set_ylabel("Δ accuracy vs uniform (points)")
    axes[0][0].legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
