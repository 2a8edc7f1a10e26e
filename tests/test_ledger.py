"""LossLedger: equals a slow reference on random streams; validation; state round trips."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hardmine import LossLedger
from tests.strategies import loss_stream


def reference(aggregate: str, decay: float, calls: list[tuple[np.ndarray, np.ndarray]],
              epochs: list[int] | None = None) -> dict[int, tuple[float, int, float, int]]:
    """The slow, obvious implementation: a dict, one observation at a time, in order.

    Returns ``id -> (score, count, first loss, last-seen epoch)``; call ``k`` happens in ``epochs[k]``."""
    rec: dict[int, tuple[float, int, float, int]] = {}
    for k, (ids, losses) in enumerate(calls):
        epoch = epochs[k] if epochs else 0
        for i, x in zip(ids.tolist(), losses.astype(np.float64).tolist()):
            if not math.isfinite(x):
                continue
            if i not in rec:
                rec[i] = (x, 1, x, epoch)
                continue
            old, n, first, _ = rec[i]
            score = {"ema": decay * old + (1 - decay) * x, "mean": old + (x - old) / (n + 1),
                     "max": max(old, x), "last": x}[aggregate]
            rec[i] = (score, n + 1, first, epoch)
    return rec


@pytest.mark.parametrize("aggregate", ["ema", "mean", "max", "last"])
@pytest.mark.parametrize("dense", [True, False])
@settings(max_examples=60, deadline=None)
@given(data=st.data(), decay=st.sampled_from([0.0, 0.5, 0.9, 0.99]))
def test_equals_reference(aggregate: str, dense: bool, data: st.DataObject, decay: float) -> None:
    """Scores, counts, first losses and last-seen epochs, whatever the folds (small folds gather and
    scatter, large ones sweep the table) and epoch changes in between."""
    calls = data.draw(loss_stream(dense=dense))
    fold_after = data.draw(st.sets(st.integers(0, len(calls))))
    epochs = sorted(data.draw(st.lists(st.integers(0, 3), min_size=len(calls), max_size=len(calls))))
    ledger = LossLedger(aggregate, decay, num_ids=40 if dense else None)
    for k, (ids, losses) in enumerate(calls):
        if epochs[k] != ledger.epoch:
            ledger.set_epoch(epochs[k])
        ledger.update(ids, losses)
        if k in fold_after:
            ledger.scores()  # folding in the middle must not change the result
    expected = reference(aggregate, decay, calls, epochs)
    s = ledger.stats()
    assert s.ids.tolist() == sorted(expected)
    want = np.array([expected[i] for i in s.ids.tolist()], dtype=np.float64).reshape(-1, 4)
    np.testing.assert_allclose(s.scores, want[:, 0], rtol=2e-5, atol=1e-6)
    assert s.counts.tolist() == want[:, 1].astype(int).tolist()
    np.testing.assert_allclose(s.first, want[:, 2], rtol=1e-6)
    assert s.last_seen.tolist() == want[:, 3].astype(int).tolist()
    assert len(ledger) == len(expected)
    n_bad = sum(int((~np.isfinite(losses)).sum()) for _, losses in calls)
    assert ledger.num_skipped == n_bad


def test_first_observation_initialises_without_bias() -> None:
    ledger = LossLedger("ema", 0.9)
    ledger.update([5], [2.0])
    assert ledger.scores()[1].tolist() == [2.0]
    ledger.update([5], [4.0])
    assert ledger.scores()[1][0] == pytest.approx(0.9 * 2.0 + 0.1 * 4.0)


def test_duplicates_in_one_call_apply_in_order() -> None:
    ledger = LossLedger("last")
    ledger.update([3, 3, 3], [1.0, 7.0, 2.0])
    assert ledger.scores()[1].tolist() == [2.0]


def test_nan_never_poisons_a_score() -> None:
    ledger = LossLedger("mean", num_ids=4)
    ledger.update([0, 0, 1], [1.0, float("nan"), float("inf")])
    ids, scores = ledger.scores()
    assert ids.tolist() == [0] and scores.tolist() == [1.0]
    assert ledger.num_skipped == 2
    assert np.isfinite(ledger.stats().scores).all()


def test_a_loss_beyond_float32_is_skipped_not_stored_as_inf() -> None:
    ledger = LossLedger("mean", num_ids=4)
    ledger.update(np.array([0, 1]), np.array([1e39, 2.0], dtype=np.float64))
    s = ledger.stats()
    assert s.ids.tolist() == [1] and s.scores.tolist() == [2.0]
    assert ledger.num_skipped == 1


def test_counts_first_and_last_seen() -> None:
    ledger = LossLedger("ema", 0.5, num_ids=10)
    ledger.set_epoch(0)
    ledger.update([1, 2], [4.0, 1.0])
    ledger.set_epoch(3)
    ledger.update([1], [2.0])
    s = ledger.stats()
    assert s.ids.tolist() == [1, 2]
    assert s.counts.tolist() == [2, 1]
    assert s.first.tolist() == [4.0, 1.0]
    assert s.last_seen.tolist() == [3, 0]
    assert ledger.stats(min_observations=2).ids.tolist() == [1]


def test_accepts_torch_tensors_and_bf16() -> None:
    ledger = LossLedger(num_ids=8)
    ledger.update(torch.tensor([1, 2]), torch.tensor([0.5, 1.5], dtype=torch.bfloat16))
    assert ledger.scores()[1].tolist() == [0.5, 1.5]


@pytest.mark.parametrize(
    ("ids", "losses", "match"),
    [
        ([1, 2], [1.0], "same length.*2 ids and 1 losses"),
        ([1.5, 2.0], [1.0, 1.0], "must be integers"),
        ([True, False], [1.0, 1.0], "must be integers"),
        ([[1, 2]], [[1.0, 1.0]], "1-D"),
        ([1, 10], [1.0, 1.0], "outside 0..9"),
        ([-1], [1.0], "outside 0..9"),
    ],
)
def test_bad_input_is_rejected_and_changes_nothing(ids: list, losses: list, match: str) -> None:
    ledger = LossLedger(num_ids=10)
    ledger.update([0], [1.0])
    before = ledger.state_dict()
    with pytest.raises(ValueError, match=match):
        ledger.update(ids, losses)
    after = ledger.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in ("ids", "scores", "counts"))


@pytest.mark.parametrize("kwargs", [{"aggregate": "median"}, {"ema_decay": 1.0}, {"ema_decay": -0.1},
                                    {"num_ids": -1}])
def test_bad_settings(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        LossLedger(**kwargs)


@settings(max_examples=30, deadline=None)
@given(calls=loss_stream(dense=False), more=loss_stream(dense=False))
def test_state_round_trip_continues_identically(calls: list, more: list) -> None:
    a = LossLedger("ema", 0.8)
    for ids, losses in calls:
        a.update(ids, losses)
    b = LossLedger("ema", 0.8)
    b.load_state_dict(a.state_dict())
    for ids, losses in more:
        a.update(ids, losses)
        b.update(ids, losses)
    for x, y in zip(a.stats().__dict__.values(), b.stats().__dict__.values()):
        np.testing.assert_array_equal(x, y)


def test_state_from_another_size_or_version_is_refused() -> None:
    a = LossLedger(num_ids=5)
    a.update([1], [1.0])
    with pytest.raises(ValueError, match="covers 5 ids"):
        LossLedger(num_ids=6).load_state_dict(a.state_dict())
    with pytest.raises(ValueError, match="version"):
        LossLedger(num_ids=5).load_state_dict({**a.state_dict(), "version": 99})
    with pytest.raises(ValueError, match="aggregate"):
        LossLedger("max", num_ids=5).load_state_dict(a.state_dict())


def test_memory_per_id() -> None:
    n = 100_000
    dense = LossLedger(num_ids=n)
    dense.update(np.arange(n), np.ones(n, np.float32))
    assert dense.nbytes() / n <= 16
    sparse = LossLedger()
    sparse.update(np.arange(n) * 7919 - 2**40, np.ones(n, np.float32))
    assert len(sparse) == n and sparse.nbytes() / n <= 40


def test_stats_copy_false_gives_read_only_views_and_copies_stay_put() -> None:
    ledger = LossLedger("last", num_ids=3)
    ledger.update([0, 1, 2], [1.0, 2.0, 3.0])
    snapshot, view = ledger.stats(), ledger.stats(copy=False)
    assert not view.scores.flags.writeable and snapshot.scores.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        view.scores[0] = 9.0
    ledger.update([0, 1, 2], [5.0, 5.0, 5.0])
    ledger.scores()
    assert snapshot.scores.tolist() == [1.0, 2.0, 3.0]  # a copy is a snapshot
    ledger.update([1], [7.0])
    assert ledger.stats(copy=False).scores.tolist() == [5.0, 7.0, 5.0]
