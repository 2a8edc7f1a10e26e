"""Run the mining-quality benchmark: variant x task x noise x seed x learning rate, at equal steps.

    python -m benchmarks.quality                       # held-out seeds: the numbers in docs/benchmarks.md
    python -m benchmarks.quality --split tune          # the seeds the defaults were chosen on
    python -m benchmarks.quality --tasks digits_lt --variants uniform,new_defaults --seeds 2

Seeds: 5 per task, 10 on digits_lt (its rare-class recall moves 2-7 points between seeds, and its targets ask
to resolve 1 point); ``--seeds`` sets one count for every task. A target whose verdict lies within one standard
error of its threshold, on either side, is run again on more seeds (``--confirm-seeds``, 30 a task): its two
cells only, each at the learning rate chosen on the first seeds (``report.confirm_jobs``).

Writes ``results.json`` (every run), ``confirm.json`` (the confirmation runs), ``results.md`` (tables) and
``quality.png`` into ``--out`` (default ``benchmarks/quality/results``).
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

from benchmarks.quality.report import confirm_jobs, report  # noqa: E402
from benchmarks.quality.task import TASKS, make_task  # noqa: E402
from benchmarks.quality.variants import all_variants  # noqa: E402

NOISES = (0.0, 0.2, 0.4)
LRS = {"default": (3e-4, 1e-3, 3e-3), "tokens_lt": (3e-3, 1e-2, 3e-2)}  # Adam on the MLPs; AdamW (HF)
SPLITS = {"tune": 0, "heldout": 100}  # first seed of each split: defaults were chosen on "tune" only
SEEDS = {"default": 5, "digits_lt": 10}
CONFIRM_SEEDS = 30  # seeds per task for a verdict within ±1 SE of its threshold (report.confirm_jobs)
HF_TASK = "tokens_lt"

Job = tuple[str, str, float, int, float]  # variant, task, noise, seed, lr


def task_seeds(tasks: Sequence[str], first: int, count: int | None = None) -> dict[str, range]:
    """Each task's seeds from ``first``: ``count`` of them, or the task's own number (:data:`SEEDS`)."""
    return {t: range(first, first + (count or SEEDS.get(t, SEEDS["default"]))) for t in tasks}


def _init_worker(hf: bool) -> None:
    """Set a pool worker up once: the imports its runs need, then ``gc.freeze()``, so that the imports'
    long-lived objects (transformers' above all) are not walked by every collection again. accelerate's
    ``free_memory`` calls ``gc.collect()`` at the end of each ``Trainer.train``: without the freeze that took a
    third of a token-task run. Collection order does not touch the numbers: runs are unchanged."""
    import gc

    if hf:
        import accelerate  # noqa: F401
        import datasets  # noqa: F401
        import transformers.models.qwen3.modeling_qwen3  # noqa: F401
        from transformers import Trainer  # noqa: F401

        import benchmarks.quality.token_task  # noqa: F401
        import hardmine.integrations.hf  # noqa: F401
    gc.freeze()


def _one(job: Job) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    variant, kind, noise, seed, lr = job
    t = time.perf_counter()
    v = all_variants()[variant]
    if kind == HF_TASK:
        from benchmarks.quality.token_task import train_tokens

        res: Any = train_tokens(v, seed, noise, lr)
    else:
        from benchmarks.quality.train import SETTINGS, train

        task = make_task(kind, seed, noise)
        res = train(task, seed, v.build(task, seed), lr, SETTINGS[kind])
    return {"variant": variant, "task": kind, "noise": noise, "seed": seed, "lr": lr,
            "seconds": time.perf_counter() - t, **asdict(res)}


def run(jobs: Sequence[Job], workers: int) -> list[dict[str, Any]]:
    # slow jobs first, so that the pool does not end on one long straggler
    order = sorted(jobs, key=lambda j: j[1] != HF_TASK)
    hf = any(j[1] == HF_TASK for j in order)
    if workers <= 1:
        return [_one(j) for j in order]
    with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(hf,)) as pool:
        return list(pool.map(_one, order, chunksize=1))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__.splitlines()[0])
    p.add_argument("--split", choices=sorted(SPLITS), default="heldout",
                   help="heldout (default): seeds 100..; tune: seeds 0.. (the ones defaults were chosen on)")
    p.add_argument("--seeds", type=int, default=None, help="seeds per task (default: 5, digits_lt 10)")
    p.add_argument("--first-seed", type=int, default=None, help="overrides --split")
    p.add_argument("--variants", default="uniform,class_balanced,rfs,old_defaults,new_defaults,rfs_prior")
    p.add_argument("--tasks", default=",".join((*TASKS, HF_TASK)))
    p.add_argument("--noise", default=",".join(str(n) for n in NOISES))
    p.add_argument("--hf-noise", default="0.0,0.2", help="noise levels of the token task (it is the slow one)")
    p.add_argument("--lrs", default=None, help="comma-separated; default: 3e-4,1e-3,3e-3 (token task: 3e-3,1e-2,3e-2)")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--confirm-seeds", type=int, default=CONFIRM_SEEDS,
                   help=f"seeds per task on which verdicts within ±1 SE are run again (default {CONFIRM_SEEDS}; "
                        "0: no confirmation)")
    a = p.parse_args(argv)
    known = all_variants()
    variants = a.variants.split(",")
    bad = [v for v in variants if v not in known]
    if bad:
        p.error(f"unknown variants {bad}; choose from {sorted(known)}")
    if "uniform" not in variants:
        variants.insert(0, "uniform")  # the baseline every delta is measured against
    tasks = a.tasks.split(",")
    bad = [t for t in tasks if t not in (*TASKS, HF_TASK)]
    if bad:
        p.error(f"unknown tasks {bad}; choose from {[*TASKS, HF_TASK]}")
    first = SPLITS[a.split] if a.first_seed is None else a.first_seed
    seeds = task_seeds(tasks, first, a.seeds)
    lrs = {t: [float(x) for x in a.lrs.split(",")] if a.lrs else list(LRS.get(t, LRS["default"])) for t in tasks}
    noise = {t: [float(x) for x in (a.hf_noise if t == HF_TASK else a.noise).split(",")] for t in tasks}
    runnable = {t: [v for v in variants if t != HF_TASK or known[v].config is not None or known[v].weights is not None
                    or v == "uniform"] for t in tasks}  # prototype guards are not configs: MLP tasks only
    jobs = [(v, t, n, s, lr) for t in tasks for n in noise[t] for s in seeds[t] for v in runnable[t] for lr in lrs[t]]
    t0 = time.perf_counter()
    rows = run(jobs, a.jobs)
    more_seeds = {t: range(seeds[t].stop, seeds[t].start + a.confirm_seeds) for t in tasks}
    more = run(confirm_jobs(rows, more_seeds), a.jobs) if a.confirm_seeds else []
    wall = time.perf_counter() - t0
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    (out / "confirm.json").write_text(json.dumps(more, indent=1))
    grids = "; ".join(f"{t}: seeds {seeds[t].start}-{seeds[t].stop - 1}, learning rates {lrs[t]}" for t in tasks)
    extra = f" (+{len(more)} on seeds up to {max(r.stop for r in more_seeds.values()) - 1} for marginal verdicts)" \
        if more else ""
    md = report(rows, variants, f"{grids}; {len(rows)} runs{extra} in {wall:.0f} s with {a.jobs} worker(s)", more)
    (out / "results.md").write_text(md)
    print(md)
    if not a.no_plot:
        from benchmarks.quality.plot import plot

        plot(rows, variants, out / "quality.png")
    print(f"{len(rows)} runs in {wall:.0f} s; results in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
