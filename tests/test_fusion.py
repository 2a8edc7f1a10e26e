"""FusionDataset and FusionSampler: fixed length, exact quotas, ids, determinism, bad input."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import warnings
import zlib

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import RandomSampler, Sampler

from hardmine.fusion import FusionDataset, FusionSampler, Pool, decode_ids
from hardmine.sampler import epoch_generator
from tests.strategies_fusion import FusionSpec, fusion_specs, target_weights

ID_BITS = 40


def source_of(spec: FusionSpec, flat: np.ndarray) -> np.ndarray:
    """Source position of flat indices, from the spec alone (targets first, then auxiliaries)."""
    sizes = [s for _, s, _ in spec.targets] + [s for _, s, _, _ in spec.auxiliaries]
    return np.searchsorted(np.cumsum(sizes), flat, side="right")


def names_of(spec: FusionSpec) -> list[str]:
    return [t[0] for t in spec.targets] + [a[0] for a in spec.auxiliaries]


def check_epoch(spec: FusionSpec, stream: list[int], fusion: FusionDataset) -> None:
    """Length, exact per-source counts and auxiliary draw rules of one epoch's stream."""
    quotas = spec.expected_quotas()
    assert len(stream) == sum(quotas.values())
    flat = np.asarray(stream, dtype=np.int64)
    assert flat.size == 0 or (flat.min() >= 0 and flat.max() < len(fusion))
    per_source = np.bincount(source_of(spec, flat), minlength=len(quotas))
    assert dict(zip(names_of(spec), per_source.tolist())) == quotas
    counts = np.bincount(flat, minlength=len(fusion))
    offset = sum(s for _, s, _ in spec.targets)
    for name, size, _, replacement in spec.auxiliaries:
        part = counts[offset : offset + size]
        offset += size
        if not replacement and size:  # without replacement: balanced passes over the pool
            q = quotas[name]
            assert part.min() >= q // size and part.max() <= -(-q // size), (name, part)


@settings(max_examples=60, deadline=None)
@given(spec=fusion_specs(), seed=st.integers(0, 2**31), epoch=st.integers(0, 1000), data=st.data())
def test_length_and_quotas_constant_across_epochs_and_mining(spec: FusionSpec, seed: int, epoch: int,
                                                             data: st.DataObject) -> None:
    fusion = spec.build()
    s = fusion.make_sampler(seed=seed, max_repeats=spec.max_repeats)
    length = len(s)
    assert length == sum(spec.expected_quotas().values()) == fusion.epoch_length
    assert s.source_counts() == spec.expected_quotas() == fusion.quotas()
    for e in (epoch, epoch + 1):
        s.set_epoch(e)
        stream = list(s)
        check_epoch(spec, stream, fusion)
        np.testing.assert_array_equal(np.bincount(stream, minlength=len(fusion)), s.counts())
    weights = data.draw(target_weights(spec))
    s.set_weights(weights)
    for e in (epoch, epoch + 7):
        s.set_epoch(e)
        stream = list(s)
        assert len(s) == length
        check_epoch(spec, stream, fusion)
        counts = s.counts()
        if spec.max_repeats is not None:
            assert counts[: fusion.num_mineable].max() <= spec.max_repeats


@settings(max_examples=40, deadline=None)
@given(spec=fusion_specs(), seed=st.integers(0, 2**31), epoch=st.integers(0, 100), data=st.data())
def test_deterministic_per_seed_epoch_weights(spec: FusionSpec, seed: int, epoch: int,
                                              data: st.DataObject) -> None:
    a = spec.build().make_sampler(seed=seed, max_repeats=spec.max_repeats)
    b = spec.build().make_sampler(seed=seed, max_repeats=spec.max_repeats)
    b.set_epoch(epoch + 3)
    list(b)  # another epoch iterated first must not leak into this one
    for s in (a, b):
        s.set_epoch(epoch)
    assert list(a) == list(b) == list(a)
    weights = data.draw(target_weights(spec))
    for s in (a, b):
        s.set_weights(weights)
    assert list(a) == list(b)


