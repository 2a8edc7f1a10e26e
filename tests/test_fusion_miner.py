"""HardMiner over a FusionDataset: only targets mined, quotas exact, plan reaches persistent workers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader

from hardmine import HardMiner, RunRecord
from hardmine.fusion import FusionDataset, Pool, decode_ids
from tests.strategies_fusion import FusionSpec, fusion_specs

CFG = {"trigger": {"kind": "epoch", "start_epoch": 0}, "select": {"kind": "top_k", "k": 5},
       "resample": {"hard_weight": 4.0, "max_repeats": 4}, "guard": None}  # quotas, not noise, are tested here


def loss_of(fusion: FusionDataset, ids: np.ndarray) -> np.ndarray:
    """Auxiliary samples have the highest losses (they must still never be mined); among targets,
    indices 0..4 of the first target are hard."""
    names, index = fusion.decode_many(ids)
    aux = np.isin(names, fusion.auxiliaries)
    hard = (names == fusion.targets[0]) & (index < 5)
    return np.where(aux, 100.0, np.where(hard, 10.0, 1.0))


def run_epoch(miner: HardMiner, fusion: FusionDataset, epoch: int) -> list[int]:
    miner.sampler.set_epoch(epoch)
    stream = list(miner.sampler)
    for start in range(0, len(stream), 16):  # a plain loop, batch by batch, ids from the items
        ids = np.array([fusion[i]["sample_id"] for i in stream[start : start + 16]], dtype=np.int64)
        miner.record(ids, loss_of(fusion, ids))
    return stream


def test_plain_loop_mines_targets_only_with_exact_quotas() -> None:
    targets = {"bbu": [{"x": i} for i in range(40)], "rare": Pool([{"x": i} for i in range(10)], ratio=2.0)}
    fusion = FusionDataset(targets, {"lvis": ([{"y": i} for i in range(300)], 0.25),
                                     "caps": Pool([{"z": i} for i in range(30)], 0.1, replacement=True)})
    quotas = {"bbu": 40, "rare": 20, "lvis": 15, "caps": 6}
    miner = HardMiner(CFG, dataset=fusion, seed=3)
    length = len(miner.sampler)
    assert length == 81 and fusion.quotas() == quotas
    for epoch in range(4):
        stream = run_epoch(miner, fusion, epoch)
        names, _ = fusion.decode_many(fusion.sample_id(np.array(stream)))
        assert {n: int((names == n).sum()) for n in quotas} == quotas  # every epoch, mined or not
        event = miner.end_epoch(epoch)
        assert len(miner.sampler) == length
        assert event.triggered and event.num_hard == 5
        assert event.per_source == quotas
        hard_names, hard_index = fusion.decode_many(miner.hard_ids)
        assert set(hard_names.tolist()) <= {"bbu", "rare"}
        assert hard_names.tolist() == ["bbu"] * 5 and sorted(hard_index.tolist()) == [0, 1, 2, 3, 4]
        counts = miner.sampler.counts()
        assert counts[:5].min() > 1 and counts[:40].sum() == 40  # mined: drawn more, inside bbu's quota
        assert event.draw_ratio is not None and event.draw_ratio > 1.5
    assert len(miner.ledger) > 50 and miner.ledger.scores()[1].max() == 100.0  # auxiliaries were recorded


@settings(max_examples=20, deadline=None)
@given(spec=fusion_specs(max_size=30), seed=st.integers(0, 2**20), k=st.integers(1, 10))
def test_only_target_ids_are_ever_selected(spec: FusionSpec, seed: int, k: int) -> None:
    fusion = spec.build(dict_items=True)
    cfg = {**CFG, "select": {"kind": "top_k", "k": k},
           "resample": {"hard_weight": 3.0, "max_repeats": spec.max_repeats}}
    miner = HardMiner(cfg, dataset=fusion, seed=seed)
    length = len(miner.sampler)
    for epoch in range(2):
        miner.sampler.set_epoch(epoch)
        flat = np.array(list(miner.sampler), dtype=np.int64)
        ids = fusion.sample_id(flat)
        miner.record(ids, loss_of(fusion, ids))
        event = miner.end_epoch(epoch)
        assert len(miner.sampler) == length
        assert event.per_source == spec.expected_quotas()
        if miner.hard_ids.size:
            assert (fusion.id_index().slots(miner.hard_ids) < fusion.num_mineable).all()
            assert set(fusion.decode_many(miner.hard_ids)[0].tolist()) <= set(fusion.targets)


def test_save_load_keeps_the_plan_and_reports_decode_offline(tmp_path: Path) -> None:
    lvis = [{"y": i} for i in range(50)]
    fusion = FusionDataset({"bbu": [{"x": i} for i in range(30)]}, {"lvis": (lvis, 0.5)})
    miner = HardMiner(CFG, dataset=fusion, seed=1)
    for epoch in range(2):
        run_epoch(miner, fusion, epoch)
        miner.end_epoch(epoch)
    miner.sampler.set_epoch(2)
    expected = list(miner.sampler)
    path = miner.save(tmp_path / "miner.npz")
    again = HardMiner.load(path, dataset=fusion)
    again.sampler.set_epoch(2)
    assert list(again.sampler) == expected
    np.testing.assert_array_equal(again.hard_ids, miner.hard_ids)
    record = RunRecord.load(path)  # what `hardmine report` has: no data
    assert record.id_mode == "fusion" and record.fusion is not None
    names, index = decode_ids(record.fusion, record.hard_ids)
    assert names.tolist() == ["bbu"] * 5 and sorted(index.tolist()) == [0, 1, 2, 3, 4]


# ---------------------------------------------------------------------------- persistent workers
class Tagged:
    """A map-style pool whose items say which process built them."""

    def __init__(self, n: int, tag: int) -> None:
        self.n, self.tag = n, tag

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"x": torch.tensor([float(i)]), "tag": self.tag, "pid": os.getpid()}


def test_plan_reaches_persistent_workers_after_mining() -> None:
    fusion = FusionDataset({"bbu": Tagged(48, 0)}, {"lvis": (Tagged(200, 1), 0.25)})
    miner = HardMiner(CFG, dataset=fusion, seed=0)
    loader = DataLoader(fusion, batch_size=8, sampler=miner.sampler, num_workers=2, persistent_workers=True)
    pids_per_epoch = []
    for epoch in range(3):
        miner.sampler.set_epoch(epoch)
        seen: list[int] = []
        pids: set[int] = set()
        for batch in loader:
            ids = batch["sample_id"].numpy()
            seen.extend(ids.tolist())
            pids.update(batch["pid"].tolist())
            miner.record(ids, loss_of(fusion, ids))
        # what the workers returned is exactly this epoch's plan, mined or not
        planned = fusion.sample_id(np.flatnonzero(miner.sampler.counts()))
        got, got_counts = np.unique(np.array(seen, dtype=np.int64), return_counts=True)
        np.testing.assert_array_equal(got, np.sort(planned))
        np.testing.assert_array_equal(got_counts, miner.sampler.counts()[fusion.id_index().slots(got)])
        if epoch >= 1:  # mining triggered at the end of epoch 0: hard ids come back repeated
            hard_seen = np.isin(np.array(seen), miner.hard_ids)
            assert hard_seen.sum() > 5 and len(seen) == len(miner.sampler) == 60
        pids_per_epoch.append(pids)
        miner.end_epoch(epoch)
    assert len(pids_per_epoch[0]) == 2 and os.getpid() not in pids_per_epoch[0]
    assert pids_per_epoch[0] == pids_per_epoch[1] == pids_per_epoch[2]  # the same persistent workers


def test_a_fusion_file_trains_with_its_dataset_and_reports_without(tmp_path: Path) -> None:
    fusion = FusionDataset({"bbu": [{"x": i} for i in range(20)]}, {"lvis": ([{"y": i} for i in range(40)], 0.5)})
    miner = HardMiner(CFG, dataset=fusion, seed=1)
    run_epoch(miner, fusion, 0)
    miner.end_epoch(0)
    path = miner.save(tmp_path / "miner.npz")
    with pytest.raises(ValueError, match=r"saved by a FusionDataset run: pass dataset=.*RunRecord.load"):
        HardMiner.load(path)
    record = RunRecord.load(path)
    assert [e.to_dict() for e in record.history] == [e.to_dict() for e in miner.history]
    assert record.hard_ids.tolist() == miner.hard_ids.tolist() and len(record.ledger) == len(miner.ledger)


def test_a_lifted_cap_reaches_the_targets_and_leaves_the_auxiliary_quotas() -> None:
    fusion = FusionDataset({"a": [{"x": i} for i in range(100)]}, {"b": ([{"y": i} for i in range(50)], 0.5)})
    cats = {"a": [0] * 95 + [1] * 5}  # a 19x prior on the last five targets
    capped = HardMiner({"seed": 0, "resample": {"lift_cap_below": None}}, dataset=fusion, categories=cats)
    lifted = HardMiner({"seed": 0}, dataset=fusion, categories=cats)
    for epoch in range(4):
        for m in (capped, lifted):
            m.sampler.set_epoch(epoch)
            stream = list(m.sampler)
            ids = np.array([fusion[i]["sample_id"] for i in stream], dtype=np.int64)
            names, _ = fusion.decode_many(ids)
            keep = names == "a"  # every target is learned (loss 0.1): nothing for the guard to flag
            m.record(ids[keep], np.full(int(keep.sum()), 0.1, np.float32))
            m.end_epoch(epoch)
    assert capped.sampler.max_repeats == 4 and lifted.sampler.max_repeats is None and lifted.history[-1].cap_lifted
    assert lifted.sampler.counts()[95:100].min() > 4 >= capped.sampler.counts()[:100].max()
    assert lifted.sampler.source_counts() == capped.sampler.source_counts() == {"a": 100, "b": 50}
