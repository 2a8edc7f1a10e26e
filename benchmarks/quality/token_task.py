"""The token-level task of the quality benchmark: a long-tail "answer the class" task for a tiny Qwen3,
trained through ``transformers.Trainer`` and hardmine's ``HardMiningTrainer`` (categories included).

Each sample is a prompt of ``PROMPT`` tokens and one answer token, the class; only the answer is a label
(-100 elsewhere), so the per-sample loss is the answer's cross-entropy as the HF adapter computes it. Class
``c`` draws its prompt tokens from its own 4 "cue" tokens and a shared pool of distractors; classes 7-9 have
``RARE`` training samples, the others ``COMMON``. Label noise flips the answer to another class. The test
set is clean and class-balanced; a prediction is the argmax over the 10 class tokens after the prompt.
The train set is a ``datasets.Dataset`` with a ``category`` column, which ``HardMiningTrainer(...,
categories="category")`` reads as the per-sample categories. Nothing downloads: the model is built from a
config, the tokens are integers.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from benchmarks.quality.train import RunResult, diagnose

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CLASSES, COMMON, RARE, TEST = 10, 60, 6, 30
PROMPT, CUES, CUE_SHARE = 8, 4, 0.2
CLASS_TOKEN0, CUE_TOKEN0, DISTRACT0, VOCAB = 2, 12, 52, 96
EPOCHS, BATCH = 8, 16
RARE_CLASSES = (7, 8, 9)


@dataclass(frozen=True)
class TokenTask:
    x: np.ndarray  # (n, PROMPT + 1) token ids: prompt then the observed answer
    y: np.ndarray  # observed class
    y_true: np.ndarray
    noisy: np.ndarray
    rare: np.ndarray
    x_test: np.ndarray  # (m, PROMPT) prompts
    y_test: np.ndarray


def _prompts(rng: np.random.Generator, y: np.ndarray) -> np.ndarray:
    cue = CUE_TOKEN0 + CUES * y[:, None] + rng.integers(0, CUES, size=(y.size, PROMPT))
    distract = rng.integers(DISTRACT0, VOCAB, size=(y.size, PROMPT))
    return np.where(rng.random((y.size, PROMPT)) < CUE_SHARE, cue, distract)


def make_token_task(seed: int, noise: float) -> TokenTask:
    rng = np.random.default_rng([seed, 7])
    counts = [RARE if c in RARE_CLASSES else COMMON for c in range(CLASSES)]
    y_true = np.repeat(np.arange(CLASSES), counts)
    noisy = rng.random(y_true.size) < noise
    y = np.where(noisy, (y_true + rng.integers(1, CLASSES, size=y_true.size)) % CLASSES, y_true)
    x = np.concatenate([_prompts(rng, y_true), (CLASS_TOKEN0 + y)[:, None]], axis=1)
    y_test = np.repeat(np.arange(CLASSES), TEST)
    return TokenTask(x, y, y_true, noisy, np.isin(y_true, RARE_CLASSES), _prompts(rng, y_test), y_test)


def _dataset(task: TokenTask) -> Any:
    """The training rows as a ``datasets.Dataset`` with a ``category`` column (what the miner reads)."""
    import datasets

    labels = np.full_like(task.x, -100)
    labels[:, -1] = task.x[:, -1]  # only the answer is learned (labels are shifted inside the model)
    return datasets.Dataset.from_dict({"input_ids": task.x.tolist(), "labels": labels.tolist(),
                                       "category": task.y.tolist()})


def _collate(features: list[dict[str, Any]]) -> dict[str, Any]:
    return {k: torch.tensor([f[k] for f in features]) for k in ("input_ids", "labels")}


def _model(seed: int) -> Any:
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed)
    return Qwen3ForCausalLM(Qwen3Config(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                        num_attention_heads=2, num_key_value_heads=1, head_dim=16,
                                        max_position_embeddings=32))


def train_tokens(variant: Any, seed: int, noise: float, lr: float) -> RunResult:
    """One run of a :class:`~benchmarks.quality.variants.Variant` on the token task: uniform (the stock
    Trainer), a frequency baseline (a Trainer with ``WeightedRandomSampler``) or a mining block
    (``HardMiningTrainer``, with ``categories="category"`` when the variant takes categories)."""
    import transformers
    from transformers import Trainer, TrainingArguments
    from transformers.trainer_callback import PrinterCallback

    from hardmine.integrations.hf import HardMiningTrainer

    transformers.logging.set_verbosity_error()
    task = make_token_task(seed, noise)
    weights = None if variant.weights is None else variant.weights(task.y)

    class WeightedTrainer(Trainer):  # the practitioner's 20 lines: WeightedRandomSampler with replacement
        def _get_train_sampler(self, train_dataset: Any = None) -> Any:
            g = torch.Generator().manual_seed(seed)
            return torch.utils.data.WeightedRandomSampler(weights, len(task.y), replacement=True, generator=g)

    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, report_to="none", use_cpu=True, disable_tqdm=True, seed=seed,
                                 learning_rate=lr, num_train_epochs=EPOCHS, per_device_train_batch_size=BATCH,
                                 save_strategy="no", logging_strategy="no", lr_scheduler_type="constant",
                                 dataloader_num_workers=0, weight_decay=0.0)
        common = dict(model=_model(seed), args=args, train_dataset=_dataset(task), data_collator=_collate)
        if weights is not None:
            trainer: Any = WeightedTrainer(**common)
        elif variant.config is not None:  # categories: the column, read from the Arrow table (no decoding)
            trainer = HardMiningTrainer(**common, mining={**variant.config, "seed": seed},
                                        categories="category" if variant.categories else None)
        elif variant.name == "uniform":
            trainer = Trainer(**common)
        else:
            raise ValueError(f"variant {variant.name!r} is not a mining block: it cannot run on the token task")
        trainer.remove_callback(PrinterCallback)  # the per-epoch log lines would flood the benchmark's output
        trainer.train()
        model = trainer.model.eval()
    with torch.no_grad():
        logits = model(input_ids=torch.as_tensor(task.x_test, dtype=torch.long)).logits[:, -1]
    pred = logits[:, CLASS_TOKEN0:CLASS_TOKEN0 + CLASSES].argmax(1).numpy()
    ok = pred == task.y_test
    rare_test = np.isin(task.y_test, RARE_CLASSES)
    recall = [ok[task.y_test == c].mean() for c in range(CLASSES)]
    res = RunResult(balanced=float(np.mean(recall)), common=float(ok[~rare_test].mean()),
                    rare=float(ok[rare_test].mean()))
    miner = getattr(trainer, "miner", None)
    if miner is not None:
        diagnose(res, miner, task.noisy, task.rare)
    return res
