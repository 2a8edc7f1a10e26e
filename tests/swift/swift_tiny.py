"""Tiny ms-swift runs for tests/swift: a Qwen3 saved from a config in code, a swift template, counted reads."""

from __future__ import annotations

import os
import types
from pathlib import Path
from typing import Any

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest.importorskip("swift", reason="ms-swift lives in its own environment: make test-swift")

from swift import get_model_processor, get_template  # noqa: E402
from swift.dataset import LazyLLMDataset  # noqa: E402
from swift.trainers import Seq2SeqTrainingArguments, TrainerFactory  # noqa: E402

from hardmine.integrations.hf import HardMiningTrainerMixin  # noqa: E402
from tests.hf_tiny import record_plans, tiny_qwen3, tiny_tokenizer  # noqa: E402

N, EPOCHS = 40, 3
MINING = {"trigger": {"kind": "epoch", "start_epoch": 0}, "select": {"kind": "top_k", "k": 4},
          "resample": {"hard_weight": 4.0, "max_repeats": 4}}


def save_tiny_qwen3(folder: Path) -> Path:
    """A tiny Qwen3 and its WordLevel tokenizer, saved where ``get_model_processor`` loads them from."""
    model, tok = tiny_qwen3(), tiny_tokenizer()
    model.config.eos_token_id, model.config.pad_token_id = tok.eos_token_id, tok.pad_token_id
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


class Reads(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """The swift dataset, counting every index the DataLoader asks it for (num_workers=0: in this process)."""

    def __init__(self, dataset: Any) -> None:
        self.dataset, self.reads = dataset, []  # type: ignore[var-annotated]

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> Any:
        self.reads.append(int(i))
        return self.dataset[i]


def rows() -> list[dict[str, Any]]:
    g = torch.Generator().manual_seed(0)

    def words(n: int) -> str:
        return " ".join(f"w{int(x)}" for x in torch.randint(0, 40, (n,), generator=g))

    return [{"messages": [{"role": "user", "content": words(4)},
                          {"role": "assistant", "content": words(int(torch.randint(2, 8, (1,), generator=g)))}]}
            for _ in range(N)]


def build_trainer(model_dir: Path, out: Path, *, padding_free: bool = False, mixins: tuple[type, ...] = (),
                  mining: dict[str, Any] | None = None, lr: float = 1e-2, epochs: int = EPOCHS,
                  report_to: str = "none", **overrides: Any) -> Any:
    """A mined ms-swift ``Seq2SeqTrainer`` built the ms-swift way (factory, template, template-based constructor);
    ``trainer.train_dataset.reads`` counts the dataset's reads, ``trainer.plans`` each epoch's plan."""
    import datasets

    model, processor = get_model_processor(str(model_dir), model_type="qwen3", torch_dtype=torch.float32,
                                           device_map="cpu")
    template = get_template(processor, template_type="qwen3", max_length=64, padding_free=padding_free)
    template.set_mode("train")
    data = Reads(LazyLLMDataset(datasets.Dataset.from_list(rows()), template.encode, random_state=0))
    swift_trainer = TrainerFactory.get_trainer_cls(types.SimpleNamespace(task_type="causal_lm"))
    cls = type("MinedSwiftTrainer", (HardMiningTrainerMixin, *mixins, swift_trainer), {})
    args = Seq2SeqTrainingArguments(
        output_dir=str(out), report_to=report_to, use_cpu=True, disable_tqdm=True, per_device_train_batch_size=4,
        gradient_accumulation_steps=1, dataloader_num_workers=0, num_train_epochs=epochs, save_strategy="no",
        logging_steps=5, learning_rate=lr, seed=0, remove_unused_columns=False, check_model=False, **overrides)
    trainer = cls(model=model, args=args, template=template, train_dataset=data, mining=mining or MINING)
    trainer.plans = record_plans(trainer)
    return trainer
