"""House rules checked on every run: ruff and mypy (strict) are clean on the package."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(("tool", "args"), [
    ("ruff", ["check", "hardmine", "tests", "examples", "benchmarks", "docs/_ext"]),
    ("mypy", ["hardmine"]),
])
def test_clean(tool: str, args: list[str]) -> None:
    exe = shutil.which(tool, path=str(BIN))
    if exe is None:
        pytest.skip(f"{tool} is not installed (pip install 'hardmine[dev]')")
    proc = subprocess.run([exe, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