def test_streams_differ_by_seed_and_epoch_and_ignore_global_rng() -> None:
    fusion = FusionDataset({"t": range(200)}, {"a": (range(1000), 0.5)})
    s = fusion.make_sampler(seed=1)
    first = list(s)
    torch.manual_seed(123)
    np.random.seed(5)
    assert list(s) == first
    s.set_epoch(1)
    assert list(s) != first
    assert list(fusion.make_sampler(seed=2)) != first


@settings(max_examples=40, deadline=None)
@given(spec=fusion_specs(max_size=40))
def test_ids_round_trip_and_never_collide(spec: FusionSpec) -> None:
    fusion = spec.build(dict_items=True)
    flat = np.arange(len(fusion))
    ids = fusion.sample_id(flat)
    assert np.unique(ids).size == len(fusion)  # no collision, within or across sources
    names, index = fusion.decode_many(ids)
    src = source_of(spec, flat)
    expected_names = np.asarray(names_of(spec))[src] if flat.size else np.empty(0, str)
    np.testing.assert_array_equal(names, expected_names)
    sizes = [s for _, s, _ in spec.targets] + [s for _, s, _, _ in spec.auxiliaries]
    starts = np.concatenate([[0], np.cumsum(sizes)])
    np.testing.assert_array_equal(index, flat - starts[src])
    np.testing.assert_array_equal(fusion.id_index().slots(ids), flat)
    np.testing.assert_array_equal(fusion.id_index().ids(flat), ids)
    d_names, d_index = decode_ids(fusion.describe(), ids)
    np.testing.assert_array_equal(d_names, names)
    np.testing.assert_array_equal(d_index, index)
    for i in range(0, len(fusion), max(1, len(fusion) // 7)):
        item = fusion[i]
        assert item["sample_id"] == fusion.sample_id(i) == ids[i]
        assert fusion.decode(item["sample_id"]) == (item["source"], item["i"])
        assert (item["source"], item["i"]) == (item["name"], int(index[i]))


def test_ids_are_the_documented_stable_encoding() -> None:
    fusion = FusionDataset({"bbu": [{"x": 1}] * 10}, {"lvis": ([{"x": 2}] * 5, 0.5)})
    code = zlib.crc32(b"bbu") & ((1 << 22) - 1)
    assert fusion.sample_id(7) == (code << ID_BITS) | 7
    assert fusion[12]["sample_id"] == ((zlib.crc32(b"lvis") & ((1 << 22) - 1)) << ID_BITS) | 2
    assert all(0 <= i < 2**62 for i in fusion.sample_id(np.arange(15)).tolist())


def test_ids_do_not_depend_on_the_process() -> None:
    code = ("import numpy as np; from hardmine.fusion import FusionDataset; "
            "f = FusionDataset({'bbu': range(4)}, {'lvis': (range(3), 0.5), 'coco': (range(2), 0.5)}); "
            "print(f.sample_id(np.arange(len(f))).tolist())")
    outs = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        outs.add(subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True,
                                text=True).stdout)
    here = FusionDataset({"bbu": range(4)}, {"lvis": (range(3), 0.5), "coco": (range(2), 0.5)})
    assert outs == {f"{here.sample_id(np.arange(len(here))).tolist()}\n"}


def test_items_gain_id_and_source_non_dicts_unchanged() -> None:
    fusion = FusionDataset({"t": [{"x": 0}, {"x": 1}]}, {"plain": (["a", "b", "c"], 1.0)})
    assert fusion[1] == {"x": 1, "sample_id": fusion.sample_id(1), "source": "t"}
    assert fusion[2] == "a" and fusion[-1] == "c"
    assert fusion.decode(fusion.sample_id(4)) == ("plain", 2)
    with pytest.raises(IndexError, match="out of range"):
        fusion[5]


def test_sampler_protocol() -> None:
    fusion = FusionDataset({"t": range(10)}, {"a": (range(10), 0.5)})
    s = fusion.make_sampler(seed=0, max_repeats=2)
    assert isinstance(s, Sampler) and isinstance(s, FusionSampler) and not isinstance(s, RandomSampler)
    assert not hasattr(s, "generator")
    assert fusion.num_mineable == 10 and len(fusion) == 20 and len(s) == 15
    assert sorted(i for i in s if i < 10) == list(range(10))  # uniform: the targets are a permutation


def test_uniform_targets_at_ratio_one_are_a_permutation_and_ratio_spreads_randomly() -> None:
    fusion = FusionDataset({"t": range(30), "half": Pool(range(20), ratio=0.5)}, {"a": (range(9), 0.2)})
    s = fusion.make_sampler(seed=3)
    chosen = set()
    for epoch in range(12):
        s.set_epoch(epoch)
        stream = np.array(list(s))
        assert sorted(stream[stream < 30].tolist()) == list(range(30))
        half = stream[(stream >= 30) & (stream < 50)] - 30
        assert half.size == 10 and np.unique(half).size == 10
        chosen.add(tuple(sorted(half.tolist())))
    assert len(chosen) > 2  # not a fixed lattice (every other index) with one random offset


def test_draw_subset_is_uniform_and_distinct() -> None:
    from hardmine._draws import draw_subset

    n, k, trials = 12, 4, 3000
    hits = np.zeros(n, dtype=np.int64)
    for t in range(trials):
        sub = draw_subset(n, k, epoch_generator(0, t, 9))
        assert sub.size == k and np.unique(sub).size == k and sub.min() >= 0 and sub.max() < n
        hits[sub] += 1
    expected = trials * k / n  # 1000, sd ~ 26
    assert np.all(np.abs(hits - expected) < 6 * np.sqrt(trials * (k / n) * (1 - k / n))), hits
    big = draw_subset(10**6, 1000, epoch_generator(1, 2, 3))
    assert big.size == 1000 and np.unique(big).size == 1000


def test_auxiliary_without_replacement_has_no_duplicates_and_replacement_may() -> None:
    fusion = FusionDataset({"t": range(100)},
                           {"no": (range(80), 0.7), "yes": Pool(range(80), 0.7, replacement=True)})
    s = fusion.make_sampler(seed=0)
    stream = np.array(list(s))
    no = stream[(stream >= 100) & (stream < 180)]
    yes = stream[stream >= 180]
    assert no.size == yes.size == 70
    assert np.unique(no).size == 70
    assert np.unique(yes).size < 70  # 70 draws from 80 with replacement: duplicates all but surely (seeded)


def test_short_auxiliary_pool_warns_and_draws_balanced_passes() -> None:
    with pytest.warns(UserWarning, match="auxiliary 'small'.*quota of 25.*exceeds its 10 samples"):
        fusion = FusionDataset({"t": range(50)}, {"small": (range(10), 0.5)})
    counts = fusion.make_sampler(seed=0).counts()[50:]
    assert counts.sum() == 25 and counts.min() == 2 and counts.max() == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        FusionDataset({"t": range(50)}, {"small": Pool(range(10), 0.5, replacement=True)})  # no warning


def test_salt_redraws_one_source_only() -> None:
    def build(salt: int | None) -> FusionSampler:
        return FusionDataset({"t": range(40)}, {"a": (range(100), 0.5), "b": Pool(range(100), 0.5, salt=salt)}
                             ).make_sampler(seed=0)

    base, salted = build(None), build(12345)
    assert len(base) == len(salted)
    np.testing.assert_array_equal(base.counts()[:140], salted.counts()[:140])  # targets and "a" unchanged
    assert not np.array_equal(base.counts()[140:], salted.counts()[140:])


def test_eval_view_is_the_pools_in_order_without_quotas() -> None:
    aux = [{"x": 10 + i} for i in range(4)]
    fusion = FusionDataset({"t": [{"x": i} for i in range(3)]}, {"a": (aux, 0.1)})
    view = fusion.eval_view()
    assert len(view) == 7 and [view[i]["x"] for i in range(7)] == [0, 1, 2, 10, 11, 12, 13]
    assert [view[i]["source"] for i in range(7)] == ["t"] * 3 + ["a"] * 4
    only_a = fusion.eval_view(["a"])
    assert [only_a[i]["x"] for i in range(len(only_a))] == [10, 11, 12, 13] and only_a.flat_index(0) == 3
    assert not hasattr(view, "make_sampler")  # a HardMiner given the view treats it as a plain dataset
    with pytest.raises(ValueError, match="'nope'"):
        fusion.eval_view(["nope"])


def test_sampler_state_round_trip_reproduces_the_next_epoch() -> None:
    fusion = FusionDataset({"t": range(50)}, {"a": (range(200), 0.4)})
    s = fusion.make_sampler(seed=7, max_repeats=3)
    w = np.ones(50)
    w[:5] = 3.0
    s.set_weights(w)
    s.set_epoch(4)
    state = s.state_dict()
    expected = list(s)
    other = fusion.make_sampler(seed=0)
    other.load_state_dict(state)
    assert list(other) == expected
    different = FusionDataset({"t": range(50)}, {"a": (range(201), 0.4)}).make_sampler(seed=7)
    with pytest.raises(ValueError, match="sources"):
        different.load_state_dict(state)


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("targets", "auxiliaries", "error", "words"),
    [
        ({}, {}, ValueError, "at least one target"),
        ({"t": (range(5), -1.0)}, {}, ValueError, "target 't'.*ratio=-1.0"),
        ({"t": range(5)}, {"a": (range(5), float("nan"))}, ValueError, "auxiliary 'a'.*ratio=nan"),
        ({"t": range(5)}, {"a": (range(5), float("inf"))}, ValueError, "auxiliary 'a'.*ratio=inf"),
        ({"t": range(5)}, {"a": (range(5), -0.5)}, ValueError, "auxiliary 'a'.*ratio=-0.5"),
        ({"x": range(5)}, {"x": (range(5), 1.0)}, ValueError, "'x' is used both as a target and as an aux"),
        ({"t": range(5)}, {"lvis": (range(0), 0.5)}, ValueError, "auxiliary 'lvis' is empty.*ratio=0.5"),
        ({"t": range(0)}, {}, ValueError, "target 't' is empty"),
        ({"t": (range(5), 0.0)}, {}, ValueError, "every target has quota"),
        ({"t": range(5)}, {"a": range(5)}, TypeError, "auxiliary 'a' needs a ratio"),
        ({"t": 5}, {}, TypeError, "target 't' must be a map-style dataset"),
        ({"t": Pool(range(5), replacement=True)}, {}, ValueError, "target 't': replacement applies"),
        ({"t": range(5)}, {"a": Pool(range(5), 1.0, salt=-1)}, ValueError, "auxiliary 'a': salt"),
    ],
)
def test_bad_sources_are_refused_naming_them(targets: dict, auxiliaries: dict, error: type,
                                             words: str) -> None:
    with pytest.raises(error, match=words):
        FusionDataset(targets, auxiliaries)


