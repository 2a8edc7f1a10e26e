"""Noise guards: planted mislabeled ids are excluded, planted rare-but-learnable ids are kept."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardmine.guards import (
    Cartography,
    Guard,
    GuardChain,
    Learnability,
    LossMixture,
    LossTail,
    Staleness,
    apply_guards,
    build_guards,
)
from hardmine.ledger import LedgerStats

N_COMMON, N_RARE, N_NOISY = 900, 50, 100


def _stats(scores: np.ndarray, last_seen: np.ndarray | None = None,
           ids: np.ndarray | None = None) -> LedgerStats:
    n = scores.size
    return LedgerStats(ids=np.arange(n, dtype=np.int64) if ids is None else ids,
                       scores=scores.astype(np.float32), counts=np.full(n, 3, np.int32),
                       first=np.full(n, 2.3, np.float32),
                       last_seen=np.zeros(n, np.int32) if last_seen is None else last_seen.astype(np.int32))


def _planted(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores of easy common ids, rare-but-learnable ids (moderately high) and mislabeled ids (extreme)."""
    rng = np.random.default_rng(seed)
    scores = np.r_[rng.gamma(2.0, 0.15, N_COMMON), rng.normal(2.0, 0.2, N_RARE),
                   rng.normal(4.5, 0.4, N_NOISY)]
    rare = np.r_[np.zeros(N_COMMON, bool), np.ones(N_RARE, bool), np.zeros(N_NOISY, bool)]
    noisy = np.r_[np.zeros(N_COMMON + N_RARE, bool), np.ones(N_NOISY, bool)]
    perm = rng.permutation(scores.size)  # ids must not encode the group
    return scores[perm], rare[perm], noisy[perm]


@pytest.mark.parametrize("fraction, min_noisy_excluded", [(0.05, 0.5), (0.09, 0.9)])
def test_loss_tail_excludes_extreme_ids_and_keeps_rare(fraction: float, min_noisy_excluded: float) -> None:
    scores, rare, noisy = _planted()
    out = LossTail(fraction).exclude(_stats(scores), epoch=5)
    assert out.sum() == int(fraction * scores.size)
    assert not (out & rare).any()
    assert (out & noisy).sum() >= min_noisy_excluded * N_NOISY


def test_loss_tail_breaks_ties_by_smaller_id() -> None:
    out = LossTail(0.5).exclude(_stats(np.array([1.0, 5.0, 5.0, 5.0])), epoch=0)
    assert out.tolist() == [False, True, True, False]


@pytest.mark.parametrize("z, min_noisy_excluded", [(0.0, 0.4), (0.5, 0.2)])
def test_loss_mixture_excludes_high_component_tail_and_keeps_rare(z: float,
                                                                  min_noisy_excluded: float) -> None:
    scores, rare, noisy = _planted()
    out = LossMixture(z=z).exclude(_stats(scores), epoch=5)
    assert not (out & rare).any()
    assert not (out & ~noisy).any()
    assert (out & noisy).sum() >= min_noisy_excluded * N_NOISY


@pytest.mark.parametrize("scores", [
    np.random.default_rng(1).normal(2.0, 0.5, 2000),  # one mode: nothing is noise by this test
    np.abs(np.random.default_rng(2).normal(0.0, 1.0, 2000)),  # skewed but unimodal
    np.r_[np.zeros(10), np.full(10, 5.0)],  # below min_ids
    np.full(500, 1.5),  # constant
])
def test_loss_mixture_excludes_nothing_without_two_clear_components(scores: np.ndarray) -> None:
    assert not LossMixture().exclude(_stats(scores), epoch=0).any()


