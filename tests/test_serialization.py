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
    (tmp_path / "miner.npz.4242.deadbeef.tmp").write_bytes(b"left by a kill -9")
    (tmp_path / "other.npz.1.ab.tmp").write_bytes(b"not ours")
    hm.HardMiner(None, num_samples=4).save(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["miner.npz", "other.npz.1.ab.tmp"]
