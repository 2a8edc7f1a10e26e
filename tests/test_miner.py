"""HardMiner: the plain-loop contract, disabled mode, resume bit for bit, bad input, 2-rank agreement."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hardmine as hm
from hardmine.event import MiningEvent
from hardmine.history import MiningHistory

N = 200
DIFFICULTY = np.linspace(0.0, 1.0, N)  # sample i has loss ~ i / N: the last ones are hard


def config(**overrides: object) -> dict:
    """Mechanics tests run without a noise guard (constant losses are what the guard excludes)."""
    base = {"seed": 3, "trigger": {"kind": "epoch", "start_epoch": 1}, "select": {"kind": "top_k", "k": 20},
            "resample": {"hard_weight": 4.0, "max_repeats": 4}, "guard": None}
    base.update(overrides)
    return base


def run_epoch(miner: hm.HardMiner, epoch: int, *, stop_after: int | None = None) -> list[int]:
    miner.sampler.set_epoch(epoch)
    stream = list(miner.sampler)
    for k, start in enumerate(range(0, len(stream), 16)):
        if stop_after is not None and k == stop_after:
            break
        idx = np.array(stream[start : start + 16])
        miner.record(idx, DIFFICULTY[idx])
    return stream


def test_plain_loop_mines_the_hardest_and_keeps_the_length(caplog: pytest.LogCaptureFixture) -> None:
    miner = hm.HardMiner(config(), num_samples=N)
    with caplog.at_level(logging.INFO, logger="hardmine"):
        for epoch in range(3):
            stream = run_epoch(miner, epoch)
            assert len(stream) == len(miner.sampler) == N
            event = miner.end_epoch(epoch)
            assert event.triggered == (epoch >= 1)
            assert event.fired == (epoch == 1)
    assert miner.hard_ids.tolist() == list(range(N - 20, N))
    assert event.num_hard == 20 and event.score_cut == pytest.approx(DIFFICULTY[N - 20], rel=1e-6)
    counts = np.bincount(list(miner.sampler), minlength=N)
    assert counts[N - 20 :].mean() / counts[: N - 20].mean() == pytest.approx(event.draw_ratio)
    assert 3.0 < event.draw_ratio <= 4.0 + 1e-9
    assert counts.max() <= 4 and event.overlap_prev == 20
    assert [e.epoch for e in miner.history] == [0, 1, 2]
    assert any("mining triggered at epoch 1: 20 hard samples (score >= 0.9045)" in r.message for r in caplog.records)


def test_disabled_changes_nothing() -> None:
    miner = hm.HardMiner(config(enabled=False), num_samples=N)
    plain = hm.HardMiningSampler(N, seed=3)
    for epoch in range(4):
        plain.set_epoch(epoch)
        assert run_epoch(miner, epoch) == list(plain)
        event = miner.end_epoch(epoch)
        assert not event.triggered and event.num_hard == 0
    assert miner.pending == 0 and len(miner.ledger) == 0 and miner.sampler.weights is None


def test_plateau_on_train_loss_and_explicit_metrics() -> None:
    miner = hm.HardMiner(config(trigger={"kind": "plateau", "monitor": "eval_map", "mode": "max", "patience": 0,
                                         "threshold": 0.0}), num_samples=N)
    maps = [0.1, 0.2, 0.2]
    fired = []
    for epoch, m in enumerate(maps):
        run_epoch(miner, epoch)
        fired.append(miner.end_epoch(epoch, metrics={"eval_map": m}).fired)
    assert fired == [False, False, True]
    assert miner.history[-1].metric == 0.2


def test_empty_selection_keeps_the_plan_uniform() -> None:
    miner = hm.HardMiner(config(select={"kind": "threshold", "threshold": 5.0}), num_samples=N)
    for epoch in range(2):
        run_epoch(miner, epoch)
        event = miner.end_epoch(epoch)
    assert event.triggered and event.num_hard == 0 and "met the cut" in (event.reason or "")
    assert sorted(miner.sampler) == list(range(N))


def test_min_observations() -> None:
    miner = hm.HardMiner(config(min_observations=2, trigger={"kind": "epoch", "start_epoch": 0}), num_samples=N)
    run_epoch(miner, 0)
    event = miner.end_epoch(0)
    assert event.num_eligible == 0 and event.num_hard == 0


def test_custom_ids_weight_every_index_of_a_logical_sample() -> None:
    logical = np.arange(N) // 2  # two records (augmented variants) per logical sample
    miner = hm.HardMiner(config(select={"kind": "top_k", "k": 5}), num_samples=N, custom_ids=True)
    for epoch in range(2):
        miner.sampler.set_epoch(epoch)
        idx = np.array(list(miner.sampler))
        miner.record(logical[idx] * 1000 + 7, DIFFICULTY[idx], indices=idx)
        miner.end_epoch(epoch)
    assert miner.hard_ids.tolist() == [(i * 1000 + 7) for i in range(N // 2 - 5, N // 2)]
    weights = miner.sampler.weights
    assert weights is not None and np.flatnonzero(weights > 1).tolist() == list(range(N - 10, N))


def test_default_guard_excludes_flat_high_losses_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    """Samples the model stays unsure of, flatly, are kept out of the hard set; falling ones are mined."""
    miner = hm.HardMiner({"seed": 3, "trigger": {"kind": "epoch", "start_epoch": 2},
                          "select": {"kind": "top_k", "k": 20}}, num_samples=N)
    assert [g.name for g in miner.guards] == ["hard_to_learn", "stale"]
    flat = np.arange(N - 20, N)  # highest, flat loss: what a mislabeled sample looks like
    with caplog.at_level(logging.INFO, logger="hardmine"):
        for epoch in range(7):  # the guard judges once an id has been seen in 3 epochs
            miner.sampler.set_epoch(epoch)
            idx = np.array(list(miner.sampler))
            losses = np.where(idx >= N - 20, 5.0, 3.0 * DIFFICULTY[idx] / (1 + epoch))
            miner.record(idx, losses)
            event = miner.end_epoch(epoch)
    assert event.excluded["hard_to_learn"] == 20  # exactly the planted ids the unguarded top 20 held
    assert not np.isin(miner.hard_ids, flat).any() and event.num_hard == 20
    assert any("excluded as likely noise (hard to learn" in r.message for r in caplog.records)


def test_resume_mid_epoch_is_bit_for_bit(tmp_path: Path) -> None:
    """With the default guards (stateful) and an EMA: the resumed run is the uninterrupted one."""
    full = hm.HardMiner(config(aggregate="ema", ema_decay=0.7, guard={}), num_samples=N)
    for epoch in range(2):
        run_epoch(full, epoch)
        full.end_epoch(epoch)
    run_epoch(full, 2, stop_after=5)  # a checkpoint lands in the middle of epoch 2
    path = full.save(tmp_path / "miner.npz")
    resumed = hm.HardMiner.load(path)
    assert resumed.pending == full.pending == 80
    for m in (full, resumed):  # the rest of epoch 2, then one more epoch
        stream = list(m.sampler)
        for start in range(80, N, 16):
            idx = np.array(stream[start : start + 16])
            m.record(idx, DIFFICULTY[idx])
        m.end_epoch(2)
        run_epoch(m, 3)
        m.end_epoch(3)
    assert list(full.sampler) == list(resumed.sampler)
    assert full.hard_ids.tolist() == resumed.hard_ids.tolist()
    np.testing.assert_array_equal(full.ledger.scores()[1], resumed.ledger.scores()[1])
    assert [e.to_dict() for e in full.history] == [e.to_dict() for e in resumed.history]


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda m: m.record([1, 2], [1.0]), "same length"),
        (lambda m: m.record([1.5], [1.0]), "integers"),
        (lambda m: m.record([N], [1.0]), f"outside 0..{N - 1}"),
        (lambda m: m.record([1], [1.0], indices=[N + 3]), "indices must lie in"),
        (lambda m: m.record([1, 2], [1.0, 2.0], indices=[1]), "same length"),
    ],
)
def test_bad_records_are_refused_and_change_nothing(call: object, match: str) -> None:
    miner = hm.HardMiner(config(), num_samples=N)
    miner.record([0], [1.0])
    with pytest.raises(ValueError, match=match):
        call(miner)  # type: ignore[operator]
    assert miner.pending == 1


def test_nan_losses_are_skipped_and_counted() -> None:
    miner = hm.HardMiner(config(trigger={"kind": "epoch", "start_epoch": 0}), num_samples=N)
    miner.record([0, 1, 2], [float("nan"), 1.0, float("inf")])
    event = miner.end_epoch(0)
    assert event.num_skipped == 2 and miner.hard_ids.tolist() == [1]


def test_state_from_another_dataset_or_version_is_refused(tmp_path: Path) -> None:
    miner = hm.HardMiner(config(), num_samples=N)
    state = miner.state_dict()
    with pytest.raises(ValueError, match=f"{N} samples.*{N + 1}"):
        hm.HardMiner(config(), num_samples=N + 1).load_state_dict(state)
    with pytest.raises(ValueError, match="version"):
        hm.HardMiner(config(), num_samples=N).load_state_dict({**state, "version": 7})
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, x=np.arange(3))
    with pytest.raises(ValueError, match="not a hardmine state file"):
        hm.HardMiner.load(foreign)


@pytest.mark.parametrize(("cut", "match"), [(0, "an empty file"), (2, "not an .npz archive"),
                                            (0.5, "cut short"), (0.98, "cut short")])
def test_a_truncated_state_file_is_a_clear_value_error(tmp_path: Path, cut: float, match: str) -> None:
    """A checkpoint cut short by a crash or a full disk names the file instead of a zipfile/EOF traceback."""
    miner = hm.HardMiner(config(), num_samples=N)
    whole = miner.save(tmp_path / "m.npz").read_bytes()
    bad = tmp_path / "bad.npz"
    bad.write_bytes(whole[: int(cut * len(whole))] if cut < 1 else whole[:cut])
    with pytest.raises(ValueError, match=match) as info:
        hm.HardMiner.load(bad)
    assert "bad.npz" in str(info.value)


def test_config_sources(tmp_path: Path) -> None:
    yaml_path = tmp_path / "train.yaml"
    yaml_path.write_text("custom:\n  hard_sample_mining:\n    select: {kind: percentile, percentile: 75}\n")
    assert hm.HardMiner(yaml_path, num_samples=4).config.select.kind == "percentile"
    assert hm.HardMiner(None, num_samples=4, seed=11).seed == 11
    with pytest.raises(ValueError, match="num_samples=3 disagrees with len"):
        hm.HardMiner(None, num_samples=3, dataset=list(range(4)))
    with pytest.raises(TypeError, match="config must be"):
        hm.HardMiner(3.5, num_samples=4)  # type: ignore[arg-type]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_two_gloo_ranks_agree_and_see_every_sample(tmp_path: Path) -> None:
    script = Path(__file__).parent / "dist" / "core_miner.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
           str(script), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))
    assert r0["weights"] == r1["weights"] and r0["hard"] == r1["hard"] and r0["next"] == r1["next"]
    assert r0["ids"] == list(range(101))  # both ranks' samples are in the ledger
    assert r0["counts"] == r1["counts"] and sum(r0["counts"]) == 3 * 101
    assert r0["hard"] == list(range(91, 101))
    assert [e["num_observed"] for e in r0["events"]] == [101, 101, 101]
    logged = [line for line in proc.stderr.splitlines() if "hardmine: mining triggered at epoch 1" in line]
    assert len(logged) == 1 and logged[0].startswith("rank0: "), proc.stderr[-3000:]  # one line per run


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(2.0**-20, 2.0**20, width=32), min_size=1, max_size=300),
       st.integers(1, 64))
def test_score_histogram_counts_every_score_whatever_the_block(scores: list[float], block: int) -> None:
    """The event's histogram holds every eligible score once (the lowest and highest included), and taking
    the logs a block at a time gives the counts of one pass."""
    from hardmine import event

    x = np.array(scores, dtype=np.float32)
    whole = event.score_histogram(x)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(event, "_BLOCK", block)
        blocked = event.score_histogram(x)
    assert blocked == whole
    assert sum(whole["counts"]) == x.size
    assert len(whole["edges"]) == len(whole["counts"]) + 1 and whole["edges"] == sorted(whole["edges"])


@settings(max_examples=300, deadline=None)
@given(hard_sets=st.lists(st.sets(st.integers(-5, 40)), max_size=6))
def test_mined_counts_equal_a_dict_of_epochs(hard_sets: list[set[int]]) -> None:
    """The running (id, epochs mined) table, merged epoch by epoch, equals counting with a dict."""
    history, counted = MiningHistory(), Counter[int]()
    for hard in hard_sets:
        history.append(MiningEvent(epoch=0, triggered=True, num_hard=len(hard)), np.array(sorted(hard), np.int64))
        counted.update(hard)
    ids, epochs = history.mined_counts()
    assert ids.tolist() == sorted(counted) and epochs.tolist() == [counted[i] for i in sorted(counted)]