def _trajectories(epochs: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-epoch scores: easy ids low, rare ids high but falling 15% an epoch, noisy ids flat and high."""
    rng = np.random.default_rng(seed)
    t = np.arange(epochs)[:, None]
    common = np.broadcast_to(rng.gamma(2.0, 0.15, N_COMMON), (epochs, N_COMMON))
    rare_ = 3.5 * 0.85 ** t * np.exp(rng.normal(0, 0.03, (epochs, N_RARE)))
    noisy_ = 3.2 * np.exp(rng.normal(0, 0.03, (epochs, N_NOISY)))
    rare = np.r_[np.zeros(N_COMMON, bool), np.ones(N_RARE, bool), np.zeros(N_NOISY, bool)]
    noisy = np.r_[np.zeros(N_COMMON + N_RARE, bool), np.ones(N_NOISY, bool)]
    return np.concatenate([common, rare_, noisy_], axis=1), rare, noisy


def test_learnability_excludes_flat_high_loss_and_keeps_falling_ids() -> None:
    scores, rare, noisy = _trajectories(6)
    guard = Learnability(patience=2, min_drop=0.1, smoothing=0.5)
    masks = [guard.exclude(_stats(s), epoch=e) for e, s in enumerate(scores)]
    assert not masks[0].any() and not masks[1].any()  # fewer than `patience` epochs tracked
    for s, m in zip(scores[2:], masks[2:]):
        assert (m & noisy).sum() >= 0.95 * N_NOISY
        assert not (m & rare).any()
        assert (s[m] >= np.quantile(s, 0.5)).all()  # low-loss ids are never reported as excluded


def test_learnability_updates_once_per_epoch_and_round_trips_state() -> None:
    scores, _, _ = _trajectories(6)
    a = Learnability(patience=1, min_drop=0.05)
    for e in range(3):
        a.exclude(_stats(scores[e]), epoch=e)
    first = a.exclude(_stats(scores[3]), epoch=3)
    again = a.exclude(_stats(scores[3]), epoch=3)  # the same epoch twice: no second update
    np.testing.assert_array_equal(first, again)
    b = Learnability(patience=1, min_drop=0.05)
    b.load_state_dict(a.state_dict())
    for e in (4, 5):
        ea, eb = a.exclude(_stats(scores[e]), e), b.exclude(_stats(scores[e]), e)
        np.testing.assert_array_equal(ea, eb)
        assert ea.any()


def test_learnability_keeps_ids_absent_from_a_call_and_aligns_by_id() -> None:
    g = Learnability(patience=1, min_drop=0.0, quantile=0.0)
    g.exclude(_stats(np.array([3.0, 3.0, 3.0]), ids=np.array([10, 20, 30])), epoch=0)
    g.exclude(_stats(np.array([3.0]), ids=np.array([20])), epoch=1)  # 10 and 30 not in this call
    out = g.exclude(_stats(np.array([1.0, 3.0, 3.0, 3.0]), ids=np.array([5, 10, 20, 30])), epoch=2)
    assert out.tolist() == [False, True, True, True]  # 5 is new; the others are flat


def _fast_and_slow(epochs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fast training: rare ids fall 50% an epoch; noisy ids fall too, slowly (12%), on their way to being memorised."""
    scores, rare, noisy = _trajectories(epochs)
    t = np.arange(epochs)[:, None]
    scores[:, rare] = 3.5 * 0.5 ** t
    scores[:, noisy] = 3.2 * 0.88 ** t
    return scores, rare, noisy


def test_cartography_excludes_noise_on_its_way_to_memorisation_where_the_trend_test_does_not() -> None:
    scores, rare, noisy = _fast_and_slow(6)
    cart, trend = Cartography(warmup=3), Learnability(patience=2)
    masks = [cart.exclude(_stats(s), epoch=e) for e, s in enumerate(scores)]
    trends = [trend.exclude(_stats(s), epoch=e) for e, s in enumerate(scores)]
    assert not masks[0].any() and not masks[1].any()  # fewer than `warmup` epochs seen
    for m, t in zip(masks[3:5], trends[3:5]):
        assert (m & noisy).sum() == N_NOISY  # low, flat confidence: hard to learn
        assert not (m & rare).any() and not (m & ~rare & ~noisy).any()  # rising, or confident
        assert not (t & noisy).any()  # falling by more than min_drop: the trend test takes them as learnable


def _cartography_reference(calls: list[tuple[int, dict[int, float]]]) -> dict[int, tuple[float, float, int]]:
    """Per id: (mean, std) of exp(-score) over the epochs it was seen in, and their count; the first call of an
    epoch is the one that counts."""
    seen: dict[int, list[float]] = {}
    epochs: set[int] = set()
    for epoch, scores in calls:
        if epoch in epochs:
            continue
        epochs.add(epoch)
        for i, s in scores.items():
            seen.setdefault(i, []).append(float(np.exp(-np.float32(s))))
    return {i: (float(np.mean(p)), float(np.std(p)), len(p)) for i, p in seen.items()}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3),  # epoch step: 0 repeats the epoch
                          st.dictionaries(st.integers(0, 40), st.floats(0.0, 6.0, width=32), min_size=1)),
                min_size=1, max_size=8),
       st.integers(1, 4), st.sampled_from([0.2, 0.3, 0.5]), st.sampled_from([0.05, 0.1, 0.2]))
