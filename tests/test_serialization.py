"""State files: durable (fsync before the rename), atomic, created with the umask, no orphans left behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

import hardmine as hm
from hardmine._serialization import load_state, save_state


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
