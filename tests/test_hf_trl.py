"""TRL's SFTTrainer (the installed trl) with the mixin: per-sample losses from its fused LM head, no extra
forward, padding-free batches split per sample, dataset packing refused at construction."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest.importorskip("transformers")
trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")

from hardmine.integrations.hf import HardMiningTrainerMixin  # noqa: E402
from tests.hf_tiny import TokenDataset, record_plans, record_stream, tiny_qwen3, tiny_tokenizer  # noqa: E402

pytestmark = pytest.mark.slow
N = 16
NEVER = {"trigger": {"kind": "epoch", "start_epoch": 99}, "aggregate": "last"}
EARLY = {"trigger": {"kind": "epoch", "start_epoch": 0}, "select": {"kind": "top_k", "k": 4},
         "resample": {"hard_weight": 4.0}}


class MinedSFTTrainer(HardMiningTrainerMixin, trl.SFTTrainer):
    pass


def _config(tmp_path: Path, **kw: Any) -> Any:
    base: dict[str, Any] = dict(output_dir=str(tmp_path), report_to="none", use_cpu=True, disable_tqdm=True,
                                per_device_train_batch_size=4, num_train_epochs=1, save_strategy="no",
                                logging_steps=1, learning_rate=0.0, seed=0)
    return trl.SFTConfig(**{**base, **kw})


def _rows() -> Any:
    return datasets.Dataset.from_dict({"input_ids": TokenDataset(N, width=10).x.tolist()})


class ForwardCounter:
    def __init__(self, model: torch.nn.Module) -> None:
        self.calls = 0
        model.register_forward_hook(self._count)

    def _count(self, *args: Any) -> None:
        self.calls += 1


def test_per_sample_ce_from_the_fused_head_without_an_extra_forward(tmp_path: Path) -> None:
    model = tiny_qwen3()
    trainer = MinedSFTTrainer(model=model, args=_config(tmp_path), train_dataset=_rows(),
                              processing_class=tiny_tokenizer(), mining=NEVER)
    forwards = ForwardCounter(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.train()
    steps = trainer.state.global_step
    assert steps == N // 4 and forwards.calls == steps  # one forward per step: TRL's fused one, nothing else
    assert not [w for w in caught if issubclass(w.category, FutureWarning) and "return_outputs" in str(w.message)]
    ids, scores = trainer.miner.ledger.scores()  # type: ignore[union-attr]
    rows = TokenDataset(N, width=10).x
    with torch.no_grad():  # the reference: each row's token-mean CE, by the model's own loss
        expected = [float(model(input_ids=r[None], labels=r[None]).loss) for r in rows]
    assert ids.tolist() == list(range(N))
    np.testing.assert_allclose(scores, expected, rtol=1e-5)


def test_padding_free_batches_are_split_per_sample(tmp_path: Path) -> None:
    scores = []
    for padding_free in (False, True):
        extra: dict[str, Any] = {"padding_free": True, "max_length": None} if padding_free else {}
        trainer = MinedSFTTrainer(model=tiny_qwen3(), args=_config(tmp_path, **extra), train_dataset=_rows(),
                                  processing_class=tiny_tokenizer(), mining=NEVER)
        trainer.train()
        scores.append(trainer.miner.ledger.scores()[1])  # type: ignore[union-attr]
    np.testing.assert_allclose(scores[1], scores[0], rtol=1e-4)  # another attention layout: float noise only


def test_mined_samples_are_drawn_more_often_next_epoch(tmp_path: Path) -> None:
    trainer = MinedSFTTrainer(model=tiny_qwen3(), args=_config(tmp_path, num_train_epochs=2, learning_rate=1e-2),
                              train_dataset=_rows(), processing_class=tiny_tokenizer(), mining=EARLY)
    stream, plans = record_stream(trainer), record_plans(trainer)
    trainer.train()
    draws, hard = plans[1]
    epoch1 = np.bincount([i for i, _ in stream[N:]], minlength=N)  # the ids are the dataset indices here
    assert len(stream) == 2 * N and epoch1.tolist() == draws.tolist()  # drawn as planned, the length unchanged
    mined = np.isin(np.arange(N), hard)
    ratio = epoch1[mined].mean() / epoch1[~mined].mean()
    assert ratio > 2.0 and ratio == pytest.approx(trainer.miner.history[0].draw_ratio)  # type: ignore[union-attr]


@pytest.mark.parametrize("strategy", ["bfd", "wrapped"])
def test_dataset_packing_is_refused_at_construction_naming_padding_free(tmp_path: Path, strategy: str) -> None:
    with pytest.raises(ValueError, match=f"packing_strategy='{strategy}'.*padding_free=True with packing=False"):
        MinedSFTTrainer(model=tiny_qwen3(), args=_config(tmp_path, packing=True, packing_strategy=strategy),
                        train_dataset=_rows(), processing_class=tiny_tokenizer(), mining=EARLY)
