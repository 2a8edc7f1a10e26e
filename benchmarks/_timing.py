"""Best-of-k wall-clock timing shared by the benchmark scripts."""

from __future__ import annotations

import gc
import time
from typing import Callable


def best_of(fn: Callable[[], object], repeats: int = 3) -> float:
    """The fastest of ``repeats`` runs, in seconds (garbage collected before each)."""
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best
