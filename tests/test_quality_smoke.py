"""A one-seed slice of the mining-quality benchmark (benchmarks/quality): the direction of the effects, and
that the runner produces its tables. The numbers themselves come from ``make bench-quality``."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # benchmarks/ is not an installed package
    sys.path.insert(0, str(ROOT))

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from benchmarks.quality.study import cfg  # noqa: E402
from benchmarks.quality.task import make_task  # noqa: E402
from benchmarks.quality.train import SETTINGS, Uniform, mining, train  # noqa: E402
from benchmarks.quality.variants import all_variants  # noqa: E402


def test_guarded_mining_keeps_noise_out_and_unguarded_mining_does_not() -> None:
    torch.set_num_threads(1)
    task = make_task("subpop", seed=0, noise=0.2)
    settings = SETTINGS["subpop"]
    uniform = train(task, 0, Uniform(len(task.y), 0), 1e-3, settings)
    naive = train(task, 0, mining(cfg(hard_weight=4.0, k=0.2, patience=None), None, False)(task, 0), 1e-3, settings)
    guarded = train(task, 0, all_variants()["new_defaults"].build(task, 0), 1e-3, settings)
    assert naive.hard_noisy > 0.5  # the unguarded mined set is mostly mislabeled samples
    assert guarded.hard_noisy < 0.3  # the guard keeps most of them out ...
    assert guarded.excluded.get("hard_to_learn", 0) > 0  # ... and says so
    assert naive.common < uniform.common - 0.02  # noise mining costs the common subset
    assert guarded.balanced > naive.balanced + 0.02


def test_the_prior_composes_with_hardness_on_the_digits_long_tail() -> None:
    torch.set_num_threads(1)
    task = make_task("digits_lt", seed=0, noise=0.0)
    res = train(task, 0, all_variants()["new_defaults"].build(task, 0), 3e-3, SETTINGS["digits_lt"])
    assert 0.0 < res.prior_boost_share < 1.0  # both the prior and hardness boosted draws in the last epoch
    assert res.balanced > 0.8


def test_the_runner_writes_its_tables(tmp_path: Path) -> None:
    from benchmarks.quality.run import main

    assert main(["--tasks", "digits_lt", "--seeds", "2", "--noise", "0.0", "--variants", "uniform,new_defaults",
                 "--lrs", "0.003", "--jobs", "1", "--no-plot", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "results.json").read_text())
    assert {r["variant"] for r in rows} == {"uniform", "new_defaults"} and len(rows) == 4
    md = (tmp_path / "results.md").read_text()
    assert "| 0% | new_defaults | 0.003 |" in md and "common-class accuracy vs uniform" in md
    assert "| margin (SE) |" in md


def test_digits_runs_more_seeds_than_the_other_tasks_unless_told() -> None:
    from benchmarks.quality.run import task_seeds

    seeds = task_seeds(["subpop", "digits_lt", "tokens_lt"], 100)
    assert seeds == {"subpop": range(100, 105), "digits_lt": range(100, 110), "tokens_lt": range(100, 105)}
    assert set(task_seeds(["subpop", "digits_lt"], 0, 2).values()) == {range(0, 2)}


def test_a_target_check_says_how_far_it_is_from_its_threshold_in_standard_errors() -> None:
    from benchmarks.quality.report import Check
    from benchmarks.quality.stats import Paired

    near = Check("subpop 20%: vs uniform >= +2", Paired(1.8, 0.4, 5), 2.0)
    assert not near.holds and abs(near.margin - (-0.5)) < 1e-12  # fails, inside one standard error
    assert Check("x", Paired(2.0, 0.4, 5), 2.0).holds  # ">=": the threshold itself holds ...
    assert not Check("x", Paired(-0.5, 0.4, 5), -0.5, strict=True).holds  # ... but not for ">"
    on_it = math.nextafter(-1.0, -2.0)  # a mean of whole-sample differences that lands on -1, summed in floats
    assert Check("x", Paired(on_it, 0.3, 30), -1.0).holds and not Check("x", Paired(-on_it, 0.3, 30), 1.0,
                                                                          strict=True).holds
    assert not Check("x", Paired(-1.0 - 1e-6, 0.3, 30), -1.0).holds
    assert math.isnan(Check("x", Paired(3.0, math.nan, 1), 2.0).margin)  # one seed: no standard error


def test_the_frontier_table_reads_every_variant_against_every_target() -> None:
    from benchmarks.quality.report import frontier
    from benchmarks.quality.stats import best_cells

    # digits_lt at 0%, two seeds: balanced accuracy over uniform +3 (a), +1 (b), +0.5 (class_balanced, rfs);
    # common classes -0.5 (a), -2 (b)
    gain = {"uniform": (0.0, 0.0), "class_balanced": (0.005, 0.0), "rfs": (0.005, 0.0), "a": (0.03, -0.005),
            "b": (0.01, -0.02)}
    rows = [{"variant": v, "task": "digits_lt", "noise": 0.0, "seed": s, "lr": 1e-3, "balanced": 0.8 + g + e,
             "common": 0.9 + c + e, "rare": 0.5} for v, (g, c) in gain.items() for s, e in ((0, 0.0), (1, 0.01))]
    table = frontier(best_cells(rows), list(gain)).splitlines()
    assert table[0] == "| target | class_balanced | rfs | a | b |"
    lead = next(line for line in table if "better of RFS/CB" in line)
    assert "+0.0 ± 0.0 (no) | +0.0 ± 0.0 (no) | +2.5 ± 0.0 | +0.5 ± 0.0 (no)" in lead  # a holds, b does not
    common = next(line for line in table if "common-class" in line)
    assert common.endswith("| -0.5 ± 0.0 | -2.0 ± 0.0 (no) |")
    assert table[-1] == "| **targets held** | 1 of 2 | 1 of 2 | 2 of 2 | 0 of 2 |"
    assert frontier(best_cells([r for r in rows if r["variant"] in ("uniform", "a")]), ["uniform", "a"]) == ""


def test_marginal_verdicts_are_run_again_at_the_chosen_rate_on_new_seeds_only() -> None:
    from benchmarks.quality.report import confirm_jobs, confirmed, report

    def row(v: str, seed: int, lr: float, bal: float) -> dict[str, object]:
        return {"variant": v, "task": "subpop", "noise": 0.2, "seed": seed, "lr": lr, "balanced": bal,
                "common": 0.9, "rare": 0.5}

    # new_defaults leads uniform by +2.0 / +1.6 / +2.6 (first seeds, 1e-3; 1e-4 is worse): +2.07 ± 0.29,
    # inside one SE of the +2 target; uniform is best at 3e-3
    gap = {0: 0.02, 1: 0.016, 2: 0.026}
    rows = [row("uniform", s, lr, 0.80 - (0.01 if lr != 3e-3 else 0.0)) for s in gap for lr in (1e-3, 3e-3)]
    rows += [row("new_defaults", s, lr, 0.80 + gap[s] - (0.01 if lr != 1e-3 else 0.0)) for s in gap
             for lr in (1e-4, 1e-3)]
    jobs = confirm_jobs(rows, {"subpop": range(3, 5)})
    assert sorted(jobs) == sorted([("new_defaults", "subpop", 0.2, s, 1e-3) for s in (3, 4)]
                                  + [("uniform", "subpop", 0.2, s, 3e-3) for s in (3, 4)])
    more = [row("uniform", s, 3e-3, 0.80) for s in (3, 4)] + [row("new_defaults", s, 1e-3, 0.80 + g)
                                                              for s, g in ((3, 0.01), (4, 0.012))]
    more += [row("new_defaults", s, 1e-4, 0.99) for s in (3, 4)]  # a rate this run did not choose: never read
    [(first, both)] = confirmed(rows, more)
    assert first.holds and first.marginal and both.measured.n == 5 and not both.holds
    assert abs(both.measured.mean - (2.0 + 1.6 + 2.6 + 1.0 + 1.2) / 5) < 1e-9
    assert "| subpop 20%: vs uniform >= +2 | +2.1 ± 0.3 | +1.7 ± 0.3 | 5 | **no** |" in report(
        rows, ["uniform", "new_defaults"], "head", more)
    far = [r if r["variant"] == "uniform" else {**r, "balanced": r["balanced"] + 0.05} for r in rows]
    assert confirm_jobs(far, {"subpop": range(3, 5)}) == []  # 7 SE from the threshold: nothing to settle


def test_the_worker_pool_gives_the_serial_runs_numbers() -> None:
    """The pool's workers freeze the garbage collector after their imports (a third of a token run was
    accelerate's ``gc.collect()``); the numbers must not move."""
    from benchmarks.quality.run import run

    jobs = [("uniform", "digits_lt", 0.2, 0, 3e-3), ("new_defaults", "digits_lt", 0.2, 0, 3e-3),
            ("uniform", "tokens_lt", 0.0, 0, 1e-2)]
    key = ("variant", "task", "noise", "seed", "lr", "balanced", "common", "rare")
    serial, pooled = ([tuple(r[k] for k in key) for r in run(jobs, w)] for w in (1, 2))
    assert serial == pooled and len(serial) == 3


def test_the_token_task_reports_what_the_guard_keeps_out() -> None:
    """The token task runs ``HardMiningTrainer`` with categories; its diagnostics come from the trainer's miner."""
    from benchmarks.quality.token_task import train_tokens

    torch.set_num_threads(1)
    res = train_tokens(all_variants()["new_defaults"], 0, 0.2, 3e-3)
    assert 0.0 < res.prior_boost_share < 1.0  # the prior and hardness both boosted draws
    assert 0.0 <= res.hard_noisy <= 1.0 and res.excluded.get("hard_to_learn", 0) > 0
    assert res.flag_noisy > res.flag_clean_common  # the guard keeps flipped labels out more than clean ones
