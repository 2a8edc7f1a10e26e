"""2-process ``torch.distributed.run`` launches for the distributed tests, and the rank side's entry point."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(script: Path, out: Path, *argv: str, timeout: int = 240) -> list[dict[str, Any]]:
    """Run ``script OUT *argv`` on 2 ranks; each rank's ``OUT/<argv[0]>_rank<r>.json``, in rank order."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
           str(script), str(out), *argv]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return [json.loads((out / f"{argv[0]}_rank{r}.json").read_text()) for r in range(2)]


def run_rank(main: Callable[[Path, str, str | None], None]) -> None:
    """A rank's ``main(OUT, MODE, CKPT)`` from argv, then the gloo group torn down before the interpreter exits:
    left to process exit, its threads can race the shutdown ("terminate called without an active exception")."""
    import torch.distributed as dist

    try:
        main(Path(sys.argv[1]), sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
    except Exception:
        traceback.print_exc()
        raise
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
