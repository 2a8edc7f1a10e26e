"""The quality benchmark's tables: each method at its best learning rate, paired differences vs uniform,
and the issue-12 targets checked on the numbers of this run."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.quality.stats import Cell, Paired, best_cells, paired

__all__ = ["CONFIRM_WITHIN", "Check", "confirm_jobs", "confirmed", "report", "targets"]

CONFIRM_WITHIN = 1.0  # a verdict this many standard errors or less from its threshold is run on more seeds

FREQUENCY_BASELINES = ("class_balanced", "rfs")
CATEGORY_TASKS = ("digits_lt",)  # the issue-12 target task for "beat RFS and class-balanced"
SUBPOP_TASKS = ("subpop",)


def _pct(x: float) -> str:
    return "" if math.isnan(x) else f"{100 * x:.0f}"


def results_table(best: dict[tuple[str, float, str], Cell], variants: Sequence[str]) -> str:
    lines: list[str] = []
    for task in dict.fromkeys(k[0] for k in best):
        lines += [f"\n**{task}** (points; Δ = paired difference vs uniform at each one's best LR, ± SE)\n",
                  "| noise | variant | best LR | balanced | Δ balanced | Δ common | Δ rare | mined: noisy % | "
                  "mined: clean rare % | prior share of boost % | flagged: noisy / clean rare / clean common % |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for noise in sorted({k[1] for k in best if k[0] == task}):
            base = best.get((task, noise, "uniform"))
            for v in variants:
                c = best.get((task, noise, v))
                if c is None or base is None:
                    continue
                d = [str(paired(c, base, m)) if v != "uniform" else "" for m in ("balanced", "common", "rare")]
                lines.append(f"| {int(noise * 100)}% | {v} | {c.lr:g} | {c.mean('balanced'):.1f} | " + " | ".join(d)
                             + f" | {_pct(c.extra['hard_noisy'])} | {_pct(c.extra['hard_rare'])} | "
                               f"{_pct(c.extra['prior_boost_share'])} | " + " / ".join(
                                   _pct(c.extra[k]) for k in ("flag_noisy", "flag_clean_rare", "flag_clean_common"))
                             + " |")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Check:
    """One issue-12 target on this run's numbers, and how far it is from its threshold in standard errors (a
    distance under 1 is inside the seed-to-seed noise of the run: more seeds could turn the verdict)."""

    target: str
    measured: Paired
    threshold: float
    strict: bool = False  # ">" rather than ">="
    cells: tuple[tuple[str, float, str], ...] = ()  # the two (task, noise, variant) cells paired, a - b
    metric: str = "balanced"

    @property
    def marginal(self) -> bool:
        """Inside :data:`CONFIRM_WITHIN` standard errors of the threshold, on either side."""
        return abs(self.margin) <= CONFIRM_WITHIN

    @property
    def holds(self) -> bool:
        """The verdict, up to float rounding: accuracies are whole test samples, so a mean of differences can
        land exactly on a threshold, and summing them in floats must not decide which side it is on."""
        m, eps = self.measured.mean, 1e-9
        return m > self.threshold + eps if self.strict else m >= self.threshold - eps

    @property
    def margin(self) -> float:
        """``(measured - threshold) / SE`` (nan with a single seed)."""
        se = self.measured.se
        return (self.measured.mean - self.threshold) / se if se > 0 else math.nan


def targets(best: dict[tuple[str, float, str], Cell], new: str = "new_defaults") -> list[Check]:
    """Every issue-12 target this run has the cells for."""
    out: list[Check] = []
    for task, noise, v in sorted(best):
        if v != new:
            continue
        c, base = best[(task, noise, v)], best.get((task, noise, "uniform"))
        if base is None:
            continue
        tag = f"{task} {int(noise * 100)}%"
        vs_base = ((task, noise, v), (task, noise, "uniform"))
        if task in CATEGORY_TASKS:
            rivals = [best[(task, noise, b)] for b in FREQUENCY_BASELINES if (task, noise, b) in best]
            if rivals:
                rival = max(rivals, key=lambda r: r.mean("balanced"))
                name = next(b for b in FREQUENCY_BASELINES if best.get((task, noise, b)) is rival)
                out.append(Check(f"{tag}: new >= better of RFS/CB ({name}) + 1", paired(c, rival), 1.0,
                                 cells=((task, noise, v), (task, noise, name))))
        if task in SUBPOP_TASKS:
            if noise >= 0.4:
                out.append(Check(f"{tag}: vs uniform > -0.5", paired(c, base), -0.5, strict=True, cells=vs_base))
            else:
                out.append(Check(f"{tag}: vs uniform >= +2", paired(c, base), 2.0, cells=vs_base))
        if noise == 0.0:
            out.append(Check(f"{tag}: common-class accuracy vs uniform >= -1", paired(c, base, "common"), -1.0,
                             cells=vs_base, metric="common"))
    return out


def confirm_jobs(rows: Sequence[dict[str, Any]], seeds: dict[str, range]) -> list[tuple[str, str, float, int, float]]:
    """The runs that settle this run's marginal verdicts: each cell of a marginal check, at the learning rate this
    run chose for it, on ``seeds[task]`` (seeds no run here used). Choosing the rate on the first seeds and
    measuring it on new ones keeps the choice out of the confirmation."""
    best = best_cells(rows)
    cells = dict.fromkeys(cell for c in targets(best) if c.marginal for cell in c.cells)
    return [(v, task, noise, s, best[(task, noise, v)].lr) for task, noise, v in cells for s in seeds[task]]


def confirmed(rows: Sequence[dict[str, Any]], more: Sequence[dict[str, Any]]) -> list[tuple[Check, Check]]:
    """Each marginal check of ``rows``, and the same check on its cells' seeds of ``rows`` and ``more`` together
    (each cell at the learning rate ``rows`` chose for it)."""
    best = best_cells(rows)
    out = []
    for c in targets(best):
        if not c.marginal:
            continue
        keep = {(task, noise, v, best[(task, noise, v)].lr) for task, noise, v in c.cells}
        both = best_cells([r for r in (*rows, *more) if (r["task"], r["noise"], r["variant"], r["lr"]) in keep])
        a, b = (both[cell] for cell in c.cells)
        out.append((c, Check(c.target, paired(a, b, c.metric), c.threshold, c.strict, c.cells, c.metric)))
    return out


def frontier(best: dict[tuple[str, float, str], Cell], variants: Sequence[str]) -> str:
    """Every target as each variant meets it (the issue's frontier: what each one achieves), with the count of
    targets it holds; empty when fewer than two variants have targets."""
    checks = {v: {c.target: c for c in targets(best, v)} for v in variants if v != "uniform"}
    checks = {v: c for v, c in checks.items() if c}
    if len(checks) < 2:
        return ""
    names = list(dict.fromkeys(t for c in checks.values() for t in c))
    lines = ["| target | " + " | ".join(checks) + " |", "|---|" + "---|" * len(checks)]
    for t in names:
        cells = [f"{c[t].measured}{'' if c[t].holds else ' (no)'}" if t in c else "" for c in checks.values()]
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    held = [f"{sum(x.holds for x in c.values())} of {len(c)}" for c in checks.values()]
    lines.append("| **targets held** | " + " | ".join(held) + " |")
    return "\n".join(lines)


def report(rows: Sequence[dict[str, Any]], variants: Sequence[str], head: str,
           more: Sequence[dict[str, Any]] = ()) -> str:
    """``results.md``: the tables, the targets, the frontier, and (``more``: the runs of :func:`confirm_jobs`) the
    marginal verdicts on more seeds."""
    best = best_cells(rows)
    lines = [f"{head}\n", results_table(best, variants)]
    found = targets(best)
    if found:
        lines += ["\n**Targets (new defaults)**\n", "| target | measured (± SE) | holds | margin (SE) |",
                  "|---|---|---|---|"]
        lines += [f"| {c.target} | {c.measured} | {'yes' if c.holds else '**no**'} | {c.margin:+.1f} |"
                  for c in found]
        lines.append("\nmargin: (measured - threshold) / standard error; within ±1 the verdict is inside the "
                     "seed-to-seed noise of this run.")
    settled = confirmed(rows, more) if more else []
    if settled:
        lines += ["\n**Marginal verdicts on more seeds** (the checks within ±1 SE above, each cell at the learning "
                  "rate chosen on this run's seeds, measured on these and new seeds)\n",
                  "| target | first seeds | all seeds | seeds | holds | margin (SE) |", "|---|---|---|---|---|---|"]
        lines += [f"| {c.target} | {c.measured} | {m.measured} | {m.measured.n} | {'yes' if m.holds else '**no**'} "
                  f"| {m.margin:+.1f} |" for c, m in settled]
    table = frontier(best, variants)
    if table:
        lines += ["\n**The frontier: every variant against the targets** (each column read as if it were the new "
                  "defaults; a frequency baseline measured against the better of the two is at most +0, so it "
                  "never meets the first kind of target)\n", table]
    return "\n".join(lines) + "\n"
