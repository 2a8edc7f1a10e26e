"""Planner: the weights it sets and the figures it reports are the plan the sampler will draw, exactly."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import hardmine as hm
from hardmine.fusion import FusionDataset
from hardmine.ids import MappedIds


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 80), data=st.data(), weight=st.floats(1.0, 6.0), seed=st.integers(0, 2**20))
def test_figures_are_read_off_the_plan(n: int, data: st.DataObject, weight: float, seed: int) -> None:
    mined = np.flatnonzero(data.draw(hnp.arrays(bool, n)))
    sampler = hm.HardMiningSampler(n, seed=seed, max_repeats=None)
    figures = hm.Planner(weight).plan(sampler, mined, epoch=3)
    counts = np.bincount(list(sampler), minlength=n)
    assert sampler.epoch == 3 and figures.total_draws == n == int(counts.sum())
    assert sum(figures.draws_hist) == n and figures.draws_hist == np.bincount(counts).tolist()
    if mined.size:
        assert figures.mined_draws == int(counts[mined].sum())
        rest = np.setdiff1d(np.arange(n), mined)
        assert figures.draw_ratio is not None
        if rest.size and counts[rest].sum():
            assert np.isclose(figures.draw_ratio * counts[rest].mean(), counts[mined].mean())
    else:
        assert figures.mined_draws is None and sampler.weights is None


def test_mined_draws_count_every_index_of_a_mapped_id() -> None:
    space = MappedIds(6, [10, 10, 11, 12, 12, 12])
    sampler = space.new_sampler(seed=0, max_repeats=4)
    figures = hm.Planner(3.0).plan(sampler, space.positions(np.array([12])), epoch=0)
    counts = sampler.counts()
    assert figures.mined_draws == int(counts[3:].sum()) and figures.total_draws == 6


def test_fusion_figures_count_auxiliary_draws_in_the_total() -> None:
    fusion = FusionDataset({"a": [{"x": i} for i in range(10)]}, {"b": ([{"y": i} for i in range(50)], 0.4)})
    sampler = fusion.make_sampler(seed=1, max_repeats=3)
    figures = hm.Planner(2.0).plan(sampler, np.array([0, 1]), epoch=0)
    assert figures.total_draws == 14 and figures.per_source == {"a": 10, "b": 4}
    assert figures.mined_draws == int(sampler.counts()[:2].sum()) and sum(figures.draws_hist) == 10
