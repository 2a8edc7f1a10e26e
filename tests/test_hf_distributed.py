"""2-process gloo runs of a whole HardMiningTrainer training (torch.distributed.run, CPU)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.torchrun import launch

pytest.importorskip("transformers")
pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).parent / "dist" / "hf_ddp_train.py"


def _launch(out: Path, *argv: str) -> list[dict[str, Any]]:
    return launch(SCRIPT, out, *argv)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    out = tmp_path_factory.mktemp("ddp")
    return out, _launch(out, "full")


def test_every_rank_ends_with_the_same_hard_set(full_run: tuple[Path, list[dict[str, Any]]]) -> None:
    _, (r0, r1) = full_run
    assert r0["world_size"] == r1["world_size"] == 2
    assert r0["hard_ids"] == r1["hard_ids"] and len(r0["hard_ids"]) == 5
    assert r0["ledger_ids"] == r1["ledger_ids"] == list(range(24))  # every sample of the epoch
    assert r0["scores"] == r1["scores"] and r0["history"] == r1["history"]
    assert [e["num_observed"] for e in r0["history"]] == [24, 24, 24]  # both ranks' losses, every epoch
    # each rank recorded only its own shard: the two streams are disjoint halves of epoch 0
    first = sorted(i for i, _ in r0["stream"][:12]) + sorted(i for i, _ in r1["stream"][:12])
    assert sorted(first) == list(range(24))


def test_no_collective_is_called_by_one_rank_alone(full_run: tuple[Path, list[dict[str, Any]]]) -> None:
    _, (r0, r1) = full_run
    assert r0["collectives"] == r1["collectives"]
    # 3 epoch ends (the record buffer's gather) + 6 checkpoints (every rank's pending records, with sizes)
    # + the first step's comparison of the ranks' batches (duplicated data across ranks)
    assert r0["collectives"].count("gather:all_gather_concat:3") == 3
    assert r0["collectives"].count("state_dict:all_gather_concat_sizes:3") == 6
    assert r0["collectives"][0] == "_warn_if_ranks_share_data:all_gather_concat_sizes:1"
    assert len(r0["collectives"]) == 10


def test_resume_mid_epoch_on_two_ranks_reproduces_the_run(
    full_run: tuple[Path, list[dict[str, Any]]], tmp_path: Path
) -> None:
    out, full = full_run
    step = 9  # mid-epoch 1: mining active, each rank holds its own pending losses
    checkpoint = tmp_path / f"checkpoint-{step}"
    shutil.copytree(out / "full" / f"checkpoint-{step}", checkpoint)
    resumed = _launch(tmp_path, "resume", str(checkpoint))
    for rank in range(2):
        tail = full[rank]["stream"][step * 2 :]  # 2 samples per rank per step
        assert resumed[rank]["stream"] == tail, f"rank {rank}"
        assert resumed[rank]["hard_ids"] == full[rank]["hard_ids"]
        assert resumed[rank]["scores"] == full[rank]["scores"]
        assert resumed[rank]["history"] == full[rank]["history"]
