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
    # an untrained tiny model: every loss is high and flat, which the default guard reads as hard to learn
    # once it has seen 3 epochs; with a warm-up of 4 it tracks every id but judges none in these 3 epochs
    "guard": {"cartography": {"warmup": 4}, "staleness": {}},
}
N, BATCH, EPOCHS = 24, 4, 3  # 6 steps per epoch, 18 in all; checkpoints every 3 steps


class Recording(HardMiningTrainer):
    """Keeps every (ids, losses) pair the adapter hands the miner, in order."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stream = record_stream(self)


def _trainer(out: Path, data: TokenDataset | None = None, mining: dict[str, Any] | None = None) -> Recording:
    args = tiny_args(out, per_device_train_batch_size=BATCH, num_train_epochs=EPOCHS, save_strategy="steps",
                     save_steps=3, logging_steps=3)
    return Recording(
        model=tiny_qwen3(seed=1),
        args=args,
        train_dataset=data or TokenDataset(N),
        data_collator=stack_collate,
        mining=MINING if mining is None else mining,
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


def test_checkpoint_written_with_mining_off_warns_and_starts_fresh(tmp_path: Path) -> None:
    """The documented case: a run started without mining is resumed with mining on."""
    off = tmp_path / "off"
    args = tiny_args(off, per_device_train_batch_size=BATCH, num_train_epochs=EPOCHS, save_strategy="steps",
                     save_steps=15, logging_steps=3)
    HardMiningTrainer(model=tiny_qwen3(seed=1), args=args, train_dataset=TokenDataset(N),
                      data_collator=stack_collate, mining={**MINING, "enabled": False}).train()
    assert not (off / "checkpoint-15" / STATE_FILE).exists()
    trainer = _trainer(tmp_path / "on")
    with pytest.warns(UserWarning, match="holds no hardmine_state.npz .written with mining off.; mining starts fresh"):
        trainer.train(resume_from_checkpoint=str(off / "checkpoint-15"))
    assert trainer.miner is not None and [e.epoch for e in trainer.miner.history] == [2]


def test_a_lost_mining_state_is_an_error_naming_the_newest_checkpoint_that_has_one(
    uninterrupted: tuple[Recording, Path], tmp_path: Path
) -> None:
    _, out = uninterrupted
    for step in (12, 15):
        shutil.copytree(out / f"checkpoint-{step}", tmp_path / f"checkpoint-{step}")
    (tmp_path / "checkpoint-15" / STATE_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=r"checkpoint-15 was written with mining on, but .*hardmine_state.npz "
                       r"is missing.*resume from .*checkpoint-12, the newest checkpoint that holds one"):
        _trainer(tmp_path).train(resume_from_checkpoint=str(tmp_path / "checkpoint-15"))
    fresh = _trainer(tmp_path, mining={**MINING, "on_missing_state": "fresh"})
    with pytest.warns(UserWarning, match="its mining state is missing; mining starts fresh"):
        fresh.train(resume_from_checkpoint=str(tmp_path / "checkpoint-15"))


def test_an_interrupted_save_is_an_error_naming_the_newest_finished_checkpoint(
    uninterrupted: tuple[Recording, Path], tmp_path: Path
) -> None:
    _, out = uninterrupted
    shutil.copytree(out / "checkpoint-12", tmp_path / "checkpoint-12")
    partial = tmp_path / "checkpoint-15"
    partial.mkdir()
    shutil.copy(out / "checkpoint-15" / STATE_FILE, partial / STATE_FILE)  # killed right after our write
    orphan = partial / f"{STATE_FILE}.{2**22 + 123}.abcd.tmp"  # and an orphan of an earlier kill: its pid is gone
    orphan.write_bytes(b"half")
    os.utime(orphan, (1.0, 1.0))
    with pytest.raises(ValueError, match=r"checkpoint-15 has no trainer_state.json: its save was interrupted.*"
                       r"resume from .*checkpoint-12"):
        _trainer(tmp_path).train(resume_from_checkpoint=True)
    assert not list(partial.glob("*.tmp"))  # orphans are cleaned up


@pytest.mark.parametrize(("change", "field"), [
    ({"resample": {**MINING["resample"], "max_repeats": 2}}, "resample.max_repeats was 3 when it was saved but is 2"),
    ({"seed": 7}, "seed was 0 when it was saved but is 7"),
    ({"trigger": {"kind": "plateau"}}, "trigger.kind was 'epoch' when it was saved but is 'plateau'"),
    ({"guard": None}, r"guard was \['cartography', 'staleness'\] when it was saved but is \[\]"),
])
def test_resume_refuses_a_setting_that_cannot_change_naming_file_field_and_values(
    uninterrupted: tuple[Recording, Path], tmp_path: Path, change: dict[str, Any], field: str
) -> None:
    _, out = uninterrupted
    trainer = _trainer(tmp_path, mining={**MINING, **change})
    with pytest.raises(ValueError, match=f"cannot resume from .*checkpoint-9/hardmine_state.npz: {field}"):
        trainer.train(resume_from_checkpoint=str(out / "checkpoint-9"))


def test_resume_applies_other_settings_from_the_next_epoch(
    uninterrupted: tuple[Recording, Path], tmp_path: Path
) -> None:
    full, out = uninterrupted
    folder = tmp_path / "checkpoint-9"
    shutil.copytree(out / "checkpoint-9", folder)
    trainer = _trainer(tmp_path, mining={**MINING, "select": {"kind": "top_k", "k": 2}})
    trainer.train(resume_from_checkpoint=str(folder))
    assert trainer.miner is not None and trainer.miner.config.select.k == 2
    tail = full.stream[9 * BATCH : 12 * BATCH]  # the rest of epoch 1 is drawn as planned
    assert [i for i, _ in trainer.stream[: 3 * BATCH]] == [i for i, _ in tail]
    assert [e.num_hard for e in trainer.miner.history] == [5, 2, 2]  # epochs 1 and 2 select with the new k


def test_checkpoint_for_another_dataset_length_is_refused(
    uninterrupted: tuple[Recording, Path], tmp_path: Path
) -> None:
    _, out = uninterrupted
    trainer = _trainer(tmp_path, TokenDataset(N + 4))
    with pytest.raises(ValueError, match=f"train dataset of {N} samples, but this train_dataset has {N + 4}"):
        trainer.train(resume_from_checkpoint=str(out / "checkpoint-9"))
