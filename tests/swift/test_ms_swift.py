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
from swift.dataset import LazyLLMDataset  # noqa: E402
from swift.trainers import Seq2SeqTrainingArguments, TrainerFactory  # noqa: E402

import hardmine.integrations._hf_trainer as hf_trainer  # noqa: E402
from hardmine.integrations.hf import HardMiningTrainerMixin  # noqa: E402
from tests.hf_tiny import record_plans, tiny_qwen3, tiny_tokenizer  # noqa: E402

pytestmark = pytest.mark.slow
N, EPOCHS = 40, 3
MINING = {"trigger": {"kind": "epoch", "start_epoch": 0}, "select": {"kind": "top_k", "k": 4},
          "resample": {"hard_weight": 4.0, "max_repeats": 4}}


class Reads(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """The swift dataset, counting every index the DataLoader asks it for (num_workers=0: in this process)."""

    def __init__(self, dataset: Any) -> None:
        self.dataset, self.reads = dataset, []  # type: ignore[var-annotated]

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> Any:
        self.reads.append(int(i))
        return self.dataset[i]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny_qwen3")
    model, tok = tiny_qwen3(), tiny_tokenizer()
    model.config.eos_token_id, model.config.pad_token_id = tok.eos_token_id, tok.pad_token_id
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _rows() -> list[dict[str, Any]]:
    g = torch.Generator().manual_seed(0)

    def words(n: int) -> str:
        return " ".join(f"w{int(x)}" for x in torch.randint(0, 40, (n,), generator=g))

    return [{"messages": [{"role": "user", "content": words(4)},
                          {"role": "assistant", "content": words(int(torch.randint(2, 8, (1,), generator=g)))}]}
            for _ in range(N)]


def _trainer(model_dir: Path, out: Path, *, padding_free: bool = False, mixins: tuple[type, ...] = (),
             mining: dict[str, Any] | None = None, lr: float = 1e-2, epochs: int = EPOCHS,
             report_to: str = "none") -> Any:
    import datasets

    model, processor = get_model_processor(str(model_dir), model_type="qwen3", torch_dtype=torch.float32,
                                           device_map="cpu")
    template = get_template(processor, template_type="qwen3", max_length=64, padding_free=padding_free)
    template.set_mode("train")
    data = Reads(LazyLLMDataset(datasets.Dataset.from_list(_rows()), template.encode, random_state=0))
    swift_trainer = TrainerFactory.get_trainer_cls(types.SimpleNamespace(task_type="causal_lm"))
    cls = type("MinedSwiftTrainer", (HardMiningTrainerMixin, *mixins, swift_trainer), {})
    args = Seq2SeqTrainingArguments(
        output_dir=str(out), report_to=report_to, use_cpu=True, disable_tqdm=True, per_device_train_batch_size=4,
        gradient_accumulation_steps=1, dataloader_num_workers=0, num_train_epochs=epochs, save_strategy="no",
        logging_steps=5, learning_rate=lr, seed=0, remove_unused_columns=False, check_model=False)
    trainer = cls(model=model, args=args, template=template, train_dataset=data, mining=mining or MINING)
    trainer.plans = record_plans(trainer)
    return trainer


def _epoch_reads(trainer: Any) -> list[np.ndarray]:
    reads = np.asarray(trainer.train_dataset.reads)
    assert reads.size == N * EPOCHS  # the epoch length never changes
    return [np.bincount(r, minlength=N) for r in reads.reshape(EPOCHS, N)]


@pytest.mark.parametrize("padding_free", [False, True], ids=["padded", "padding_free"])
def test_mined_ids_are_read_more_often_next_epoch(model_dir: Path, tmp_path: Path, padding_free: bool) -> None:
    trainer = _trainer(model_dir, tmp_path, padding_free=padding_free)
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
        trainer = _trainer(model_dir, tmp_path / str(padding_free), padding_free=padding_free, mining=never, lr=0.0,
                           epochs=1)
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

    trainer = _trainer(model_dir, tmp_path, mixins=(LossTermMixin,), report_to="tensorboard")
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
    trainer = _trainer(model_dir, tmp_path)
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
