"""State files: durable (fsync before the rename), atomic, created with the umask, no orphans left behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

import hardmine as hm
from hardmine._serialization import load_state, save_state
from hardmine._state import IdRange


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_the_file_mode_follows_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    old = os.umask(umask)
    try:
        save_state({"x": np.arange(3)}, tmp_path / "s.npz", kind="T")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "s.npz").stat().st_mode) == mode


def test_the_data_reaches_the_disk_before_the_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    save_state({"x": np.arange(3)}, tmp_path / "s.npz", kind="T")
    assert events == ["fsync", "replace", "fsync"]  # the file, the rename, the folder entry
    assert load_state(tmp_path / "s.npz", kind="T")["x"].tolist() == [0, 1, 2]


def test_a_failed_save_leaves_nothing_and_the_next_save_removes_orphans(tmp_path: Path) -> None:
    target = tmp_path / "miner.npz"
    with pytest.raises(TypeError, match="cannot save object"):
        save_state({"bad": object()}, target, kind="T")
    dead = 2**22 + 4242  # above pid_max: no process has it
    orphan = tmp_path / f"miner.npz.{dead}.deadbeef.tmp"
    orphan.write_bytes(b"left by a kill -9")
    os.utime(orphan, (1.0, 1.0))  # long ago
    fresh = tmp_path / f"miner.npz.{dead}.cafe.tmp"
    fresh.write_bytes(b"a writer on another machine, right now")
    live = tmp_path / f"miner.npz.{os.getppid()}.beef.tmp"
    live.write_bytes(b"a live writer here")
    os.utime(live, (1.0, 1.0))
    (tmp_path / "other.npz.1.ab.tmp").write_bytes(b"not ours")
    hm.HardMiner(None, num_samples=4).save(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["miner.npz", fresh.name, live.name,
                                                                 "other.npz.1.ab.tmp"])


def test_arrays_come_back_in_their_own_dtype_however_small_they_were_stored(tmp_path: Path) -> None:
    state = {"range": np.arange(1000, dtype=np.int64), "small": np.array([3, -1, 7], dtype=np.int64),
             "exact": np.array([0.5, 2.0, np.nan, np.inf]), "inexact": np.array([0.1, 1e300]),
             "codes": np.array([0, 1, 1], dtype=np.uint8), "empty": np.empty(0, np.int32),
             "nested": [{"x": np.arange(5, dtype=np.int32)[::-1]}]}
    save_state(state, tmp_path / "s.npz", kind="T")
    back = load_state(tmp_path / "s.npz", kind="T")
    for key in ("range", "small", "exact", "inexact", "codes", "empty"):
        assert back[key].dtype == state[key].dtype, key
        np.testing.assert_array_equal(back[key], state[key])
    np.testing.assert_array_equal(back["nested"][0]["x"], [4, 3, 2, 1, 0])
    with np.load(tmp_path / "s.npz") as z:  # stored small: the range as its length, int64 -1..7 as int8
        stored = {k: z[k].dtype for k in z.files}
    assert np.dtype(np.int8) in stored.values() and len(stored) == 7  # 6 arrays + the metadata, no range


def test_a_dense_run_writes_few_bytes_per_sample(tmp_path: Path) -> None:
    n = 200_000
    miner = hm.HardMiner({"trigger": {"kind": "epoch", "start_epoch": 0}}, num_samples=n)
    rng = np.random.default_rng(0)
    for epoch in range(3):
        miner.sampler.set_epoch(epoch)
        order = np.fromiter(miner.sampler, dtype=np.int64, count=n)
        miner.record(order, rng.random(n).astype(np.float32))
        miner.end_epoch(epoch)
    size = miner.save(tmp_path / "m.npz").stat().st_size
    assert size / n <= 24, size / n


def _dense_miner(n: int, epochs: int, **kwargs: object) -> hm.HardMiner:
    miner = hm.HardMiner({"trigger": {"kind": "epoch", "start_epoch": 0}}, num_samples=n, **kwargs)
    rng = np.random.default_rng(0)
    for epoch in range(epochs):
        miner.sampler.set_epoch(epoch)
        order = np.fromiter(miner.sampler, dtype=np.int64, count=n)
        miner.record(order, rng.random(n).astype(np.float32))
        miner.end_epoch(epoch)
    return miner


@pytest.mark.parametrize(("custom_ids", "limit"), [(False, 8), (True, 26)])
def test_save_streams_the_live_arrays_without_a_copy_and_loads_the_same_state(tmp_path: Path, custom_ids: bool,
                                                                               limit: float) -> None:
    """``save`` writes ``state_dict(copy=False)``: a dense run holds no copy of its state (peak extra memory a
    few bytes a sample, where the state is ~37 B a sample); arbitrary ids cost one copy of the ledger in id
    order (24 B an id: the state lists ids ascending). The file loads back to exactly ``state_dict()``."""
    import tracemalloc

    from tests.states import states_equal

    n = 100_000
    miner = _dense_miner(n, 6)  # the learnability guard judges from epoch 5 on
    if custom_ids:
        miner = hm.HardMiner({"trigger": {"kind": "epoch", "start_epoch": 0}}, num_samples=n, custom_ids=True)
        ids = np.arange(n, dtype=np.int64) * 7 + 3
        for epoch in range(3):
            miner.record(ids, np.random.default_rng(epoch).random(n), indices=np.arange(n))
            miner.end_epoch(epoch)
    miner.save(tmp_path / "warm.npz")  # imports and first-call caches outside the measurement
    tracemalloc.start()
    miner.save(tmp_path / "m.npz")
    peak = tracemalloc.get_traced_memory()[1] / n
    tracemalloc.stop()
    assert peak < limit, f"save held {peak:.1f} B/sample extra"
    assert states_equal(load_state(tmp_path / "m.npz", kind="HardMiner"), miner.state_dict())


def test_a_state_without_copies_shares_the_live_arrays_and_a_copied_one_does_not() -> None:
    n = 5_000
    miner = _dense_miner(n, 6)
    live = miner.ledger._table.score
    view, owned = miner.state_dict(copy=False), miner.state_dict()
    assert np.shares_memory(view["ledger"]["scores"], live)
    assert not np.shares_memory(owned["ledger"]["scores"], live)
    assert isinstance(view["ledger"]["ids"], IdRange)  # a dense range is not built
    guard_view, guard_owned = view["guards"]["guards"][0], owned["guards"]["guards"][0]
    assert np.shares_memory(guard_view["sum_p"], miner.guards[0]._arrays["sum_p"])
    assert not any(np.shares_memory(guard_owned[k], miner.guards[0]._arrays[k])
                   for k in ("sum_p", "sum_p2", "tracked"))