def test_zero_length_auxiliary_with_zero_ratio_is_allowed() -> None:
    fusion = FusionDataset({"t": range(5)}, {"later": (range(0), 0.0)})
    assert fusion.quotas() == {"t": 5, "later": 0} and len(fusion.make_sampler()) == 5


def test_colliding_source_codes_are_refused() -> None:
    first, second = "1595af64", "955a1584"  # found by a birthday search over hex names
    assert zlib.crc32(first.encode()) & ((1 << 22) - 1) == zlib.crc32(second.encode()) & ((1 << 22) - 1)
    with pytest.raises(ValueError, match=f"'{first}' and '{second}' share the sample-id code"):
        FusionDataset({first: range(3)}, {second: (range(3), 1.0)})


def test_shared_salts_are_refused() -> None:
    with pytest.raises(ValueError, match="'a' and 'b' share the seed salt 5"):
        FusionDataset({"t": range(3)}, {"a": Pool(range(3), 1.0, salt=5), "b": Pool(range(3), 1.0, salt=5)})


def test_bad_sample_ids_are_refused_naming_them() -> None:
    fusion = FusionDataset({"t": range(5)}, {"a": (range(3), 0.4)})
    unknown = (12345 << ID_BITS) | 1
    with pytest.raises(ValueError, match=f"sample_id {unknown} decodes to no source"):
        fusion.decode(unknown)
    too_far = int(fusion.sample_id(5)) + 3  # "a" has indices 0..2
    words = f"sample_id {too_far} decodes to index 3 of source 'a', which has only 3"
    with pytest.raises(ValueError, match=words):
        fusion.id_index().slots(np.array([int(fusion.sample_id(0)), too_far]))
    with pytest.raises(ValueError, match="sample_id -1 decodes to no source"):
        fusion.decode_many([-1])
    with pytest.raises(ValueError, match="not a FusionDataset description"):
        decode_ids({"sources": []}, [0])


