"""The frequency prior: weights from categories (a slow reference), multi-category max, composition with
hardness in a fixed-length plan, fusion auxiliaries untouched, config, events and resume."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hardmine as hm
from hardmine.config import DEFAULT_PRIOR
from hardmine.fusion import FusionDataset
from hardmine.prior import ClassBalanced, RepeatFactor, prior_and_groups
from tests.strategies import priors, sample_categories
from tests.strategies_fusion import FusionSpec, fusion_specs


def as_sets(cats: list[int | list[int]]) -> list[set[int]]:
    return [{c} if isinstance(c, int) else set(c) for c in cats]


def slow_category_weights(cats: list[int | list[int]], kind: str, value: float) -> dict[int, float]:
    """Each category's weight, by the definition."""
    sets = as_sets(cats)
    counts = Counter(c for s in sets for c in s)
    share = {c: k / len(sets) for c, k in counts.items()}
    top = max(share.values(), default=1.0)
    if kind == "repeat_factor":
        return {c: max(1.0, math.sqrt(value / f)) for c, f in share.items()}
    return {c: float((top / f) ** value) for c, f in share.items()}


def slow_prior(cats: list[int | list[int]], kind: str, value: float) -> list[float]:
    """The definition, one sample and one category at a time."""
    weight = slow_category_weights(cats, kind, value)
    return [max((weight[c] for c in s), default=1.0) for s in as_sets(cats)]


def slow_deciding(cats: list[int | list[int]], kind: str, value: float) -> list[int | None]:
    """Each sample's deciding category: of its categories with the largest weight, the smallest id."""
    weight = slow_category_weights(cats, kind, value)
    return [min((c for c in s if weight[c] == max(weight[d] for d in s)), default=None) for s in as_sets(cats)]


def build(kind: str, value: float) -> hm.Prior:
    return RepeatFactor(value) if kind == "repeat_factor" else ClassBalanced(value)


@settings(max_examples=150, deadline=None)
@given(cats=sample_categories(), prior=priors)
def test_weights_from_categories_equal_a_slow_reference(cats: list[int | list[int]], prior: tuple[str, float]
                                                        ) -> None:
    got = build(*prior).weights(hm.Categories.from_samples(cats))
    assert np.allclose(got, slow_prior(cats, *prior), rtol=1e-12, atol=0)
    assert got.shape == (len(cats),) and bool(np.all(got >= 1.0))


@settings(max_examples=80, deadline=None)
@given(cats=sample_categories(), prior=priors)
def test_a_multi_category_sample_takes_the_max_of_its_categories(cats: list[int | list[int]],
                                                                 prior: tuple[str, float]) -> None:
    categories = hm.Categories.from_samples(cats)
    p = build(*prior)
    per_category = dict(zip(categories.values.tolist(), p.category_weights(categories.sample_share()).tolist()))
    for w, s in zip(p.weights(categories).tolist(), as_sets(cats)):
        assert w == max((per_category[c] for c in s), default=1.0)


def test_repeated_categories_count_once_and_arrays_read_like_lists() -> None:
    a = hm.Categories.from_samples([[5, 5, 5], [5], [2]])
    assert a.sample_share().tolist() == [1 / 3, 2 / 3] and a.lengths().tolist() == [1, 1, 1]
    b = hm.Categories.from_samples(np.array([5, 5, 2]))
    assert np.array_equal(a.codes, b.codes) and np.array_equal(a.offsets, b.offsets)


