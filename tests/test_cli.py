"""The ``hardmine`` command on real saved miners: the table, the plot, the export, checkpoints, errors."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import hardmine as hm
from hardmine._serialization import save_state
from hardmine.cli import main

ROOT = Path(__file__).resolve().parent.parent
N, EPOCHS = 300, 5
CONFIG = {"seed": 1, "trigger": {"kind": "epoch", "start_epoch": 1}, "select": {"kind": "top_k", "k": 30},
          "resample": {"hard_weight": 3.0, "max_repeats": 4}}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
Capture = pytest.CaptureFixture[str]


def plain_loop(epochs: int = EPOCHS, config: dict[str, Any] | None = None) -> hm.HardMiner:
    """A plain loop over the miner's sampler: a sample's loss falls each time it is trained on."""
    rng = np.random.default_rng(0)
    difficulty = rng.gamma(1.0, 1.0, N)
    seen = np.zeros(N)
    miner = hm.HardMiner(config or CONFIG, num_samples=N)
    for epoch in range(epochs):
        miner.sampler.set_epoch(epoch)
        stream = np.array(list(miner.sampler))
        for batch in np.array_split(stream, N // 32):
            np.add.at(seen, batch, 1)
            losses = difficulty[batch] / (1.0 + 0.3 * seen[batch]) + rng.normal(0, 0.05, batch.size)
            miner.record(batch, losses)
        miner.end_epoch(epoch)
    return miner


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[hm.HardMiner, Path]:
    miner = plain_loop()
    return miner, miner.save(tmp_path_factory.mktemp("run") / "miner.npz")


def table_lines(text: str) -> dict[int, list[str]]:
    """Rows of the per-epoch table by epoch (the lines between its header and the next blank line)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("epoch  status"))
    rows: dict[int, list[str]] = {}
    for line in lines[start + 1 :]:
        if not line.strip() or not line.split()[0].isdigit():
            break
        rows[int(line.split()[0])] = line.split()
    return rows


def test_table_has_one_row_per_epoch_matching_the_history(run: Any, capsys: Capture) -> None:
    miner, path = run
    assert main(["report", str(path)]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("epoch"))
    for col in ("status", "hard", "cut", "seen", "eligible", "excl", "overlap", "churn", "x drawn"):
        assert col in header
    rows = table_lines(out)
    assert sorted(rows) == [e.epoch for e in miner.history] == list(range(EPOCHS))
    for e in miner.history:
        cells = rows[e.epoch]
        assert cells[1] == ("fired" if e.fired else "active" if e.triggered else "waiting")
        assert int(cells[2]) == e.num_hard
        if e.score_cut is not None:
            assert float(cells[3]) == pytest.approx(e.score_cut, rel=1e-3)
    assert rows[0][1] == "waiting" and "trigger has not fired" in " ".join(rows[0])
    assert rows[1][1] == "fired" and int(rows[1][2]) == 30
    e2 = miner.history[2]  # overlap and churn from the event
    assert e2.overlap_prev is not None and str(e2.overlap_prev) in rows[2]
    assert f"{(30 - e2.overlap_prev) / 30:.0%}" in rows[2]
    assert f"{e2.draw_ratio:.2f}" in rows[2]
    assert "mining: active since epoch 1; 30 ids mined now" in out
    hardest = miner.hard_ids[np.argmax(miner.ledger.stats().scores[miner.hard_ids])]
    top = out.split("hardest mined samples now")[1].splitlines()
    assert top[2].split()[0] == str(hardest)  # title, header, then the highest score


def test_plot_and_csv_export(run: Any, tmp_path: Path, capsys: Capture) -> None:
    pytest.importorskip("matplotlib")
    miner, path = run
    png, export = tmp_path / "report.png", tmp_path / "mined.csv"
    assert main(["report", str(path), "--plot", str(png), "--export", str(export), "--top", "0"]) == 0
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 20_000
    with export.open() as f:
        rows = list(csv.DictReader(f))
    ids, epochs = miner.mined_counts()
    assert [int(r["id"]) for r in rows] == ids.tolist()
    assert [int(r["epochs_mined"]) for r in rows] == epochs.tolist()
    assert {int(r["id"]) for r in rows if r["mined_now"] == "True"} == set(miner.hard_ids.tolist())
    stats = miner.ledger.stats()
    for r in rows:
        assert float(r["score"]) == pytest.approx(float(stats.scores[int(r["id"])]), rel=1e-6)
        assert int(r["observations"]) == int(stats.counts[int(r["id"])])
        assert int(r["index"]) == int(r["id"]) and r["source"] == ""
    out = capsys.readouterr().out
    assert f"wrote {ids.size} mined ids" in out and "wrote plot" in out and "hardest mined" not in out


