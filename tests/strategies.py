"""Hypothesis strategies shared by the test modules."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

finite_losses = st.floats(min_value=0.0, max_value=50.0, allow_nan=False, allow_infinity=False, width=32)
any_losses = st.one_of(finite_losses, st.just(float("nan")), st.just(float("inf")))


@st.composite
def loss_stream(draw: st.DrawFn, *, max_id: int = 40, dense: bool = True, allow_nonfinite: bool = True
                ) -> list[tuple[np.ndarray, np.ndarray]]:
    """A list of update calls ``(ids, losses)``, with duplicates inside and across calls."""
    n_calls = draw(st.integers(1, 8))
    calls = []
    if dense:
        id_strategy = st.integers(0, max_id - 1)
    else:  # arbitrary int64 ids, drawn from a small pool so that they repeat
        pool = draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=max_id, unique=True))
        id_strategy = st.sampled_from(pool)
    for _ in range(n_calls):
        size = draw(st.integers(0, 30))
        ids = draw(st.lists(id_strategy, min_size=size, max_size=size))
        losses = draw(st.lists(any_losses if allow_nonfinite else finite_losses, min_size=size, max_size=size))
        calls.append((np.array(ids, dtype=np.int64), np.array(losses, dtype=np.float32)))
    return calls


@st.composite
def sampler_weights(draw: st.DrawFn, *, max_n: int = 60) -> tuple[int, np.ndarray, int | None]:
    """``(n, weights, max_repeats)`` that can fill ``n`` slots."""
    n = draw(st.integers(1, max_n))
    kind = draw(st.sampled_from(["two_level", "random", "sparse"]))
    if kind == "two_level":
        hard = draw(hnp.arrays(bool, n))
        weights = np.where(hard, draw(st.floats(1.0, 8.0)), 1.0)
    elif kind == "random":
        weights = draw(hnp.arrays(np.float64, n, elements=st.floats(0.0, 10.0)))
    else:
        weights = np.zeros(n)
        k = draw(st.integers(1, n))
        weights[draw(st.permutations(range(n)))[:k]] = draw(st.floats(0.1, 5.0))
    positive = int(np.count_nonzero(weights))
    if positive == 0:
        weights[0] = 1.0
        positive = 1
    min_cap = -(-n // positive)
    max_repeats = draw(st.one_of(st.none(), st.integers(min_cap, min_cap + 4)))
    return n, weights, max_repeats


@st.composite
def layered_weights(draw: st.DrawFn, *, max_n: int = 3000) -> tuple[np.ndarray, int | None]:
    """``(weights, max_repeats)``: a few weight levels laid out periodically, in blocks or at random, optionally
    over a background of many distinct weights (what a prior x hardness plan looks like)."""
    n = draw(st.integers(20, max_n))
    levels = draw(st.lists(st.sampled_from([0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 7.0]), min_size=1, max_size=4,
                           unique=True))
    layout = draw(st.sampled_from(["periodic", "blocked", "random"]))
    if layout == "periodic":
        period = draw(st.integers(2, 25))
        code = (np.arange(n) % period) % len(levels)
    elif layout == "blocked":
        code = np.repeat(np.arange(len(levels)), -(-n // len(levels)))[:n]
    else:
        code = np.random.default_rng(draw(st.integers(0, 2**16))).integers(0, len(levels), n)
    weights = np.asarray(levels)[code]
    if draw(st.booleans()):  # a background of distinct weights on a share of the indices
        rng = np.random.default_rng(draw(st.integers(0, 2**16)))
        some = rng.random(n) < draw(st.floats(0.05, 0.6))
        weights = np.where(some, rng.uniform(0.5, 5.0, n), weights)
    positive = int(np.count_nonzero(weights))
    cap = draw(st.one_of(st.none(), st.integers(max(1, -(-n // positive)), 6)))
    return weights, cap


@st.composite
def sample_categories(draw: st.DrawFn, *, max_n: int = 40, max_category: int = 12) -> list[int | list[int]]:
    """Per-sample categories as a user gives them: an int, or a list of ints (repeats and empty lists included)."""
    n = draw(st.integers(1, max_n))
    cat = st.integers(-3, max_category)  # any ints, negative ones too: ids are labels, not positions
    one = st.one_of(cat, st.lists(cat, min_size=0, max_size=4))
    return [draw(one) for _ in range(n)]


priors = st.one_of(
    st.builds(lambda t: ("repeat_factor", t), st.floats(1e-3, 1.0)),
    st.builds(lambda p: ("class_balanced", p), st.floats(0.0, 2.0)),
)
