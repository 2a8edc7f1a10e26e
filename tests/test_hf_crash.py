"""kill -9 in the middle of a checkpoint save: resuming either reproduces the uninterrupted run, or stops with
hardmine's error naming the newest checkpoint that can be resumed, and resuming that one reproduces the run."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers")
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "dist" / "hf_crash_train.py"
BATCH, SAVES = 4, 6  # 18 steps, a checkpoint every 3
MOMENTS = ["state_written", "state_renamed", "model_saved", "optimizer_saved", "trainer_state_saved", "rotated"]
# every moment of a save once, each at a random one of the run's saves (seeded: the same picks every run)
KILLS = [(m, random.Random(f"kill-{m}").randint(1, SAVES)) for m in MOMENTS]


def _run(out: Path, mode: str, arg: str | None = None) -> tuple[int, dict[str, Any] | None]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, str(SCRIPT), str(out), mode, *([arg] if arg else [])]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    result = out / f"{mode}.json"
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(proc.stdout[-2000:] + proc.stderr[-4000:])
    return proc.returncode, json.loads(result.read_text()) if result.is_file() and proc.returncode == 0 else None


def _newest(run: Path) -> Path:
    return max(run.glob("checkpoint-*"), key=lambda c: int(c.name.split("-")[1]))


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    code, result = _run(tmp_path_factory.mktemp("full"), "full")
    assert code == 0 and result is not None
    return result


@pytest.mark.parametrize(("moment", "nth"), KILLS, ids=[f"{m}-{n}" for m, n in KILLS])
def test_a_kill_during_a_save_resumes_exactly_or_says_where_to_resume(
    full: dict[str, Any], tmp_path: Path, moment: str, nth: int
) -> None:
    code, _ = _run(tmp_path, "kill", f"{moment}:{nth}")
    assert code == -signal.SIGKILL  # the run died in the middle of its nth checkpoint save
    checkpoint = _newest(tmp_path / "run")
    code, resumed = _run(tmp_path, "resume")
    assert code == 0 and resumed is not None
    if "error" in resumed:  # the newest folder is a save that never finished: hardmine says so, and where to go
        assert f"{checkpoint} has no trainer_state.json: its save was interrupted" in resumed["error"]
        found = re.search(r"resume from (\S+), the newest checkpoint that holds one", resumed["error"])
        if found is None:  # killed in the first save: nothing to resume, and hardmine says that too
            assert "no checkpoint next to it holds one" in resumed["error"]
            assert not any((c / "trainer_state.json").is_file() for c in (tmp_path / "run").glob("checkpoint-*"))
            return
        assert Path(found.group(1)) != checkpoint
        checkpoint = Path(found.group(1))
        code, resumed = _run(tmp_path, "resume", str(checkpoint))
        assert code == 0 and resumed is not None and "error" not in resumed, resumed
    step = int(checkpoint.name.split("-")[1])
    assert resumed["stream"] == full["stream"][step * BATCH :]  # same samples, same order, same losses
    for key in ("hard_ids", "ledger_ids", "scores", "history"):
        assert resumed[key] == full[key], key