def test_json_export_through_the_installed_script(run: Any, tmp_path: Path) -> None:
    miner, path = run
    script = Path(sys.executable).parent / "hardmine"
    exe = str(script) if script.exists() else shutil.which("hardmine")
    assert exe, "the hardmine console script is not installed (pip install -e .)"
    export = tmp_path / "mined.json"
    proc = subprocess.run([exe, "report", str(path), "--export", str(export)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "MPLBACKEND": "Agg"})
    assert proc.returncode == 0, proc.stderr
    assert "epoch  status" in proc.stdout and proc.stderr == ""
    rows = json.loads(export.read_text())
    assert [r["id"] for r in rows] == miner.mined_counts()[0].tolist()
    assert set(rows[0]) == {"id", "source", "index", "score", "observations", "epochs_mined", "mined_now",
                            "first_loss", "last_seen"}


def test_the_readme_walkthrough(tmp_path: Path, capsys: Capture) -> None:
    """examples/report_demo.py, then `python -m hardmine report` on what it saved."""
    spec = importlib.util.spec_from_file_location("report_demo", ROOT / "examples" / "report_demo.py")
    assert spec is not None and spec.loader is not None
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    miner = demo.train(tmp_path / "miner.npz", epochs=3, n=200)
    assert miner.history[1].fired and miner.hard_ids.size == 30  # k: 15% from the end of epoch 1
    proc = subprocess.run([sys.executable, "-m", "hardmine", "report", str(tmp_path / "miner.npz"), "--top", "3"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert sorted(table_lines(proc.stdout)) == [0, 1, 2] and "hardest mined samples now (3 of 30" in proc.stdout


def test_checkpoint_folders(tmp_path: Path, capsys: Capture) -> None:
    out_dir = tmp_path / "output"
    plain_loop(epochs=2).save(out_dir / "checkpoint-10" / "hardmine_state.npz")
    plain_loop(epochs=4).save(out_dir / "checkpoint-20" / "hardmine_state.npz")
    (out_dir / "checkpoint-30").mkdir()  # a newer checkpoint without mining state (e.g. mid-write)
    (out_dir / "checkpoint-9").mkdir()
    (out_dir / "runs").mkdir()

    assert main(["report", str(out_dir)]) == 0
    captured = capsys.readouterr()
    assert sorted(table_lines(captured.out)) == [0, 1, 2, 3]  # checkpoint-20: 4 epochs
    assert "using checkpoint-20" in captured.err and "checkpoint-30 is newer but holds none" in captured.err

    assert main(["report", str(out_dir / "checkpoint-10")]) == 0
    captured = capsys.readouterr()
    assert sorted(table_lines(captured.out)) == [0, 1] and captured.err == ""


def test_a_disabled_run_says_so(tmp_path: Path, capsys: Capture) -> None:
    path = plain_loop(epochs=2, config={**CONFIG, "enabled": False}).save(tmp_path / "off.npz")
    assert main(["report", str(path)]) == 0
    out = capsys.readouterr().out
    assert "DISABLED" in out
    assert [cells[1] for cells in table_lines(out).values()] == ["disabled", "disabled"]


def test_fusion_run_decodes_sources(tmp_path: Path, capsys: Capture) -> None:
    from hardmine.fusion import FusionDataset

    class Items:
        def __init__(self, n: int) -> None:
            self.n = n

        def __len__(self) -> int:
            return self.n

        def __getitem__(self, i: int) -> dict[str, int]:
            return {"x": i}

    fusion = FusionDataset(targets={"bbu": Items(120), "rru": Items(60)},
                           auxiliaries={"lvis": (Items(300), 0.1)})
    miner = hm.HardMiner({"trigger": {"kind": "epoch", "start_epoch": 0},
                          "select": {"kind": "top_k", "k": 12}}, dataset=fusion)
    rng = np.random.default_rng(0)
    for epoch in range(3):
        miner.sampler.set_epoch(epoch)
        ids = np.array([fusion[i]["sample_id"] for i in miner.sampler])
        miner.record(ids, rng.gamma(1.0, 1.0, ids.size))
        miner.end_epoch(epoch)
    path = miner.save(tmp_path / "fusion.npz")
    export = tmp_path / "mined.json"
    code = main(["report", str(path), "--export", str(export)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    header = next(line for line in captured.out.splitlines() if line.startswith("epoch"))
    assert "draws:bbu" in header and "draws:lvis" in header
    rows = json.loads(export.read_text())
    assert [r["id"] for r in rows] == miner.mined_counts()[0].tolist()
    assert [(r["source"], r["index"]) for r in rows] == [fusion.decode(r["id"]) for r in rows]
    assert {r["source"] for r in rows} <= {"bbu", "rru"}  # only targets are mined


def _foreign_npz(p: Path) -> Path:
    np.savez(p, weights=np.ones(3))
    return p


def _other_kind(p: Path) -> Path:
    save_state({"x": np.ones(2)}, p, kind="LossLedger")
    return p


def _text(p: Path) -> Path:
    p.write_text("epoch,loss\n0,1.0\n")
    return p


def _empty(p: Path) -> Path:
    p.write_bytes(b"")
    return p


def _empty_dir(p: Path) -> Path:
    (p / "checkpoint-5").mkdir(parents=True)
    return p


@pytest.mark.parametrize(("make", "name", "expected"), [
    (None, "missing.npz", "no such file or folder"),
    (_foreign_npz, "weights.npz", "is not a hardmine state file"),
    (_other_kind, "ledger.npz", "holds a 'LossLedger' state, not a 'HardMiner' state"),
    (_text, "log.txt", "is not a hardmine state file (not an .npz archive)"),
    (_empty, "empty.npz", "is not a hardmine state file (an empty file)"),
    (_empty_dir, "out", "none of its 1 checkpoint-* folders holds one"),
])
def test_report_errors_name_the_file_without_a_traceback(tmp_path: Path, capsys: Capture,
                                                          make: Any, name: str, expected: str) -> None:
    path = tmp_path / name
    if make is not None:
        make(path)
    assert main(["report", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hardmine report: error: ") and expected in err and name in err
    assert "Traceback" not in err


def test_folder_without_checkpoints(tmp_path: Path, capsys: Capture) -> None:
    assert main(["report", str(tmp_path)]) == 2
    assert "no hardmine_state.npz in folder" in capsys.readouterr().err


@pytest.mark.parametrize(("flag", "value", "expected"), [
    ("--plot", "report.jpg", "--plot must name a .png file, but got 'report.jpg'"),
    ("--export", "mined.xlsx", "--export must name a .csv or .json file, but got 'mined.xlsx'"),
    ("--export", "no/such/dir/m.csv", "folder 'no/such/dir' does not exist"),
    ("--top", "-1", "--top must be >= 0, but got -1"),
])
def test_bad_options(run: Any, capsys: Capture, flag: str, value: str, expected: str) -> None:
    assert main(["report", str(run[1]), flag, value]) == 2
    assert expected in capsys.readouterr().err


def test_plot_without_matplotlib_says_what_to_install(run: Any, tmp_path: Path, capsys: Capture,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    monkeypatch.delitem(sys.modules, "hardmine._report_plot", raising=False)
    assert main(["report", str(run[1]), "--plot", str(tmp_path / "r.png")]) == 2
    captured = capsys.readouterr()
    assert "pip install 'hardmine[report]'" in captured.err and captured.out == ""
    assert main(["report", str(run[1])]) == 0  # the table needs no matplotlib
    assert "epoch  status" in capsys.readouterr().out


def test_help_reads_well(capsys: Capture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "hardmine report PATH" in text and "hardmine validate" in text and "hardmine[report]" in text
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    text = capsys.readouterr().out
    assert "checkpoint-*" in text and "--plot FILE.png" in text and "--export FILE.csv|FILE.json" in text
    with pytest.raises(SystemExit) as exit_:
        main([])
    assert exit_.value.code == 2 and "required: COMMAND" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- validate
TRAIN_YAML = """\
model: Qwen/Qwen3-VL-8B-Instruct
num_train_epochs: 6
custom:
  hard_sample_mining:
{block}
"""


def _yaml(tmp_path: Path, block: str) -> Path:
    p = tmp_path / "train.yaml"
    p.write_text(TRAIN_YAML.format(block="\n".join("    " + line for line in block.splitlines())))
    return p


def test_validate_prints_the_resolved_settings(tmp_path: Path, capsys: Capture) -> None:
    path = _yaml(tmp_path, "trigger: {kind: plateau, monitor: eval_loss, patience: 3}\n"
                           "select: {kind: top_k, k: 0.05}")
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "custom.hard_sample_mining is valid" in out
    assert "once eval_loss has not decreased by more than 0.01 relative for 3 epoch(s)" in out
    assert "as many of the highest-scoring eligible ids as 5% of the ids seen" in out
    resolved = out.split("resolved settings:\n")[1]
    import yaml

    block = yaml.safe_load(resolved)["custom"]["hard_sample_mining"]
    assert hm.HardMiningConfig.model_validate(block) == hm.HardMiningConfig.from_yaml(path)
    assert block["resample"] == {"hard_weight": 4.0, "max_repeats": 4, "lift_cap_below": 0.1, "keep_rare_share": 2.0,
                                 "prior": "auto"}


@pytest.mark.parametrize(("block", "expected"), [
    ("trigger: {kind: plateau, patience: -1}",
     "custom.hard_sample_mining.trigger.patience: Input should be greater than or equal to 0 (got -1)"),
    ("select: {kind: top_k, k: 2.5}", "custom.hard_sample_mining.select.k: k >= 1 is a count"),
    ("select: {kind: best}", "custom.hard_sample_mining.select"),
    ("resampel: {hard_weight: 2}", "hard_sample_mining.resampel: unknown key (did you mean 'resample'?)"),
    ("resample: {hard_weight: 0.5}", "hard_sample_mining.resample.hard_weight: Input should be greater"),
    ("resample: {prior: {kind: repeat_factor, threshold: 0}}",
     "hard_sample_mining.resample.prior.threshold: Input should be greater than 0"),
])
def test_validate_names_the_bad_field(tmp_path: Path, capsys: Capture, block: str,
                                      expected: str) -> None:
    assert main(["validate", str(_yaml(tmp_path, block))]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hardmine validate: error: ") and expected in err and "Traceback" not in err


def test_validate_without_the_block_says_mining_is_off(tmp_path: Path, capsys: Capture) -> None:
    path = tmp_path / "train.yaml"
    path.write_text("custom:\n  hard_sample_minning: {enabled: true}\n")
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "mining is DISABLED" in out and "did you mean custom.hard_sample_minning" in out


@pytest.mark.parametrize(("text", "expected"), [
    (None, "no such config file"),
    ("custom: [a\n", "is not valid YAML"),
    ("- a\n- b\n", "must hold a YAML mapping, but holds a list"),
])
def test_validate_file_errors(tmp_path: Path, capsys: Capture, text: str | None,
                              expected: str) -> None:
    path = tmp_path / "train.yaml"
    if text is not None:
        path.write_text(text)
    assert main(["validate", str(path)]) == 2
    assert expected in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- Trainer
@pytest.mark.slow
def test_report_on_a_trainer_checkpoint(tmp_path: Path, capsys: Capture) -> None:
    pytest.importorskip("transformers")
    pytest.importorskip("matplotlib")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import TrainingArguments

    from hardmine.integrations.hf import HardMiningTrainer
    from tests.hf_tiny import TokenDataset, stack_collate, tiny_qwen3

    args = TrainingArguments(output_dir=str(tmp_path / "out"), per_device_train_batch_size=4,
                             num_train_epochs=2, report_to="none", use_cpu=True, save_strategy="epoch",
                             logging_steps=1, learning_rate=1e-2, disable_tqdm=True, seed=0)
    trainer = HardMiningTrainer(model=tiny_qwen3(), args=args, train_dataset=TokenDataset(24),
                                data_collator=stack_collate,
                                mining={"trigger": {"kind": "epoch", "start_epoch": 0},
                                        "select": {"kind": "top_k", "k": 5}})
    trainer.train()
    png, export = tmp_path / "r.png", tmp_path / "m.csv"
    assert main(["report", str(tmp_path / "out"), "--plot", str(png), "--export", str(export)]) == 0
    captured = capsys.readouterr()
    assert "using checkpoint-12" in captured.err
    rows = table_lines(captured.out)
    assert sorted(rows) == [0, 1] and rows[0][1] == "fired" and int(rows[0][2]) == 5
    assert png.read_bytes()[:8] == PNG_MAGIC
    with export.open() as f:
        mined = [int(r["id"]) for r in csv.DictReader(f)]
    assert mined == trainer.miner.mined_counts()[0].tolist() and len(mined) >= 5


def test_a_closed_pipe_exits_quietly(run: Any) -> None:
    """`hardmine report ... | head`: no BrokenPipeError traceback, exit code 0 (head -n 0 has left already)."""
    _, path = run
    cmd = f"set -o pipefail; {sys.executable} -m hardmine report {path} --top 50 | head -n 0"
    proc = subprocess.run(["bash", "-c", cmd], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0 and proc.stdout == ""
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr


def test_file_errors_name_the_file(run: Any, tmp_path: Path, capsys: Capture) -> None:
    binary = tmp_path / "train.yaml"
    binary.write_bytes(b"\xff\xfe\x00\x01binary")
    assert main(["validate", str(binary)]) == 2
    assert "train.yaml' is not a YAML text file" in capsys.readouterr().err
    _, path = run
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root ignores permissions: a folder in place of the file instead
            (locked / "m.csv").mkdir()
        assert main(["report", str(path), "--export", str(locked / "m.csv")]) == 2
        assert f"cannot write '{locked / 'm.csv'}'" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)
