"""Checkpoint and resume: a resumed run reproduces the uninterrupted one (order, losses, hard set)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest.importorskip("transformers")


from hardmine.integrations.hf import STATE_FILE, HardMiningTrainer  # noqa: E402
from tests.hf_tiny import TokenDataset, record_stream, stack_collate, tiny_args, tiny_qwen3  # noqa: E402

pytestmark = pytest.mark.slow
MINING = {
    "trigger": {"kind": "epoch", "start_epoch": 0},
    "select": {"kind": "top_k", "k": 5},
    "resample": {"hard_weight": 4.0, "max_repeats": 3},
}
N, BATCH, EPOCHS = 24, 4, 3  # 6 steps per epoch, 18 in all; checkpoints every 3 steps


class Recording(HardMiningTrainer):
    """Keeps every (ids, losses) pair the adapter hands the miner, in order."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stream = record_stream(self)


def _trainer(out: Path, data: TokenDataset | None = None) -> Recording:
    args = tiny_args(out, per_device_train_batch_size=BATCH, num_train_epochs=EPOCHS, save_strategy="steps",
                     save_steps=3, logging_steps=3)
    return Recording(
        model=tiny_qwen3(seed=1),
        args=args,
        train_dataset=data or TokenDataset(N),
        data_collator=stack_collate,
        mining=MINING,
    )


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Recording, Path]:
    out = tmp_path_factory.mktemp("full")
    trainer = _trainer(out)
    trainer.train()
    return trainer, out


def _resume(full: Path, step: int, tmp_path: Path) -> Recording:
    folder = tmp_path / f"checkpoint-{step}"
    shutil.copytree(full / f"checkpoint-{step}", folder)
    trainer = _trainer(tmp_path)
    trainer.train(resume_from_checkpoint=str(folder))
    return trainer


# step 9: mid-epoch 1 with mining active (weighted order, pending losses); step 6: the last step of
# epoch 0, saved before its epoch end (the resumed run must end epoch 0 itself)
@pytest.mark.parametrize("step", [9, 6])
def test_resume_reproduces_the_uninterrupted_run(
    uninterrupted: tuple[Recording, Path], tmp_path: Path, step: int
) -> None:
    full, out = uninterrupted
    assert (out / f"checkpoint-{step}" / STATE_FILE).is_file()
    resumed = _resume(out, step, tmp_path)
    tail = full.stream[step * BATCH :]
    assert [i for i, _ in resumed.stream] == [i for i, _ in tail]  # the same samples in the same order
    assert [x for _, x in resumed.stream] == [x for _, x in tail]  # the same losses, bit for bit
    a, b = full.miner, resumed.miner
    assert a is not None and b is not None
    assert a.hard_ids.tolist() == b.hard_ids.tolist()
    np.testing.assert_array_equal(a.ledger.scores()[1], b.ledger.scores()[1])
    assert [e.to_dict() for e in a.history] == [e.to_dict() for e in b.history]


def test_checkpoint_without_state_warns_and_starts_fresh(
    uninterrupted: tuple[Recording, Path], tmp_path: Path
) -> None:
    _, out = uninterrupted
    folder = tmp_path / "checkpoint-15"
    shutil.copytree(out / "checkpoint-15", folder)
    (folder / STATE_FILE).unlink()
    trainer = _trainer(tmp_path)
    with pytest.warns(UserWarning, match="holds no hardmine_state.npz; mining starts fresh"):
        trainer.train(resume_from_checkpoint=str(folder))
    assert trainer.miner is not None and [e.epoch for e in trainer.miner.history] == [2]


def test_checkpoint_for_another_dataset_length_is_refused(
    uninterrupted: tuple[Recording, Path], tmp_path: Path
) -> None:
    _, out = uninterrupted
    trainer = _trainer(tmp_path, TokenDataset(N + 4))
    with pytest.raises(ValueError, match=f"train dataset of {N} samples, but this train_dataset has {N + 4}"):
        trainer.train(resume_from_checkpoint=str(out / "checkpoint-9"))
