"""Every stateful part is a Stateful with a versioned state: it round-trips, and a mismatched state is a
ValueError that says what differs (another kind, another version, a missing key), never a KeyError."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import hardmine as hm
from hardmine.fusion import FusionDataset
from hardmine.guards import GuardChain, Learnability, LossTail, Staleness
from hardmine.history import MiningHistory
from hardmine.ids import FusionIds, IndexIds, MappedIds
from tests.states import states_equal


def _fusion() -> FusionDataset:
    return FusionDataset({"a": [{"x": i} for i in range(6)]}, {"b": ([{"y": i} for i in range(10)], 0.5)})


def _miner() -> hm.HardMiner:
    miner = hm.HardMiner({"trigger": {"kind": "epoch", "start_epoch": 0}, "select": {"kind": "top_k", "k": 2}},
                         num_samples=10)
    miner.record(np.arange(10), np.linspace(0, 1, 10))
    miner.end_epoch(0)
    miner.record([3], [0.5])
    return miner


def _plateau() -> hm.PlateauTrigger:
    t = hm.PlateauTrigger(monitor="m", patience=1)
    t.step(0, {"m": 2.0})
    return t


def _learnability() -> Learnability:
    g = Learnability()
    ledger = hm.LossLedger(num_ids=3)
    ledger.update([0, 1, 2], [1.0, 2.0, 3.0])
    g.exclude(ledger.stats(), 0)
    return g


def _cartography() -> hm.Cartography:
    g = hm.Cartography(warmup=1)
    ledger = hm.LossLedger()
    ledger.update([3, 7, 9], [1.0, 2.0, 3.0])
    g.exclude(ledger.stats(), 0)
    g.exclude(ledger.stats(), 1)
    return g


def _buffer() -> hm.RecordBuffer:
    b = hm.RecordBuffer()
    b.add([4, 2], [1.0, 2.0], [0, 1])
    return b


def _weighted_sampler() -> hm.HardMiningSampler:
    s = hm.HardMiningSampler(8, seed=1, max_repeats=3)
    s.set_weights(np.arange(8.0) + 1)
    s.set_epoch(2)
    return s


def _history() -> MiningHistory:
    h = MiningHistory()
    h.append(hm.MiningEvent(epoch=0, triggered=True, num_hard=1), np.array([4]))
    return h


PARTS: dict[str, Callable[[], Any]] = {
    "LossLedger": lambda: hm.LossLedger(num_ids=5),
    "HardMiningSampler": _weighted_sampler,
    "FusionSampler": lambda: _fusion().make_sampler(seed=2),
    "EpochTrigger": lambda: hm.EpochTrigger(1),
    "PlateauTrigger": _plateau,
    "Learnability": _learnability,
    "Staleness": lambda: Staleness(2),
    "Cartography": _cartography,
    "GuardChain": lambda: GuardChain([Learnability(), Staleness()]),
    "RecordBuffer": _buffer,
    "IndexIds": lambda: IndexIds(5),
    "MappedIds": lambda: MappedIds(3, [7, 7, 9]),
    "FusionIds": lambda: FusionIds(_fusion().id_index()),
    "MiningHistory": _history,
    "HardMiner": _miner,
}



@pytest.mark.parametrize("name", PARTS)
def test_is_stateful_with_a_versioned_state_that_round_trips(name: str) -> None:
    part = PARTS[name]()
    assert isinstance(part, hm.Stateful)
    state = part.state_dict()
    assert state["kind"] == name and isinstance(state["version"], int)
    fresh = pickle.loads(pickle.dumps(PARTS[name]()))
    fresh.load_state_dict(state)
    assert states_equal(fresh.state_dict(), state)


@pytest.mark.parametrize("name", PARTS)
def test_a_state_of_another_kind_is_refused_by_name(name: str) -> None:
    other = "EpochTrigger" if name != "EpochTrigger" else "Staleness"
    with pytest.raises(ValueError, match=f"cannot load a '{other}' state into a {name}"):
        PARTS[name]().load_state_dict(PARTS[other]().state_dict())


@pytest.mark.parametrize("name", PARTS)
def test_another_version_is_refused_naming_both(name: str) -> None:
    state = {**PARTS[name]().state_dict(), "version": 99}
    with pytest.raises(ValueError, match=r"of version 99; this hardmine reads version \d"):
        PARTS[name]().load_state_dict(state)


@pytest.mark.parametrize("name", [n for n in PARTS if len(PARTS[n]().state_dict()) > 2])
def test_a_missing_key_is_named_not_a_key_error(name: str) -> None:
    state = PARTS[name]().state_dict()
    key = sorted(k for k in state if k not in ("kind", "version"))[0]
    del state[key]
    with pytest.raises(ValueError, match=f"missing keys \\['{key}'\\]"):
        PARTS[name]().load_state_dict(state)


def test_a_guard_chain_refuses_other_guards_naming_both_lists() -> None:
    state = GuardChain([LossTail(), Staleness()]).state_dict()
    with pytest.raises(ValueError, match=r"holds guards \['LossTail', 'Staleness'\].*\['Learnability', 'Staleness'\]"):
        GuardChain([Learnability(), Staleness()]).load_state_dict(state)


def test_sizes_and_layouts_must_match() -> None:
    with pytest.raises(ValueError, match="num_samples=5, but this IndexIds has num_samples=6"):
        IndexIds(6).load_state_dict(IndexIds(5).state_dict())
    with pytest.raises(ValueError, match="num_samples=8"):
        hm.HardMiningSampler(9).load_state_dict(_weighted_sampler().state_dict())
    other = FusionDataset({"a": [{"x": i} for i in range(6)]}, {"b": ([{"y": i} for i in range(10)], 1.0)})
    with pytest.raises(ValueError, match="sources="):
        other.make_sampler().load_state_dict(_fusion().make_sampler().state_dict())
