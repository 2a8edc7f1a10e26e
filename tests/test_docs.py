"""The docs stay true to the code: every API-reference entry resolves, every public name is documented."""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import hardmine

DOCS = Path(__file__).resolve().parent.parent / "docs"
ENTRIES = re.findall(r"^::: ([\w.]+)\s*$", (DOCS / "api.md").read_text(encoding="utf-8"), flags=re.M)


def resolve(dotted: str) -> Any:
    """The object at ``dotted``: the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(dotted)


@pytest.mark.parametrize("dotted", ENTRIES)
def test_api_reference_entry_resolves_and_has_a_docstring(dotted: str) -> None:
    if dotted.startswith("hardmine.integrations.hf"):
        pytest.importorskip("transformers")
    obj = resolve(dotted)
    assert (getattr(obj, "__doc__", None) or "").strip(), f"{dotted} has no docstring"


def test_every_public_name_is_in_the_api_reference() -> None:
    documented = {e.rsplit(".", 1)[-1] for e in ENTRIES}
    missing = sorted(set(hardmine.__all__) - documented - {"__version__"})
    assert not missing, f"add '::: hardmine.<name>' entries to docs/api.md for {missing}"


def _extension() -> ModuleType:
    pytest.importorskip("griffe")
    spec = importlib.util.spec_from_file_location("griffe_doctests", DOCS / "_ext" / "griffe_doctests.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("text", "expected"), [
    ("Adds.\n\n>>> 1 + 1\n2\n\nMore.", "Adds.\n\n```pycon\n>>> 1 + 1\n2\n```\n\nMore."),
    ("Adds.\n\n    >>> [1]\n    [1]\n", "Adds.\n\n    ```pycon\n    >>> [1]\n    [1]\n    ```\n"),
    ("Adds.\n\nExamples:\n    >>> 1\n    1\n", "Adds.\n\nExamples:\n    >>> 1\n    1\n"),  # griffe's own
    ("```pycon\n>>> 1\n1\n```", "```pycon\n>>> 1\n1\n```"),  # fenced already
    ("No examples.", "No examples."),
])
def test_doctest_blocks_are_fenced_for_the_docs(text: str, expected: str) -> None:
    assert _extension().fence_doctests(text) == expected


def test_api_reference_builds_strict(tmp_path: Path) -> None:
    """`make docs`: mkdocs + mkdocstrings in strict mode, offline, with no broken reference."""
    import os
    import shutil
    import subprocess
    import sys

    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    if mkdocs is None:
        pytest.skip("mkdocs is not installed (pip install 'hardmine[docs]')")
    proc = subprocess.run([mkdocs, "build", "--strict", "-d", str(tmp_path / "site")], cwd=DOCS.parent,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "site" / "api" / "index.html").stat().st_size > 10_000


def test_design_diagram_follows_end_epoch_stage_by_stage() -> None:
    """docs/design.md's pipeline lists the stages in the order HardMiner.end_epoch runs them."""
    import inspect

    from hardmine import HardMiner

    text = (DOCS / "design.md").read_text(encoding="utf-8")
    block = text[text.index("epoch end, on every rank"): text.index("next epoch: the DataLoader")]
    stages = re.findall(r"^   (?:\w+\s+=\s+)?([\w.]+)\(", block, flags=re.M)
    assert len(stages) >= 8, stages
    source = inspect.getsource(HardMiner.end_epoch)
    at = 0
    for stage in stages:
        found = re.search(rf"(?:self\._?)?{re.escape(stage)}\(", source[at:])
        assert found is not None, f"stage {stage!r} is not in end_epoch after position {at} (or out of order)"
        at += found.end()