def test_bad_weights_are_refused_naming_the_problem() -> None:
    fusion = FusionDataset({"t": range(6), "u": range(4)}, {"a": (range(10), 1.0)})
    s = fusion.make_sampler(seed=0, max_repeats=2)
    before = list(s)
    with pytest.raises(ValueError, match="expected length 10, but got length 20"):
        s.set_weights(np.ones(20))  # the weights cover targets only, never auxiliaries
    with pytest.raises(ValueError, match=r"weights\[3\] = nan"):
        s.set_weights([1, 1, 1, float("nan"), 1, 1, 1, 1, 1, 1])
    with pytest.raises(ValueError, match=r"weights\[0\] = -1.0"):
        s.set_weights([-1.0] + [1.0] * 9)
    with pytest.raises(ValueError, match="target 'u'.*only 1 samples have weight > 0 and max_repeats=2"):
        s.set_weights([1.0] * 6 + [0.0, 0.0, 0.0, 1.0])
    assert list(s) == before and s.weights is None  # a refused call changes nothing
    with pytest.raises(ValueError, match="target 't'.*max_repeats=2"):
        FusionDataset({"t": (range(6), 3.0)}).make_sampler(max_repeats=2)


def test_repr_pickle_and_state_round_trip() -> None:
    fusion = FusionDataset({"t": [{"x": i} for i in range(20)]}, {"a": ([{"y": i} for i in range(30)], 0.5)})
    s = fusion.make_sampler(seed=2, max_repeats=3)
    s.set_weights(np.arange(20, dtype=float) + 1)
    s.set_epoch(4)
    assert "FusionSampler" in repr(s) and "FusionDataset" in repr(fusion)
    assert "FusionEvalView" in repr(fusion.eval_view())
    clone = pickle.loads(pickle.dumps(s))
    assert list(clone) == list(s)
    fresh = fusion.make_sampler()
    fresh.load_state_dict(pickle.loads(pickle.dumps(s.state_dict())))
    assert list(fresh) == list(s) and fresh.state_dict()["epoch"] == 4
    worker_copy = pickle.loads(pickle.dumps(fusion))  # what a spawned DataLoader worker receives
    assert [worker_copy[i] for i in range(len(fusion))] == [fusion[i] for i in range(len(fusion))]
    with pytest.raises(ValueError, match="expected kind 'FusionSampler'"):
        fresh.load_state_dict({**s.state_dict(), "kind": "HardMiningSampler"})


def test_a_periodically_mined_target_gets_its_share_in_every_epoch() -> None:
    """An interleaved fusion order gives a periodic weight layout: the mined set still gets its expected draws."""
    fusion = FusionDataset({"bbu": [{"x": i} for i in range(2000)], "rare": Pool([{"x": i} for i in range(300)], 1.5)},
                           {"lvis": ([{"y": i} for i in range(5000)], 0.2)})
    sampler = fusion.make_sampler(seed=3, max_repeats=6)  # no cap binds: the share is quota x weight share
    weights = np.ones(fusion.num_mineable)
    weights[::20] = 3.0  # every 20th target index mined
    sampler.set_weights(weights)
    for target, (lo, hi, quota) in {"bbu": (0, 2000, 2000), "rare": (2000, 2300, 450)}.items():
        w = weights[lo:hi]
        want = quota * w[w == 3.0].sum() / w.sum()
        for epoch in range(4):
            sampler.set_epoch(epoch)
            counts = sampler.counts()[lo:hi]
            assert counts.sum() == quota, target
            assert abs(int(counts[w == 3.0].sum()) - want) <= 1.0, (target, epoch)
