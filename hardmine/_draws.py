"""The epoch's randomness: private per-epoch generators, the in-place shuffle, uniform subsets of a pool."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch


def epoch_generator(seed: int, epoch: int, salt: int = 0) -> torch.Generator:
    """A private torch generator for one epoch, derived from ``(seed, epoch, salt)`` only."""
    state = np.random.SeedSequence([int(seed), int(epoch), int(salt)]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state >> np.uint64(1)))


def shuffle_in_place(plan: np.ndarray, g: torch.Generator) -> None:
    """Shuffle ``plan`` in one in-place pass, seeded from ``g`` (about 2x cheaper than randperm + gather)."""
    np.random.Generator(np.random.PCG64(int(torch.randint(2**62, (1,), generator=g)))).shuffle(plan)


def draw_subset(n: int, k: int, g: torch.Generator) -> np.ndarray:
    """A uniformly random ``k``-subset of ``range(n)`` (int64, in no particular order), in O(k + n / 8) work.

    For ``k < n / 2`` it draws indices with replacement into a mask until at least ``k`` are distinct,
    then drops a uniform few: the process treats every index alike, so the distinct set (given its
    size) is a uniform subset. That avoids a full ``randperm(n)`` for a small quota from a large pool.
    """
    if k == 0:
        return np.empty(0, dtype=np.int64)
    if 2 * k >= n:
        return torch.randperm(n, generator=g)[:k].numpy()
    return distinct_draws(n, n, k, g)


def distinct_draws(n: int, pool: int, k: int, g: torch.Generator,
                   keep: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """``k`` distinct, uniformly random members of a pool of ``pool`` indices of ``range(n)``, ascending.

    Indices are drawn with replacement, ``keep(drawn)`` says which are in the pool (None: all are), until at
    least ``k`` distinct ones are in a mask; a uniform few are then dropped."""
    mask = np.zeros(n, dtype=bool)
    have = 0
    goal = min(k + k // 64 + 16, (k + pool) // 2)  # aim a little above k: usually one round
    while have < k:
        # expected new distinct members among m draws: (pool - have) * (1 - (1 - 1/pool)**m) = goal - have
        m = math.ceil(math.log1p(-(goal - have) / (pool - have)) / math.log1p(-1.0 / pool))
        drawn = torch.randint(n, (m if pool == n else math.ceil(m * n / pool),), generator=g).numpy()
        mask[drawn if keep is None else drawn[keep(drawn)]] = True
        have = int(np.count_nonzero(mask))
    chosen = np.flatnonzero(mask)
    if have > k:
        dropped = np.ones(have, dtype=bool)
        dropped[draw_subset(have, have - k, g)] = False
        chosen = chosen[dropped]
    return chosen
