"""HardMiningSampler: fixed length, determinism, permutation when uniform, counts follow weights, caps."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, RandomSampler

from hardmine import HardMiningSampler
from tests.strategies import layered_weights, sampler_weights


@settings(max_examples=80, deadline=None)
@given(spec=sampler_weights(), seed=st.integers(0, 2**31), epoch=st.integers(0, 1000))
def test_length_counts_and_cap(spec: tuple, seed: int, epoch: int) -> None:
    n, weights, cap = spec
    s = HardMiningSampler(n, seed=seed, max_repeats=cap)
    s.set_weights(weights)
    s.set_epoch(epoch)
    stream = list(s)
    assert len(stream) == len(s) == n
    counts = np.bincount(stream, minlength=n)
    np.testing.assert_array_equal(counts, s.counts())
    assert counts[weights == 0].sum() == 0
    if cap is not None:
        assert counts.max() <= cap
    else:  # every count is the floor or the ceiling of its expected value
        expected = n * weights / weights.sum()
        assert np.all(counts >= np.floor(expected - 1e-9)) and np.all(counts <= np.ceil(expected + 1e-9))


def test_a_cap_that_leaves_only_a_tiny_weight_free_fills_the_epoch_with_it() -> None:
    # found by hypothesis: the capped index leaves 4 slots to a weight of 2.2e-308, and 4 / 2.2e-308 overflowed
    weights = np.array([np.finfo(np.float64).tiny, 1.0, 0, 0, 0, 0, 0, 0, 0])
    s = HardMiningSampler(9, seed=0, max_repeats=5)
    s.set_weights(weights)
    assert np.bincount(list(s), minlength=9).tolist() == [4, 5, 0, 0, 0, 0, 0, 0, 0]


@settings(max_examples=40, deadline=None)
@given(spec=sampler_weights(), seed=st.integers(0, 2**31), epoch=st.integers(0, 50))
def test_same_seed_epoch_weights_same_stream(spec: tuple, seed: int, epoch: int) -> None:
    n, weights, cap = spec
    a, b = (HardMiningSampler(n, seed=seed, max_repeats=cap) for _ in range(2))
    b.set_epoch(epoch + 1)
    list(b)  # a different epoch iterated first must not leak into the next one
    for s in (a, b):
        s.set_weights(weights)
        s.set_epoch(epoch)
    assert list(a) == list(b) == list(a)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 300), seed=st.integers(0, 2**31), epoch=st.integers(0, 100))
def test_uniform_is_a_permutation(n: int, seed: int, epoch: int) -> None:
    s = HardMiningSampler(n, seed=seed)
    s.set_epoch(epoch)
    assert sorted(s) == list(range(n))
    s.set_weights(np.full(n, 2.5))
    assert sorted(s) == list(range(n))  # equal weights: every index exactly once


def test_epochs_differ_and_global_rng_is_untouched() -> None:
    import torch

    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    s = HardMiningSampler(100, seed=1)
    s.set_epoch(0)
    first = list(s)
    s.set_epoch(1)
    assert list(s) != first
    assert torch.equal(torch.rand(3), before)


def test_expected_counts_follow_weights() -> None:
    """Averaged over epochs, E[count_i] ~ N * w_i / sum(w) (systematic rounding is unbiased)."""
    n = 200
    weights = np.ones(n)
    weights[:20] = 3.0
    s = HardMiningSampler(n, seed=0, max_repeats=None)
    s.set_weights(weights)
    total = np.zeros(n)
    epochs = 400
    for e in range(epochs):
        s.set_epoch(e)
        total += np.bincount(list(s), minlength=n)
    expected = n * weights / weights.sum()
    frac = expected % 1.0  # each count is floor or ceil: a Bernoulli(frac) on top of the floor
    sigma = np.sqrt(frac * (1.0 - frac) / epochs)
    assert np.all(np.abs(total / epochs - expected) <= 4.5 * sigma + 1e-12)


def _counts(weights: np.ndarray, cap: int | None, epoch: int = 0) -> np.ndarray:
    s = HardMiningSampler(weights.size, seed=1, max_repeats=cap)
    s.set_weights(weights)
    s.set_epoch(epoch)
    return s.counts()


def test_water_filling_redistributes_the_excess() -> None:
    counts = _counts(np.array([100.0, 1.0, 1.0, 1.0, 1.0, 1.0]), 2)
    assert counts.sum() == 6 and counts[0] == 2 and counts.max() <= 2


@pytest.mark.parametrize("scale", [1.0, 2.0**-1070, 2.0**1020])  # subnormal weights; a sum that overflows
@pytest.mark.parametrize("cap", [None, 2])
def test_extreme_weight_magnitudes_plan_like_ordinary_ones(scale: float, cap: int | None) -> None:
    relative = np.array([3.0, 1.0, 1.0, 0.0, 1.0, 2.0, 1.0, 1.0] * 4)
    n = relative.size
    with np.errstate(all="raise"):
        counts = _counts(relative * scale, cap)
    assert counts.sum() == n
    if cap is None:  # floor or ceiling of the expected count
        expected = n * relative / relative.sum()
        assert np.all(counts >= np.floor(expected)) and np.all(counts <= np.ceil(expected))
    else:
        assert counts.max() <= cap and counts[relative == 3.0].tolist() == [cap] * 4
    assert counts[relative == 0].sum() == 0


def test_exactly_fillable_at_the_cap() -> None:
    """Every positive weight must sit at the cap: no division by the zero free mass."""
    weights = np.array([5.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    with np.errstate(all="raise"):
        counts = _counts(weights, 2)
    assert counts.tolist() == [2, 0, 2, 0, 2, 0]


def reference_expected(weights: np.ndarray, slots: int, cap: int | None) -> np.ndarray:
    """Expected draws per index, capped with the excess spread in proportion to weight (a slow loop)."""
    expected = slots * weights / weights.sum()
    capped = np.zeros(weights.size, dtype=bool)
    while cap is not None and (expected > cap + 1e-12).any():
        capped |= expected > cap + 1e-12
        rest = slots - cap * capped.sum()
        free = np.where(capped, 0.0, weights)
        expected = np.where(capped, float(cap), rest * free / free.sum())
    return expected


@settings(max_examples=120, deadline=None)
@given(spec=layered_weights(), seed=st.integers(0, 2**20))
def test_every_weight_level_gets_its_share_in_every_epoch_whatever_the_layout(spec: tuple, seed: int) -> None:
    """Each set of indices sharing a weight gets within max(3, 2%) of its expected draws, every epoch
    (the plan is stratified by level, so it is in fact the floor or the ceiling of the expected total)."""
    weights, cap = spec
    n = weights.size
    expected = reference_expected(weights, n, cap)
    s = HardMiningSampler(n, seed=seed, max_repeats=cap)
    s.set_weights(weights)
    values, level = np.unique(weights, return_inverse=True)
    want = np.bincount(level, weights=expected, minlength=values.size)
    for epoch in range(3):
        s.set_epoch(epoch)
        got = np.bincount(level, weights=s.counts(), minlength=values.size)
        assert np.all(np.abs(got - want) <= np.maximum(3.0, 0.02 * want)), (epoch, got, want)
        assert np.all(np.abs(got - want) < 1.0 + 1e-6), (epoch, got, want)


def test_a_periodic_hard_set_is_drawn_as_configured_in_every_epoch() -> None:
    """Every 20th of 20,000 indices at 3x (cap 4): the hard set gets ~2,727 draws in every epoch, not 2,000."""
    n = 20_000
    weights = np.ones(n)
    weights[::20] = 3.0
    s = HardMiningSampler(n, seed=0, max_repeats=4)
    s.set_weights(weights)
    want = n * 3.0 * 1000 / (3.0 * 1000 + 19_000)
    for epoch in range(6):
        s.set_epoch(epoch)
        assert abs(int(s.counts()[::20].sum()) - want) <= 1.0


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 60), replicas=st.integers(1, 9), seed=st.integers(0, 99), weighted=st.booleans())
def test_every_shard_has_len_entries_for_any_size_and_world(n: int, replicas: int, seed: int,
                                                            weighted: bool) -> None:
    shards = []
    for rank in range(replicas):
        s = HardMiningSampler(n, seed=seed, num_replicas=replicas, rank=rank)
        if weighted and n:
            s.set_weights(np.arange(n) % 3 + 1.0)
        s.set_epoch(1)
        shards.append(list(s))
        assert len(shards[-1]) == len(s) == -(-n // replicas)
    if n:  # together the shards are the global stream, wrapped around as often as needed
        glob = HardMiningSampler(n, seed=seed)
        if weighted:
            glob.set_weights(np.arange(n) % 3 + 1.0)
        glob.set_epoch(1)
        total = len(shards[0]) * replicas
        assert sorted(sum(shards, [])) == sorted(np.resize(list(glob), total).tolist())


def test_shards_cover_the_global_stream() -> None:
    n, r = 11, 3
    shards = []
    for rank in range(r):
        s = HardMiningSampler(n, seed=4, num_replicas=r, rank=rank)
        s.set_epoch(2)
        shards.append(list(s))
        assert len(shards[-1]) == len(s) == 4
    glob = HardMiningSampler(n, seed=4)
    glob.set_epoch(2)
    stream = list(glob)
    assert sorted(sum(shards, [])) == sorted(stream + stream[:1])


def test_is_a_plain_sampler_for_accelerate() -> None:
    s = HardMiningSampler(10)
    assert not isinstance(s, RandomSampler)
    assert not hasattr(s, "generator")  # accelerate reseeds an attribute of that name
    assert sorted(x.item() for x in DataLoader(list(range(10)), sampler=s, batch_size=1)) == list(range(10))


@pytest.mark.parametrize(
    ("weights", "cap", "match"),
    [
        (np.ones(4), None, "expected length 5, but got length 4"),
        (np.array([1, 1, -1, 1, 1.0]), None, r"weights\[2\] = -1"),
        (np.array([1, np.nan, 1, 1, 1.0]), None, "finite"),
        (np.array([1, np.inf, 1, 1, 1.0]), None, "finite"),
        (np.array([1, 1, 1, 1, -np.inf]), None, r"finite, but weights\[4\] = -inf"),
        (np.zeros(5), None, "every weight is 0"),
        (np.array([1, 1, 0, 0, 0.0]), 2, "cannot fill 5 slots: only 2 samples.*max_repeats=2"),
        (np.ones((5, 1)), None, "1-D"),
    ],
)
def test_bad_weights_are_refused_without_change(weights: np.ndarray, cap: int | None, match: str) -> None:
    s = HardMiningSampler(5, seed=0, max_repeats=cap)
    s.set_weights(np.arange(1, 6, dtype=float))
    before = list(s)
    with pytest.raises(ValueError, match=match):
        s.set_weights(weights)
    assert list(s) == before


@pytest.mark.parametrize("kwargs", [{"num_samples": -1}, {"num_samples": 3, "seed": -2},
                                    {"num_samples": 3, "max_repeats": 0}, {"num_samples": 3, "rank": 0},
                                    {"num_samples": 3, "num_replicas": 2, "rank": 2}])
def test_bad_settings(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        HardMiningSampler(**kwargs)


@settings(max_examples=30, deadline=None)
@given(spec=sampler_weights(), epoch=st.integers(0, 20))
def test_state_round_trip_reproduces_next_epoch(spec: tuple, epoch: int) -> None:
    n, weights, cap = spec
    a = HardMiningSampler(n, seed=9, max_repeats=cap)
    a.set_weights(weights)
    a.set_epoch(epoch)
    b = HardMiningSampler(n, seed=0, max_repeats=cap)
    b.load_state_dict(a.state_dict())
    assert list(a) == list(b)


def test_state_from_another_size_or_version_is_refused() -> None:
    state = HardMiningSampler(5).state_dict()
    with pytest.raises(ValueError, match="num_samples=5.*num_samples=6"):
        HardMiningSampler(6).load_state_dict(state)
    with pytest.raises(ValueError, match="version"):
        HardMiningSampler(5).load_state_dict({**state, "version": 0})
