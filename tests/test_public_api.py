"""Contract tests over the public API: names, lazy optional imports, repr, pickle and state round trips."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest

import hardmine as hm
from tests.states import states_equal

CONTRACT_NAMES = {"HardMiningSampler", "LossLedger", "HardMiningConfig", "HardMiner"}


def test_contract_names_are_exported() -> None:
    assert set(hm.__all__) >= CONTRACT_NAMES
    for name in hm.__all__:
        assert getattr(hm, name) is not None
    assert isinstance(hm.__version__, str)


def test_import_does_not_import_transformers() -> None:
    code = "import sys, hardmine; assert 'transformers' not in sys.modules and 'accelerate' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def stateful_examples() -> list[object]:
    ledger = hm.LossLedger("mean", num_ids=10)
    ledger.update([1, 2, 2], [1.0, 2.0, 4.0])
    sampler = hm.HardMiningSampler(10, seed=2, max_repeats=3)
    sampler.set_weights(np.arange(10, dtype=float) + 1)
    sampler.set_epoch(4)
    plateau = hm.PlateauTrigger(monitor="eval_loss", patience=1)
    plateau.step(0, {"eval_loss": 2.0})
    miner = hm.HardMiner({"trigger": {"kind": "epoch", "start_epoch": 0}, "select": {"kind": "top_k", "k": 2}},
                         num_samples=10)
    miner.record(np.arange(10), np.linspace(0, 1, 10))
    miner.end_epoch(0)
    miner.record([3], [0.5])  # pending, not yet gathered
    return [ledger, sampler, plateau, hm.EpochTrigger(1), miner]


@pytest.mark.parametrize("obj", stateful_examples(), ids=lambda o: type(o).__name__)
def test_repr_pickle_and_state_round_trip(obj: object) -> None:
    assert type(obj).__name__ in repr(obj)
    clone = pickle.loads(pickle.dumps(obj))
    state = obj.state_dict()  # type: ignore[attr-defined]
    again = clone.state_dict()  # type: ignore[attr-defined]
    assert states_equal(state, again)
    fresh = pickle.loads(pickle.dumps(obj))
    fresh.load_state_dict(state)  # type: ignore[attr-defined]
    assert states_equal(fresh.state_dict(), state)  # type: ignore[attr-defined]



def test_selectors_and_config_repr() -> None:
    for obj in (hm.TopK(3), hm.Percentile(90), hm.Threshold(1.0), hm.HardMiningConfig()):
        assert type(obj).__name__ in repr(obj)