def test_cartography_equals_a_slow_reference(steps: list[tuple[int, dict[int, float]]], warmup: int, conf: float,
                                             var: float) -> None:
    guard, restored = Cartography(warmup, conf, var, quantile=0.0), None
    calls: list[tuple[int, dict[int, float]]] = []
    epoch = 0
    for step, scores in steps:
        epoch += step
        calls.append((epoch, scores))
        ids = np.array(sorted(scores), dtype=np.int64)
        stats = _stats(np.array([scores[i] for i in ids]), ids=ids)
        out = guard.exclude(stats, epoch)
        if restored is not None:  # a guard resumed from the previous call's state says the same
            np.testing.assert_array_equal(restored.exclude(stats, epoch), out)
        ref = _cartography_reference(calls)
        for i, flag in zip(ids.tolist(), out.tolist()):
            mean, std, m = ref.get(i, (1.0, 1.0, 0))  # new in a second call of an epoch: not counted yet
            if min(abs(mean - conf), abs(std - var)) > 1e-4:  # float32 sums: no verdict at the edge is asserted
                assert flag == (m >= warmup and mean < conf and std < var), (i, mean, std, m)
        restored = Cartography(warmup, conf, var, quantile=0.0)
        restored.load_state_dict(guard.state_dict())


def test_cartography_keeps_mining_the_more_confident_half_of_a_model_unsure_of_everything() -> None:
    scores = np.linspace(2.0, 4.0, 101)  # every confidence flat and below 0.25: an untrained model
    kept = Cartography(warmup=1).exclude(_stats(scores), epoch=0)
    assert kept.sum() == 51 and kept[50:].all()  # the less confident half (at or below the median) only
    assert Cartography(warmup=1, quantile=0.0).exclude(_stats(scores), epoch=0).all()


def test_learnability_refuses_bad_state() -> None:
    head = {"kind": "Learnability", "version": 1}
    with pytest.raises(ValueError, match="missing keys"):
        Learnability().load_state_dict({**head, "ids": np.arange(3)})
    with pytest.raises(ValueError, match="ascending"):
        Learnability().load_state_dict({**head, "ids": np.array([2, 1]), "ref": np.ones(2), "pending": np.ones(2),
                                        "tracked": np.ones(2), "epoch": 0})
    with pytest.raises(ValueError, match="'Staleness' state into a Learnability"):
        Learnability().load_state_dict(Staleness().state_dict())


@pytest.mark.parametrize("max_age, expected", [(0, [False, True, True, True]),
                                               (2, [False, False, False, True]),
                                               (5, [False, False, False, False])])
def test_staleness_excludes_ids_not_seen_recently(max_age: int, expected: list[bool]) -> None:
    stats = _stats(np.array([9.0, 9.0, 9.0, 9.0]), last_seen=np.array([10, 9, 8, 5]))
    assert Staleness(max_age).exclude(stats, epoch=10).tolist() == expected