@pytest.mark.parametrize(("cats", "message"), [
    (["person"], "map category names to ints"),
    ([[1, 2.5]], "must hold ints"),
    ([1.0], "an int or an iterable of ints"),
    (np.zeros((2, 2), dtype=np.int64), "must be 1-D"),
    (np.array([0.5]), "must be integers"),
])
def test_bad_categories_are_refused_naming_the_value(cats: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        hm.Categories.from_samples(cats)


def test_categories_must_cover_every_sample() -> None:
    with pytest.raises(ValueError, match="expected 5, but got 4"):
        hm.HardMiner({}, num_samples=5, categories=[0, 1, 1, 1])


def test_categories_from_a_dataset_column_read_the_arrow_data() -> None:
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"objects": [{"category": [1, 2]}, {"category": [2]}, {"category": []}],
                                     "label": [3, 3, 4]}).select([2, 0, 1])
    nested = hm.Categories.from_column(ds, "objects.category")
    assert nested.values.tolist() == [1, 2] and nested.lengths().tolist() == [0, 2, 1]
    assert hm.Categories.from_column(ds, "label").sample_share().tolist() == [2 / 3, 1 / 3]
    with pytest.raises(ValueError, match="no column 'boxes'"):
        hm.Categories.from_column(ds, "boxes")


def slow_held_prior(p: np.ndarray, hard: np.ndarray, keep: float | None, deciding: list[int | None]
                    ) -> np.ndarray:
    """The prior after ``keep_rare_share``, the slow way: scale the samples of every rare category (the samples
    whose weight, at least ``keep``, it decides) while its share of prior x hardness is below its share of the
    prior, until none is."""
    if keep is None:
        return p
    out = p.copy()
    of = np.array([-10**9 if d is None else d for d in deciding])
    rare = sorted({int(c) for c, w in zip(of, p) if w >= keep})
    for _ in range(10_000):
        w = out * hard
        short = [c for c in rare if w[of == c].sum() / w.sum() < p[of == c].sum() / p.sum() * (1 - 1e-12)]
        if not short:
            break
        for c in short:
            out[of == c] *= (p[of == c].sum() / p.sum()) / (w[of == c].sum() / w.sum())
    return out


@settings(max_examples=40, deadline=None)
@given(cats=sample_categories(max_n=30), prior=priors, seed=st.integers(0, 2**16), k=st.integers(1, 5),
       cap=st.one_of(st.none(), st.integers(2, 4)), keep=st.sampled_from([None, 1.5, 2.0, 4.0]))
def test_the_plan_is_prior_times_hardness_at_a_fixed_epoch_length(cats: list[int | list[int]],
                                                                  prior: tuple[str, float], seed: int, k: int,
                                                                  cap: int | None, keep: float | None) -> None:
    kind, value = prior
    spec = {"kind": kind, ("threshold" if kind == "repeat_factor" else "power"): value}
    n = len(cats)
    miner = hm.HardMiner({"seed": seed, "trigger": {"kind": "epoch", "start_epoch": 0}, "guard": None,
                          "select": {"kind": "top_k", "k": min(k, n)},
                          "resample": {"hard_weight": 3.0, "max_repeats": cap, "prior": spec,
                                       "keep_rare_share": keep}},
                         num_samples=n, categories=cats)
    p = np.asarray(slow_prior(cats, kind, value))
    p /= p.min()  # the planner's prior: the least boosted sample weighs 1
    assert np.allclose(miner.sampler.weights, p) and len(list(miner.sampler)) == n  # epoch 0: the prior alone
    for epoch in range(2):
        miner.record(np.arange(n), np.arange(n, dtype=np.float32))  # the highest indices are the hardest
        event = miner.end_epoch(epoch)
        hard = np.where(np.isin(np.arange(n), miner.hard_ids), 3.0, 1.0)
        deciding = slow_deciding(cats, kind, value)
        held = slow_held_prior(p, hard, keep, deciding)
        w = miner.sampler.weights
        assert np.allclose(w, held * hard, rtol=1e-6)
        of = np.array([-10**9 if d is None else d for d in deciding])  # category ids may be negative
        for c in set(of[p >= (keep or np.inf)].tolist()):  # a rare category never loses share to mining
            assert w[of == c].sum() / w.sum() >= p[of == c].sum() / p.sum() * (1 - 1e-9)
        assert np.allclose(held[p < (keep or np.inf)], p[p < (keep or np.inf)])  # the rest keep the prior
        draws = list(miner.sampler)
        assert len(draws) == n == event.total_draws
        if cap is not None:
            assert max(Counter(draws).values()) <= cap
        assert event.prior_boosted == int((p > 1).sum())
        assert event.boost_draws is not None and event.prior_boost_draws is not None
        assert 0.0 <= event.prior_boost_draws <= event.boost_draws + 1e-9
        if keep is None or p.max() < keep:
            assert event.rare_scale is None
        else:
            assert event.rare_scale is not None and event.rare_scale >= 1.0
            assert np.isclose(event.rare_scale, float(np.max(held / p)), rtol=1e-6)


