"""Run the mining-quality benchmark: every variant x task x noise level x seed, at equal steps.

    python -m benchmarks.quality               # full run (5 seeds), ~5 min on 2 cores
    python -m benchmarks.quality --seeds 2 --variants uniform,default --tasks subpop

Writes ``results.json`` (every run), ``results.md`` (mean +- std table) and ``quality.png`` into
``--out`` (default ``benchmarks/quality/results``, committed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

from benchmarks.quality.task import TASKS, make_task  # noqa: E402
from benchmarks.quality.variants import VARIANTS  # noqa: E402

NOISES = (0.0, 0.2, 0.4)
SUBSETS = ("overall", "common", "rare")
Summary = dict[tuple[str, float, str], dict[str, tuple[float, float]]]  # (task, noise, variant) -> ...


def _one(job: tuple[str, str, float, int]) -> dict[str, Any]:
    import torch

    from benchmarks.quality.train import train

    torch.set_num_threads(1)
    variant, kind, noise, seed = job
    v = next(v for v in VARIANTS if v.name == variant)
    t = time.perf_counter()
    res = train(make_task(kind, seed, noise), seed, v.mining, v.guards())
    return {"variant": variant, "task": kind, "noise": noise, "seed": seed,
            "seconds": time.perf_counter() - t, **asdict(res)}


def run(variants: Sequence[str], tasks: Sequence[str], noises: Sequence[float], seeds: Sequence[int],
        jobs: int) -> list[dict[str, Any]]:
    grid = [(v, k, n, s) for k in tasks for n in noises for s in seeds for v in variants]
    if jobs <= 1:
        return [_one(j) for j in grid]
    with ProcessPoolExecutor(jobs) as pool:
        return list(pool.map(_one, grid, chunksize=4))


def summarize(rows: list[dict[str, Any]]) -> Summary:
    """(task, noise, variant) -> subset -> (mean, std) in accuracy points."""
    groups: dict[tuple[str, float, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["task"], r["noise"], r["variant"]), []).append(r)
    out = {}
    for key, rs in groups.items():
        out[key] = {s: (100 * float(np.mean([r[s] for r in rs])), 100 * float(np.std([r[s] for r in rs])))
                    for s in (*SUBSETS, "hard_noisy", "hard_rare")}
    return out


def table(summary: Summary, variants: Sequence[str]) -> str:
    lines = []
    for kind in dict.fromkeys(k[0] for k in summary):
        lines += [f"\n**{kind}**\n", "| noise | variant | overall | common | rare | Δcommon | Δrare | "
                  "mined: noisy % | mined: clean rare % |", "|---|---|---|---|---|---|---|---|---|"]
        for noise in sorted({k[1] for k in summary if k[0] == kind}):
            base = summary.get((kind, noise, "uniform"))
            for v in variants:
                s = summary.get((kind, noise, v))
                if s is None:
                    continue
                cells = [f"{s[m][0]:.1f} ± {s[m][1]:.1f}" for m in SUBSETS]
                deltas = [f"{s[m][0] - base[m][0]:+.1f}" if base else "" for m in ("common", "rare")]
                mined = ["" if np.isnan(s[m][0]) else f"{s[m][0]:.0f}" for m in ("hard_noisy", "hard_rare")]
                lines.append(f"| {int(noise * 100)}% | {v} | " + " | ".join(cells + deltas + mined) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed+seeds-1")
    p.add_argument("--variants", default=",".join(v.name for v in VARIANTS))
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--noise", default=",".join(str(n) for n in NOISES))
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    p.add_argument("--no-plot", action="store_true")
    a = p.parse_args(argv)
    variants = a.variants.split(",")
    known = {v.name for v in VARIANTS}
    bad = [v for v in variants if v not in known]
    if bad:
        p.error(f"unknown variants {bad}; choose from {sorted(known)}")
    if "uniform" not in variants:
        variants.insert(0, "uniform")  # the baseline every delta is measured against
    tasks, noises = a.tasks.split(","), [float(x) for x in a.noise.split(",")]
    t = time.perf_counter()
    rows = run(variants, tasks, noises, range(a.first_seed, a.first_seed + a.seeds), a.jobs)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    summary = summarize(rows)
    md = table(summary, variants)
    (out / "results.md").write_text(md)
    print(md)
    if not a.no_plot:
        from benchmarks.quality.plot import plot

        plot(summary, out / "quality.png")
    print(f"{len(rows)} runs in {time.perf_counter() - t:.0f} s; results in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
