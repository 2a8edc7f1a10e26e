"""The real ms-swift (its own environment: ``make test-swift``) on a tiny Qwen3 built from a config in code.

The trainer is built the ms-swift way (``TrainerFactory.get_trainer_cls``, a swift template, the
template-based constructor, ``get_model_processor`` on a local folder); nothing downloads. Every index the
dataset is asked for is counted, so "resampled" means the dataset was read that way.
"""

from __future__ import annotations

import os
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
swift = pytest.importorskip("swift", reason="ms-swift lives in its own environment: make test-swift")

from swift import get_model_processor, get_template  # noqa: E402
from swift.trainers import Seq2SeqTrainingArguments, TrainerFactory  # noqa: E402

import hardmine.integrations._hf_trainer as hf_trainer  # noqa: E402
from hardmine.integrations.hf import HardMiningTrainerMixin  # noqa: E402
from tests.swift.swift_tiny import EPOCHS, MINING, N, Reads, build_trainer, save_tiny_qwen3  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_qwen3(tmp_path_factory.mktemp("tiny_qwen3"))


def _epoch_reads(trainer: Any) -> list[np.ndarray]:
    reads = np.asarray(trainer.train_dataset.reads)
    assert reads.size == N * EPOCHS  # the epoch length never changes
    return [np.bincount(r, minlength=N) for r in reads.reshape(EPOCHS, N)]


@pytest.mark.parametrize("padding_free", [False, True], ids=["padded", "padding_free"])
def test_mined_ids_are_read_more_often_next_epoch(model_dir: Path, tmp_path: Path, padding_free: bool) -> None:
    trainer = build_trainer(model_dir, tmp_path, padding_free=padding_free)
    trainer.train()
    reads = _epoch_reads(trainer)
    assert reads[0].tolist() == [1] * N  # epoch 0: uniform, every sample once
    for epoch in (1, 2):
        draws, hard = trainer.plans[epoch]
        assert reads[epoch].tolist() == draws.tolist()  # the dataset was read exactly as planned
        mined = np.isin(np.arange(N), hard)
        assert mined.sum() == 4
        ratio = reads[epoch][mined].mean() / reads[epoch][~mined].mean()
        assert ratio > 2.0, (epoch, ratio)
        assert ratio == pytest.approx(trainer.miner.history[epoch - 1].draw_ratio)
    assert [e.num_observed for e in trainer.miner.history] == [N] * EPOCHS  # every draw recorded once


def test_padding_free_splits_rows_at_ms_swift_positions(model_dir: Path, tmp_path: Path) -> None:
    never = {"trigger": {"kind": "epoch", "start_epoch": 99}, "aggregate": "last"}
    scores = []
    for padding_free in (False, True):
        trainer = build_trainer(model_dir, tmp_path / str(padding_free), padding_free=padding_free, mining=never,
                                lr=0.0, epochs=1)
        trainer.train()
        ids, values = trainer.miner.ledger.scores()
        assert ids.tolist() == list(range(N))
        scores.append(values)
    np.testing.assert_allclose(scores[1], scores[0], rtol=1e-4)


class LossTermMixin:
    """A user's mixin (as Qwen3-VL detection repositories write them): extra loss term, outputs inspected."""

    def compute_loss(self, model: Any, inputs: Any, return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        assert "sample_id" not in inputs and "hardmine_index" not in inputs  # hardmine popped its keys
        loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)  # type: ignore[misc]
        self.loss_term_calls = getattr(self, "loss_term_calls", 0) + 1
        loss = loss + 0.0 * outputs.logits.float().mean()
        return (loss, outputs) if return_outputs else loss


def test_composes_with_a_user_mixin_overriding_compute_loss(model_dir: Path, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer = build_trainer(model_dir, tmp_path, mixins=(LossTermMixin,), report_to="tensorboard")
    trainer.train()
    assert trainer.loss_term_calls == N * EPOCHS // 4
    reads = _epoch_reads(trainer)
    assert reads[2].tolist() == trainer.plans[2][0].tolist()
    assert trainer.miner.history[-1].num_observed == N
    # the TensorBoard tags, read back from the event file of this run (docs/stacks/hf_trainer.md lists them)
    (events,) = tmp_path.glob("**/events.out.tfevents.*")
    tags = set(EventAccumulator(str(events)).Reload().Tags()["scalars"])
    assert {"train/hardmine/triggered", "train/hardmine/num_hard", "train/hardmine/draw_ratio",
            "train/hardmine/mined_draw_share", "train/hardmine/score_cut"} <= tags
    assert not {t for t in tags if t.startswith("hardmine/")}


def test_a_loader_hardmine_does_not_drive_is_refused_at_the_first_step(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ms-swift 4.6 did before the takeover (and what a future loader layout would do): refused."""
    monkeypatch.setattr(hf_trainer, "take_over", lambda loader, sampler: loader)
    trainer = build_trainer(model_dir, tmp_path)
    with pytest.raises(RuntimeError, match=r"not driven by the miner's sampler.*swift\.dataloader\.shard"):
        trainer.train()
    assert len(trainer.train_dataset.reads) == 4  # one batch read; nothing recorded or logged as mined
    assert trainer.miner.pending == 0 and not trainer.miner.history


def test_ms_swift_dataset_packing_is_refused_naming_padding_free(model_dir: Path, tmp_path: Path) -> None:
    model, processor = get_model_processor(str(model_dir), model_type="qwen3", torch_dtype=torch.float32,
                                           device_map="cpu")
    template = get_template(processor, template_type="qwen3", max_length=64)
    template.packing = True
    swift_trainer = TrainerFactory.get_trainer_cls(types.SimpleNamespace(task_type="causal_lm"))
    cls = type("MinedSwiftTrainer", (HardMiningTrainerMixin, swift_trainer), {})
    args = Seq2SeqTrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True, check_model=False)
    with pytest.raises(ValueError, match="padding_free=True with packing=False"):
        cls(model=model, args=args, template=template, train_dataset=Reads([{}] * 4), mining=MINING)


def test_two_ranks_share_the_plan_between_them(model_dir: Path, tmp_path: Path) -> None:
    """2 gloo ranks: ms-swift's own sharding replaced, each rank reads its share of the one global plan."""
    from tests.torchrun import launch

    ranks = launch(Path(__file__).parent / "dist_swift_train.py", tmp_path, "ddp", str(model_dir), timeout=420)
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert ranks[0]["history"] == ranks[1]["history"] and ranks[0]["plans"] == ranks[1]["plans"]
    assert ranks[0]["warnings"] == ranks[1]["warnings"] == []
    reads = [np.asarray(r["reads"]).reshape(EPOCHS, N // 2) for r in ranks]
    assert not set(reads[0][0]) & set(reads[1][0])  # epoch 0: disjoint halves
    for epoch in range(EPOCHS):
        both = np.bincount(np.concatenate([reads[0][epoch], reads[1][epoch]]), minlength=N)
        draws, hard = ranks[0]["plans"][epoch]
        assert both.tolist() == draws, epoch  # together, the ranks read exactly the plan
        if epoch:
            mined = np.isin(np.arange(N), hard)
            assert both[mined].mean() / both[~mined].mean() > 2.0
    assert [e["num_observed"] for e in ranks[0]["history"]] == [N] * EPOCHS
