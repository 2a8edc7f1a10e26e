"""Selectors: tables of (settings, scores, expected), deterministic ties, property checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from hardmine import Percentile, Threshold, TopK
from hardmine.selection import quantile

IDS = np.array([10, 11, 12, 13, 14, 15])
SCORES = np.array([0.5, 3.0, 2.0, 3.0, 1.0, 2.0], dtype=np.float32)


@pytest.mark.parametrize(
    ("selector", "expected", "cut"),
    [
        (TopK(1), [11], 3.0),
        (TopK(3), [11, 12, 13], 2.0),  # tie at 2.0 between 12 and 15: the smaller id wins
        (TopK(0.5), [11, 12, 13], 2.0),
        (TopK(100), [10, 11, 12, 13, 14, 15], 0.5),
        (Percentile(50), [11, 12, 13, 15], 2.0),
        (Percentile(100), [11, 13], 3.0),
        (Percentile(0), [10, 11, 12, 13, 14, 15], 0.5),
        (Threshold(2.0), [11, 12, 13, 15], 2.0),
        (Threshold(5.0), [], None),
    ],
)
def test_table(selector: object, expected: list[int], cut: float | None) -> None:
    sel = selector.select(IDS, SCORES)  # type: ignore[attr-defined]
    assert sel.ids.tolist() == expected
    assert sel.cut == cut


@pytest.mark.parametrize("selector", [TopK(3), Percentile(90), Threshold(0.0)])
def test_empty_input(selector: object) -> None:
    sel = selector.select(np.empty(0, np.int64), np.empty(0, np.float32))  # type: ignore[attr-defined]
    assert len(sel) == 0 and sel.cut is None


@settings(max_examples=60, deadline=None)
@given(scores=hnp.arrays(np.float32, st.integers(1, 60), elements=st.sampled_from([0.0, 1.0, 1.5, 2.0, 7.0])),
       k=st.integers(1, 70), data=st.data())
def test_topk_properties(scores: np.ndarray, k: int, data: st.DataObject) -> None:
    ids = np.sort(np.array(data.draw(st.lists(st.integers(-1000, 1000), min_size=scores.size,
                                              max_size=scores.size, unique=True)), dtype=np.int64))
    sel = TopK(k).select(ids, scores)
    assert len(sel) == min(k, ids.size)
    chosen = np.isin(ids, sel.ids)
    if chosen.all():
        return
    assert scores[chosen].min() >= scores[~chosen].max()  # nothing left out scores higher
    at_cut = scores == sel.cut
    # among ids tied at the cut, the chosen ones are the smallest
    assert ids[at_cut & chosen].max(initial=-10**9) < ids[at_cut & ~chosen].min(initial=10**9)
    perm = data.draw(st.permutations(range(ids.size)))
    assert TopK(k).select(ids[perm], scores[perm]).ids.tolist() == sel.ids.tolist()


@pytest.mark.parametrize(("make", "match"), [(lambda: TopK(0), "k must be"), (lambda: TopK(-2), "k must be"),
                                             (lambda: TopK(2.5), "integer"),
                                             (lambda: Percentile(101), "between 0 and 100"),
                                             (lambda: Percentile(-1), "between 0 and 100"),
                                             (lambda: Threshold(float("nan")), "finite")])
def test_bad_settings(make: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()  # type: ignore[operator]


@settings(max_examples=300, deadline=None)
@given(values=hnp.arrays(st.sampled_from([np.float32, np.float64]), st.integers(1, 60),
                         elements=st.floats(-1e6, 1e6, width=32)),
       q=st.one_of(st.sampled_from([0.0, 0.25, 0.5, 0.9, 1.0]), st.floats(0.0, 1.0)))
def test_quantile_is_numpys_to_the_bit(values: np.ndarray, q: float) -> None:
    """One partition gives exactly np.quantile's linear interpolation (its dtype too), and np.percentile of a
    float64 copy when interpolating in float64; the input is left as it was."""
    before = values.copy()
    got = quantile(values, q)
    want = np.quantile(values, q)
    assert got.dtype == want.dtype and got == want, (got, want)  # finite inputs: no NaN to compare
    p = q * 100  # the Percentile selector's way: quantile(scores, p / 100, float64)
    assert quantile(values, p / 100, np.float64) == np.percentile(values.astype(np.float64), p)
    assert np.array_equal(values, before)


def test_quantile_refuses_an_empty_array() -> None:
    with pytest.raises(ValueError, match=r"non-empty 1-D array, but got shape \(0,\)"):
        quantile(np.empty(0), 0.5)