def test_mining_outside_the_rare_categories_leaves_them_their_prior_share(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    # 90 common samples, 10 rare (prior 9): the 20 hardest are common, x4. Without keep_rare_share the rare
    # category's share of the epoch falls from 90 / 180 = 1/2 to 90 / (70 + 80 + 90) = 0.375; with it, it stays 1/2
    cats = [0] * 90 + [1] * 10
    base = {"seed": 0, "trigger": {"kind": "epoch", "start_epoch": 0}, "guard": None,
            "select": {"kind": "top_k", "k": 20}, "resample": {"hard_weight": 4.0, "max_repeats": None}}
    shares = {}
    for keep in (None, 2.0):
        miner = hm.HardMiner({**base, "resample": {**base["resample"], "keep_rare_share": keep}}, num_samples=100,
                             categories=cats)
        miner.record(np.arange(100), np.r_[np.arange(90, dtype=np.float32) + 10, np.zeros(10, np.float32)])
        event = miner.end_epoch(0)
        assert set(miner.hard_ids.tolist()) == set(range(70, 90))
        shares[keep] = sum(1 for i in miner.sampler if i >= 90) / 100
        if keep is not None:
            # lifted to 150 (the weight of the rest), from 90
            assert event.rare_scale == pytest.approx(150 / 90) and "hardmine/rare_scale" in event.scalars()
    assert shares[None] == pytest.approx(0.375, abs=0.011) and shares[2.0] == pytest.approx(0.5, abs=0.011)
    from hardmine.cli import main

    assert main(["report", str(miner.save(tmp_path / "m.npz"))]) == 0
    out = capsys.readouterr().out
    assert "rare share: kept by raising the rare categories' prior in 1 of 1 epochs (by up to 1.67x)" in out
    assert "rare kept" in out and "x1.67" in out and "keep at least the share of the epoch" in out


@settings(max_examples=80, deadline=None)
@given(cats=sample_categories(), prior=priors)
def test_each_sample_is_grouped_under_the_category_that_decides_its_weight(cats: list[int | list[int]],
                                                                          prior: tuple[str, float]) -> None:
    weights, groups = prior_and_groups(build(*prior), cats, len(cats))
    categories = hm.Categories.from_samples(cats)
    expected = [-1 if d is None else int(np.searchsorted(categories.values, d))
                for d in slow_deciding(cats, *prior)]
    assert groups.tolist() == expected
    slow = np.asarray(slow_prior(cats, *prior))
    assert np.allclose(weights, slow / slow.min(), rtol=1e-12, atol=0) and weights.min() == 1.0


def test_a_prior_that_boosts_every_sample_alike_boosts_none() -> None:
    # ten balanced classes, repeat-factor threshold 0.3 > f = 0.1: every sample's raw factor is sqrt(3); in a
    # fixed-length plan that is uniform, so nothing counts as boosted and the cap is not lifted for it
    cats = np.repeat(np.arange(10), 10)
    cfg = {"seed": 3, "trigger": {"kind": "epoch", "start_epoch": 0}, "select": {"kind": "top_k", "k": 0.2},
           "resample": {"hard_weight": 8.0, "max_repeats": 2}}
    flat = hm.HardMiner({**cfg, "resample": {**cfg["resample"], "prior": {"kind": "repeat_factor", "threshold": 0.3}}},
                        num_samples=100, categories=cats)
    none = hm.HardMiner(cfg, num_samples=100)
    assert flat.sampler.weights.tolist() == [1.0] * 100
    losses = np.linspace(0.0, 1.0, 100, dtype=np.float32)
    for epoch in range(3):
        events = []
        for m in (flat, none):
            m.sampler.set_epoch(epoch)
            m.record(np.arange(100), losses)
            events.append(m.end_epoch(epoch))
        assert events[0].prior_boosted == 0 and events[0].prior_boost_draws == 0.0
        assert list(flat.sampler) == list(none.sampler)  # the same plan as without a prior: the cap holds at 2
        assert max(Counter(list(flat.sampler)).values()) <= 2


def test_two_equally_rare_categories_each_keep_their_share() -> None:
    # 80 common samples, two rare categories of 10 (prior 8 each). Mining all of category 1 (x4) would take
    # category 2 from 1/3 of the epoch to 80 / 480; grouped by prior weight the two would only keep 2/3 together
    cats = [0] * 80 + [1] * 10 + [2] * 10
    miner = hm.HardMiner({"seed": 0, "trigger": {"kind": "epoch", "start_epoch": 0}, "guard": None,
                          "select": {"kind": "top_k", "k": 10},
                          "resample": {"hard_weight": 4.0, "max_repeats": None, "keep_rare_share": 2.0}},
                         num_samples=100, categories=cats)
    miner.record(np.arange(100), np.r_[np.zeros(80), np.ones(10), np.zeros(10)].astype(np.float32))
    event = miner.end_epoch(0)
    assert miner.hard_ids.tolist() == list(range(80, 90))
    w = miner.sampler.weights
    assert w[90:].sum() / w.sum() == pytest.approx(1 / 3) and w[80:90].sum() / w.sum() > 1 / 3
    assert event.rare_scale == pytest.approx((80 + 320) / 2 / 80)  # category 2 raised to half the rest's weight


@pytest.mark.parametrize("value", [1.0, 0.5, -2.0, float("nan")])
def test_keep_rare_share_is_checked_by_name(value: float) -> None:
    with pytest.raises(ValueError, match="keep_rare_share"):
        hm.HardMiningConfig.model_validate({"resample": {"keep_rare_share": value}})


@settings(max_examples=30, deadline=None)
@given(spec=fusion_specs(max_size=30), data=st.data(), seed=st.integers(0, 2**16))
def test_fusion_categories_per_target_leave_the_auxiliaries_untouched(spec: FusionSpec, data: st.DataObject,
                                                                      seed: int) -> None:
    fusion = spec.build()
    cats = {name: data.draw(st.lists(st.integers(0, 3), min_size=size, max_size=size))
            for name, size, _ in spec.targets}
    cfg = {"seed": seed, "resample": {"max_repeats": spec.max_repeats}}
    plain = hm.HardMiner(cfg, dataset=fusion)
    prior = hm.HardMiner(cfg, dataset=fusion, categories=cats)
    lay = fusion.id_index()
    t_end = lay.num_mineable
    default = DEFAULT_PRIOR.build()
    expect = np.concatenate([default.weights(hm.Categories.from_samples(cats[n])) for n, _, _ in spec.targets])
    assert np.allclose(prior.sampler.weights, expect)
    _, groups = prior_and_groups(default, cats, t_end, fusion=lay)
    starts = np.cumsum([0] + [size for _, size, _ in spec.targets])
    per_target = [set(groups[a:b].tolist()) - {-1} for a, b in zip(starts[:-1], starts[1:])]
    assert sum(map(len, per_target)) == len(set().union(*per_target))  # one category in two targets: two groups
    for epoch in range(2):
        for m in (plain, prior):
            m.sampler.set_epoch(epoch)
        a, b = np.array(list(plain.sampler)), np.array(list(prior.sampler))
        assert len(a) == len(b) == len(plain.sampler)
        assert Counter(a[a >= t_end].tolist()) == Counter(b[b >= t_end].tolist())  # the auxiliary draws, exactly
        assert prior.sampler.source_counts() == spec.expected_quotas()


def test_fusion_categories_must_name_the_targets_only() -> None:
    fusion = FusionDataset({"a": list(range(4))}, {"b": (list(range(10)), 0.5)})
    with pytest.raises(ValueError, match="auxiliary source"):
        hm.HardMiner({}, dataset=fusion, categories={"a": [0, 0, 1, 1], "b": [0] * 10})
    with pytest.raises(ValueError, match="missing \\['a'\\]"):
        hm.HardMiner({}, dataset=fusion, categories={})
    with pytest.raises(TypeError, match="per target source"):
        hm.HardMiner({}, dataset=fusion, categories=[0, 0, 1, 1])


def test_prior_config_auto_null_and_explicit() -> None:
    cats = [0] * 9 + [1]
    assert hm.HardMiner({}, num_samples=10).planner.prior is None  # auto without categories: none
    assert hm.HardMiner({"resample": {"prior": None}}, num_samples=10, categories=cats).planner.prior is None
    auto = hm.HardMiner({}, num_samples=10, categories=cats).planner.prior
    assert auto is not None and auto[-1] > 1.0 == auto[0]
    explicit = hm.HardMiner({"resample": {"prior": {"kind": "repeat_factor", "threshold": 0.4}}}, num_samples=10,
                            categories=cats)
    assert explicit.planner.prior is not None and explicit.planner.prior[-1] == 2.0
    with pytest.raises(ValueError, match="no categories were given"):
        hm.HardMiner({"resample": {"prior": {"kind": "class_balanced"}}}, num_samples=10)
    disabled = hm.HardMiner({"enabled": False}, num_samples=10, categories=cats)
    assert disabled.planner.prior is None and sorted(disabled.sampler) == list(range(10))


def test_event_logs_and_report_show_the_prior_share(tmp_path: Path) -> None:
    miner = hm.HardMiner({"trigger": {"kind": "epoch", "start_epoch": 1}, "guard": None}, num_samples=20,
                         categories=[0] * 16 + [1] * 4)
    for epoch in range(3):
        miner.sampler.set_epoch(epoch)
        miner.record(np.arange(20), np.linspace(0.1, 2.0, 20))
        event = miner.end_epoch(epoch)
    logs = event.scalars()
    assert logs["hardmine/prior_boosted"] == 4.0
    assert 0.0 < logs["hardmine/prior_boost_share"] < 1.0 and "hardmine/prior_draw_share" in logs
    first = miner.history[0].scalars()
    assert first["hardmine/prior_boost_share"] == 1.0  # before mining, the whole boost is the prior's
    path = miner.save(tmp_path / "m.npz")
    from hardmine.cli import main

    assert main(["report", str(path)]) == 0


def test_resume_needs_the_same_categories(tmp_path: Path) -> None:
    cfg = {"trigger": {"kind": "epoch", "start_epoch": 0}}
    cats = [0] * 8 + [1] * 2
    miner = hm.HardMiner(cfg, num_samples=10, categories=cats)
    miner.record(np.arange(10), np.linspace(0, 1, 10))
    miner.end_epoch(0)
    path = miner.save(tmp_path / "m.npz")
    again = hm.HardMiner.load(path, categories=cats)
    assert np.array_equal(again.sampler.weights, miner.sampler.weights)
    with pytest.raises(ValueError, match="categories"):
        hm.HardMiner.load(path)
    with pytest.raises(ValueError, match="categories"):
        hm.HardMiner.load(path, categories=[0] * 5 + [1] * 5)


def _tail_run(rare_loss: float, lift: float | None = 0.1, epochs: int = 4) -> hm.HardMiner:
    """95 common samples and 5 of a rare category (prior 19x); every loss 0.1 but the rare ones' ``rare_loss``."""
    cats = [0] * 95 + [1] * 5
    miner = hm.HardMiner({"seed": 0, "resample": {"lift_cap_below": lift}}, num_samples=100, categories=cats)
    losses = np.where(np.arange(100) < 95, 0.1, rare_loss).astype(np.float32)
    for epoch in range(epochs):
        miner.sampler.set_epoch(epoch)
        miner.record(np.arange(100), losses)
        miner.end_epoch(epoch)
    return miner


def test_the_cap_is_lifted_once_the_guard_vouches_for_the_prior_boosted_labels(caplog: pytest.LogCaptureFixture
                                                                               ) -> None:
    with caplog.at_level("INFO", logger="hardmine"):
        miner = _tail_run(rare_loss=0.1)  # the rare samples are learned: nothing to flag
    lines = [r.getMessage() for r in caplog.records if "epoch" in r.getMessage()]
    assert "max_repeats lifted (the guards keep out 0.0% of the prior-boosted samples)" in lines[2]
    assert "lifted" not in lines[1]
    h = miner.history
    assert [e.boosted_flagged for e in h[:2]] == [None, None]  # the guard is warming up (3 epochs): the cap holds
    assert not h[0].cap_lifted and not h[1].cap_lifted
    assert [e.cap_lifted for e in h[2:]] == [True, True] and h[-1].boosted_flagged == 0.0
    assert miner.sampler.max_repeats is None
    counts = miner.sampler.counts()
    assert counts[95:].min() > 4 and counts.sum() == 100  # the prior (19x) beyond the configured cap, same length
    logs = h[-1].scalars()
    assert logs["hardmine/cap_lifted"] == 1.0 and logs["hardmine/boosted_flagged"] == 0.0
    assert "hardmine/cap_lifted" not in h[0].scalars()


def test_the_cap_holds_where_the_guard_flags_the_prior_boosted_samples() -> None:
    miner = _tail_run(rare_loss=3.0)  # low, flat confidence: what a flipped label looks like
    last = miner.history[-1]
    assert last.excluded.get("hard_to_learn", 0) > 0 and last.boosted_flagged == 1.0 and not last.cap_lifted
    assert miner.sampler.max_repeats == 4 and miner.sampler.counts().max() <= 4


def test_lift_cap_below_null_keeps_the_cap() -> None:
    miner = _tail_run(rare_loss=0.1, lift=None)
    assert all(e.boosted_flagged is None and not e.cap_lifted for e in miner.history)
    assert miner.sampler.max_repeats == 4 and miner.sampler.counts().max() <= 4
    no_prior = hm.HardMiner({}, num_samples=10)  # without categories the rule never applies
    no_prior.record(np.arange(10), np.ones(10, np.float32))
    assert no_prior.end_epoch(0).boosted_flagged is None


@pytest.mark.parametrize("value", [0, -0.1, 1.5, float("nan")])
def test_lift_cap_below_is_checked_by_name(value: float) -> None:
    with pytest.raises(ValueError, match="lift_cap_below"):
        hm.HardMiningConfig.model_validate({"resample": {"lift_cap_below": value}})


def test_a_lifted_cap_survives_a_resume_and_the_report_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                               ) -> None:
    miner = _tail_run(rare_loss=0.1)
    path = miner.save(tmp_path / "m.npz")
    again = hm.HardMiner.load(path, categories=[0] * 95 + [1] * 5)
    assert again.sampler.max_repeats is None
    assert np.array_equal(again.sampler.counts(), miner.sampler.counts())
    for m in (miner, again):  # one more epoch each: the same plan
        m.sampler.set_epoch(4)
        m.record(np.arange(100), np.full(100, 0.1, np.float32))
        m.end_epoch(4)
    assert list(again.sampler) == list(miner.sampler)
    from hardmine.cli import main

    assert main(["report", str(path)]) == 0
    out = capsys.readouterr().out
    assert "repeat cap: lifted after 2 of the 2 epochs the guards judged" in out
    assert "lifted while the noise guards keep out less than 10% of the samples the prior boosts" in out
    assert "boosted flagged" in out and "lifted" in out.split("boosted flagged")[1]
