"""The ``hardmine report --plot`` figure (matplotlib, Agg backend; imported only when a plot is asked for).

Four panels from a run's history: the score distribution at mining epochs with the cut marked, the
hard-set size and its churn over epochs, how many times each sample is drawn in one epoch before and after
mining, and the share of each epoch's draws per source (or mined vs the rest).
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display needed; set before pyplot is imported

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from hardmine._report import epoch_rows  # noqa: E402
from hardmine.event import MiningEvent  # noqa: E402
from hardmine.run_record import RunRecord  # noqa: E402

_MAX_CURVES = 4  # score distributions drawn: more epochs are thinned evenly, the first and last kept
_WAITING, _MINING, _CHURN = "#b0b0b0", "#1f77b4", "#d62728"


def _thin(events: list[MiningEvent], k: int) -> list[MiningEvent]:
    if len(events) <= k:
        return events
    pick = np.unique(np.linspace(0, len(events) - 1, k).round().astype(int))
    return [events[i] for i in pick]


def _titled(ax: Any, title: str, xlabel: str, events: list[MiningEvent]) -> bool:
    """Title and label a panel; say so and return False when there is no mining epoch to draw."""
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("samples")
    if not events:
        ax.text(0.5, 0.5, "no mining epoch yet", ha="center", va="center", transform=ax.transAxes)
    return bool(events)


def _scores_panel(ax: Any, history: list[MiningEvent]) -> None:
    mined = [e for e in history if e.score_hist.get("counts")]
    if not _titled(ax, "Score distribution of eligible samples (dashed: cut)", "score (aggregated per-sample loss)",
                   mined):
        return
    shown = _thin(mined, _MAX_CURVES)
    colors = plt.get_cmap("viridis")(np.linspace(0.0, 0.85, len(shown)))
    for i, (e, c) in enumerate(zip(shown, colors)):
        counts = np.asarray(e.score_hist["counts"], dtype=float)
        edges = np.asarray(e.score_hist["edges"], dtype=float)
        last = i == len(shown) - 1
        cut = "" if e.score_cut is None else f", cut {e.score_cut:.3g}"
        ax.stairs(counts, edges, color=c, linewidth=2.0 if last else 1.2, alpha=1.0 if last else 0.7,
                  fill=False, label=f"epoch {e.epoch}: {e.num_hard} mined{cut}")
        if e.score_cut is not None:
            ax.axvline(e.score_cut, color=c, linestyle="--", linewidth=1.4 if last else 0.9)
    top = max(max(e.score_hist["counts"]) for e in shown)
    if top > 50:  # loss tails are long: a log scale shows the few samples far right, symlog keeps zeros
        ax.set_yscale("symlog", linthresh=1.0)
        ax.set_ylim(0, top * 4)  # headroom for the legend
        ax.set_ylabel("samples (log scale above 1)")
    else:
        ax.set_ylim(0, top * 1.6)
        ax.set_ylabel("samples")
    ax.legend(fontsize=8, title="end of", title_fontsize=8, loc="upper right")


def _size_panel(ax: Any, history: list[MiningEvent]) -> None:
    rows = epoch_rows(history)
    epochs = [r.epoch for r in rows]
    colors = [_MINING if r.status in ("fired", "active") else _WAITING for r in rows]
    ax.bar(epochs, [r.num_hard for r in rows], color=colors, width=0.7)
    ax.set_title("Hard-set size and churn")
    ax.set_xlabel("epoch (end of)")
    ax.set_ylabel("mined samples")
    fired = [r.epoch for r in rows if r.status == "fired"]
    handles: list[Any] = [Patch(color=_MINING)]
    labels = ["hard-set size"]
    for f in fired:
        line = ax.axvline(f - 0.5, color="black", linestyle=":", linewidth=1.0)
    if fired:
        handles.append(line)
        labels.append("trigger fired")
    churn = [(r.epoch, 100.0 * r.churn) for r in rows if r.churn is not None]
    ax2 = ax.twinx()
    ax2.set_ylabel("churn: new ids in the set (%)", color=_CHURN)
    ax2.set_ylim(0, 105)
    ax2.tick_params(axis="y", colors=_CHURN)
    if churn:
        (ch,) = ax2.plot(*zip(*churn), color=_CHURN, marker="o", linewidth=1.5, label="churn")
        handles.append(ch)
        labels.append("churn (% new vs previous epoch)")
    ax.set_xticks(epochs if len(epochs) <= 20 else epochs[:: max(1, len(epochs) // 10)])
    ax.set_ylim(0, 1.3 * max([r.num_hard for r in rows] + [1]))  # headroom for the legend
    ax2.set_ylim(0, 130)
    ax.legend(handles, labels, fontsize=8, loc="upper center", ncol=3)


def _draws_panel(ax: Any, history: list[MiningEvent]) -> None:
    mined = [e for e in history if e.triggered and e.num_hard and e.draws_hist]
    if not _titled(ax, "Draws per sample in one epoch", "times a sample is drawn in the epoch", mined):
        return
    after = mined[-1]
    before_events = [e for e in history if not e.triggered and e.draws_hist]
    before = list(before_events[-1].draws_hist) if before_events else [0, int(sum(after.draws_hist))]
    n = max(len(before), len(after.draws_hist))
    x = np.arange(n)
    b = np.pad(np.asarray(before, dtype=float), (0, n - len(before)))
    a = np.pad(np.asarray(after.draws_hist, dtype=float), (0, n - len(after.draws_hist)))
    ax.bar(x - 0.2, b, width=0.4, color=_WAITING, label="before mining (uniform)")
    ratio = "" if after.draw_ratio is None else f"; mined drawn {after.draw_ratio:.2f}x as often"
    ax.bar(x + 0.2, a, width=0.4, color=_MINING, label=f"after epoch {after.epoch}{ratio}")
    ax.set_xticks(x)
    ax.legend(fontsize=8)


def _shares_panel(ax: Any, history: list[MiningEvent]) -> None:
    rows = epoch_rows(history)
    epochs = np.array([r.epoch for r in rows])
    sources = list(dict.fromkeys(k for r in rows for k in r.per_source))
    bottom = np.zeros(len(rows))
    if sources:
        ax.set_title("Share of next epoch's draws per source")
        cmap = plt.get_cmap("tab10")
        for i, s in enumerate(sources):
            totals = np.array([max(sum(r.per_source.values()), 1) for r in rows], dtype=float)
            share = 100.0 * np.array([r.per_source.get(s, 0) for r in rows], dtype=float) / totals
            ax.bar(epochs, share, bottom=bottom, width=0.7, color=cmap(i % 10), label=s)
            bottom += share
        mined = [(r.epoch, 100.0 * r.mined_draw_share) for r in rows if r.mined_draw_share is not None]
        if mined:
            ax.plot(*zip(*mined), color="black", marker="o", linewidth=1.2, label="mined samples")
    else:
        ax.set_title("Share of next epoch's draws: mined vs other samples")
        share = np.array([0.0 if r.mined_draw_share is None else 100.0 * r.mined_draw_share for r in rows])
        ax.bar(epochs, share, width=0.7, color=_MINING, label="mined samples")
        ax.bar(epochs, 100.0 - share, bottom=share, width=0.7, color=_WAITING, label="other samples")
        prior = [(r.epoch, 100.0 * r.prior_boost_share) for r in rows if r.prior_boost_share is not None]
        if prior:
            ax.plot(*zip(*prior), color="black", marker="o", linewidth=1.2, label="prior's share of the boost")
    ax.set_xlabel("epoch (end of)")
    ax.set_ylabel("share of draws (%)")
    ax.set_ylim(0, 120)  # headroom for the legend
    ax.set_yticks(range(0, 101, 20))
    ax.set_xticks(epochs if len(epochs) <= 20 else epochs[:: max(1, len(epochs) // 10)])
    ax.legend(fontsize=8, loc="upper center", ncol=min(len(sources) + 1, 5) if sources else 2)


def plot_report(run: RunRecord, path: str | PathLike[str], *, title: str | None = None) -> Path:
    """Draw the four-panel report of ``run.history`` to ``path`` (PNG) and return the path."""
    fig, axes = plt.subplots(2, 2, figsize=(12, 8), dpi=90)
    try:
        history = list(run.history)
        _scores_panel(axes[0, 0], history)
        _size_panel(axes[0, 1], history)
        _draws_panel(axes[1, 0], history)
        _shares_panel(axes[1, 1], history)
        fired = next((e.epoch for e in history if e.fired), None)
        status = f"mining since epoch {fired}" if fired is not None else "mining never triggered"
        fig.suptitle(f"hardmine report{': ' + title if title else ''} ({len(history)} epochs, {status}, "
                     f"{run.hard_ids.size} samples mined now)", fontsize=12)
        fig.tight_layout()
        out = Path(path)
        fig.savefig(out, format="png")
    finally:
        plt.close(fig)
    return out
