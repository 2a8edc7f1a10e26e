"""Checkpoint folders as the HF adapter leaves them: ``checkpoint-<step>`` folders holding ``hardmine_state.npz``.

The mining state is written into the folder *before* the Trainer writes its own files, so any checkpoint that
looks complete (``trainer_state.json``) and was written with mining on holds it; the Trainer state also
carries a marker saying mining was on, so a state file lost later is noticed rather than silently replaced
by a fresh miner.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

STATE_FILE = "hardmine_state.npz"  # the name the HF adapter writes into each checkpoint folder
TRAINER_STATE = "trainer_state.json"  # transformers' TRAINER_STATE_NAME: written last, marks a finished save
MARKER = "hardmine"  # key in trainer_state.json's stateful_callbacks: the checkpoint was written with mining on
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """The ``checkpoint-<step>`` folders in ``folder``, newest first."""
    if not folder.is_dir():
        return []
    found = ((_CHECKPOINT.match(c.name), c) for c in folder.iterdir() if c.is_dir())
    return sorted(((int(m.group(1)), c) for m, c in found if m), reverse=True)


def newest_with_state(folder: Path) -> Path | None:
    """The newest finished checkpoint in ``folder`` that holds a mining state (None when there is none)."""
    for _, c in checkpoints(folder):
        if (c / STATE_FILE).is_file() and (c / TRAINER_STATE).is_file():
            return c
    return None


def written_with_mining(checkpoint: Path) -> bool:
    """Whether the checkpoint's ``trainer_state.json`` says it was written with mining on."""
    try:
        state = json.loads((checkpoint / TRAINER_STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    callbacks = state.get("stateful_callbacks") if isinstance(state, dict) else None
    return isinstance(callbacks, dict) and MARKER in callbacks