def test_apply_guards_counts_each_id_once_under_the_first_reason() -> None:
    scores, _, noisy = _planted()
    last = np.where(noisy, 0, 5)  # the noisy ids are also stale
    mask, reasons = apply_guards([LossTail(0.05), Staleness(2)], _stats(scores, last_seen=last), epoch=5)
    assert reasons["loss_tail"] == int(0.05 * scores.size)
    assert reasons["loss_tail"] + reasons["stale"] == mask.sum() == N_NOISY


def test_apply_guards_refuses_a_mask_of_the_wrong_shape() -> None:
    class Broken(Guard):
        name = "broken"

        def exclude(self, stats: LedgerStats, epoch: int) -> np.ndarray:
            return np.zeros(1, bool)

    with pytest.raises(ValueError, match="Broken.exclude returned shape"):
        apply_guards([Broken()], _stats(np.ones(3)), epoch=0)


@pytest.mark.parametrize("make, field", [
    (lambda: LossTail(0.0), "fraction"), (lambda: LossTail(1.5), "fraction"),
    (lambda: LossMixture(z=float("nan")), "z"), (lambda: LossMixture(min_posterior=1.0), "min_posterior"),
    (lambda: LossMixture(min_separation=-1), "min_separation"), (lambda: LossMixture(min_ids=1), "min_ids"),
    (lambda: Learnability(patience=0), "patience"), (lambda: Learnability(min_drop=1.0), "min_drop"),
    (lambda: Learnability(smoothing=-0.1), "smoothing"), (lambda: Staleness(-1), "max_age"),
    (lambda: Staleness(1.5), "max_age"),  # type: ignore[arg-type]
    (lambda: Cartography(warmup=0), "warmup"), (lambda: Cartography(max_confidence=1.0), "max_confidence"),
    (lambda: Cartography(max_variability=0.0), "max_variability"), (lambda: Cartography(quantile=1.0), "quantile"),
])
def test_bad_settings_are_refused_naming_the_value(make, field: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=f"{field}="):
        make()


def test_stateless_guards_refuse_state() -> None:
    assert LossTail().state_dict() == {"kind": "LossTail", "version": 1}  # nothing tracked
    Staleness().load_state_dict(Staleness().state_dict())
    with pytest.raises(ValueError, match="'LossTail' state into a Staleness"):
        Staleness().load_state_dict(LossTail().state_dict())


def test_build_guards_from_the_config_section() -> None:
    guards = build_guards({"staleness": {"max_age": 5}, "learnability": {}, "loss_tail": None})
    assert [type(g) for g in guards] == [Learnability, Staleness]  # fixed order: the first reason wins
    assert guards[1].max_age == 5
    assert build_guards({}) == [] and build_guards(None) == []
    with pytest.raises(ValueError, match="unknown guard kinds \\['learnabilty'\\]"):
        build_guards({"learnabilty": {}})
    with pytest.raises(TypeError):
        build_guards({"staleness": {"max_agee": 1}})


def test_the_chain_says_when_its_noise_guards_judge_and_which_ids_they_flag() -> None:
    chain = GuardChain([Cartography(warmup=2, quantile=0.0), Staleness(0)])
    stats = _stats(np.array([0.1, 3.0, 3.0]), last_seen=np.array([0, 0, -1]))
    verdict = chain.judge(stats, epoch=0)
    assert not chain.judging and chain.noise_flags(verdict).tolist() == [False, False, False]  # id 2 is only stale
    verdict = chain.judge(stats, epoch=1)
    assert chain.judging and verdict.who.tolist() == [1, 0, 0]
    assert chain.noise_flags(verdict).tolist() == [False, True, True]  # staleness is not a noise verdict
    assert not GuardChain([Staleness(1)]).judging and GuardChain([LossTail(0.1)]).judging
