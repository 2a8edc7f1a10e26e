"""Plot of the quality benchmark: balanced-accuracy change vs uniform, per task, noise level and variant."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.quality.stats import best_cells, paired


def plot(rows: Sequence[dict[str, Any]], variants: Sequence[str], path: Path) -> None:
    """One panel per task; bars: paired mean difference vs uniform (each at its best LR), whiskers: SE."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    best = best_cells(rows)
    tasks = list(dict.fromkeys(k[0] for k in best))
    shown = [v for v in variants if v != "uniform"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.8), squeeze=False)
    width = 0.8 / max(len(shown), 1)
    for ax, task in zip(axes[0], tasks):
        noises = sorted({k[1] for k in best if k[0] == task})
        for i, v in enumerate(shown):
            means, errs = [], []
            for n in noises:
                c, b = best.get((task, n, v)), best.get((task, n, "uniform"))
                d = paired(c, b) if c and b else None
                means.append(np.nan if d is None else d.mean)
                errs.append(0.0 if d is None else d.se)
            ax.bar(np.arange(len(noises)) + (i - (len(shown) - 1) / 2) * width, means, width, yerr=errs, capsize=2,
                   label=v, edgecolor="black" if v == "new_defaults" else None, linewidth=1.2)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(range(len(noises)), [f"{int(n * 100)}% noise" for n in noises])
        ax.set_title(task)
        ax.set_ylabel("Δ balanced accuracy vs uniform (points)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
