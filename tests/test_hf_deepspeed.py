"""DeepSpeed ZeRO-3 on 2 gloo CPU ranks (torch.distributed.run): the real deepspeed package, a tiny Qwen3.

One launch each: the stock Trainer, a mined run, its resume from mid-epoch 1, and the mistake that feeds
every rank the same data. The first launch on a machine JIT-builds DeepSpeed's CPU shared-memory op (about
a minute on 2 cores, cached in ~/.cache/torch_extensions).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.torchrun import launch

pytest.importorskip("transformers")
pytest.importorskip("deepspeed")
pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).parent / "dist" / "hf_ds_train.py"
STEPS_PER_EPOCH = 6  # 24 samples, 2 ranks x 2 per step


def _launch(out: Path, *argv: str) -> list[dict[str, Any]]:
    return launch(SCRIPT, out, *argv, timeout=420)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[dict[str, Any]]]]:
    out = tmp_path_factory.mktemp("zero3")
    return out, {mode: _launch(out, mode) for mode in ("stock", "full")}


def test_both_ranks_agree_on_the_mining(runs: tuple[Path, dict[str, list[dict[str, Any]]]]) -> None:
    r0, r1 = runs[1]["full"]
    assert r0["world_size"] == r1["world_size"] == 2
    assert r0["hard_ids"] == r1["hard_ids"] and len(r0["hard_ids"]) == 5
    assert r0["scores"] == r1["scores"] and r0["history"] == r1["history"]
    assert [e["num_observed"] for e in r0["history"]] == [24, 24, 24]  # each sample once per epoch, not twice
    first = sorted(i for i, _ in r0["stream"][:12]) + sorted(i for i, _ in r1["stream"][:12])
    assert sorted(first) == list(range(24))  # the ranks' shares of epoch 0 are disjoint
    assert r0["warnings"] == r1["warnings"] == []


def test_loss_and_parameters_equal_stock_while_the_order_is_the_same(
    runs: tuple[Path, dict[str, list[dict[str, Any]]]]
) -> None:
    """Epoch 0 draws the stock order (mining fires at its end): every optimizer step must be the stock one."""
    for rank in range(2):
        stock, ours = runs[1]["stock"][rank], runs[1]["full"][rank]
        # the loss value is summed in another order than the stock reduction (last-bit differences, as without
        # DeepSpeed); the gradients are the stock ones, so every parameter shard is equal bit for bit
        assert ours["losses"][:STEPS_PER_EPOCH] == pytest.approx(stock["losses"][:STEPS_PER_EPOCH], rel=1e-6)
        assert ours["epoch0_partitions"] == stock["epoch0_partitions"]  # bit for bit, every ZeRO-3 shard
        assert ours["losses"] != stock["losses"]  # from epoch 1 on, mined samples are drawn more often


def test_resume_mid_epoch_reproduces_the_run(runs: tuple[Path, dict[str, list[dict[str, Any]]]],
                                            tmp_path: Path) -> None:
    out, full = runs[0], runs[1]["full"]
    step = 9  # mid-epoch 1: mining active, pending losses on each rank
    checkpoint = tmp_path / f"checkpoint-{step}"
    shutil.copytree(out / "full" / f"checkpoint-{step}", checkpoint)
    resumed = _launch(tmp_path, "resume", str(checkpoint))
    for rank in range(2):
        assert resumed[rank]["stream"] == full[rank]["stream"][step * 2:], f"rank {rank}"
        for key in ("hard_ids", "scores", "history", "partitions"):
            assert resumed[rank][key] == full[rank][key], (rank, key)


def test_every_rank_fed_the_same_data_is_warned_once(tmp_path: Path) -> None:
    """Without use_cpu=True accelerate sees one process on CPU: nothing shards, hardmine counts each sample twice."""
    dup = _launch(tmp_path, "dup")
    for rank in range(2):
        assert len(dup[rank]["warnings"]) == 1, dup[rank]["warnings"]
        assert "same first batch" in dup[rank]["warnings"][0] and "use_cpu=True" in dup[rank]["warnings"][0]
    assert dup[0]["history"][0]["num_observed"] == 48  # what the warning is about
