"""Hard-sample mining in a Qwen3-VL detection SFT, on CPU in a few minutes (``make demo``).

A tiny randomly initialised Qwen3-VL (built from a config in code), an offline WordLevel tokenizer and
the PIL Qwen2-VL image processor (no torchvision needed: the collator builds the vision inputs itself),
and synthetic detection images: common large objects ("car", "tree") and rare small ones ("bird"). The
target is grounding-style text: ``car <3> <5> <12> <14> ; bird <20> <2> <22> <4>``. Augmentation (random
horizontal flips) stays on; flipped variants share their ``sample_id``.

The ``custom.hard_sample_mining`` block of examples/configs/qwen3_vl_detection.yaml switches mining on, and
the trainer gets every image's box categories (``categories=``): the frequency prior draws images with a
rare "bird" more often from the first epoch on, and mining multiplies that with hardness. The log shows
when mining triggered, how many samples were mined, which kind of image they are, how much more often
mined samples were drawn in the next epoch, and how much of the boost came from the prior.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
from tokenizers import Tokenizer, models, pre_tokenizers  # noqa: E402
from transformers import (  # noqa: E402
    PreTrainedTokenizerFast,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
    TrainerCallback,
    TrainingArguments,
)
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil  # noqa: E402
from transformers.trainer_utils import get_last_checkpoint  # noqa: E402

from hardmine.integrations.hf import HardMiningTrainer  # noqa: E402

CONFIG = Path(__file__).parent / "configs" / "qwen3_vl_detection.yaml"
IMAGE_SIZE, PATCH, MERGE, BINS = 32, 8, 2, 32
CLASSES = ("car", "tree", "bird")  # bird: the rare, small class
ID_OFFSET = 10_000  # items carry their own sample_id (here: index + offset, shared by flipped variants)
log = logging.getLogger("demo")


# ---------------------------------------------------------------------------- tokenizer and model
def build_tokenizer() -> PreTrainedTokenizerFast:
    """A WordLevel tokenizer built in code: specials, class names, quantised coordinates."""
    words = [
        "<pad>",
        "<unk>",
        "<|im_end|>",
        "<|vision_start|>",
        "<|image_pad|>",
        "<|vision_end|>",
        "<|video_pad|>",
        "detect",
        "objects",
        ";",
        *CLASSES,
        *(f"<{i}>" for i in range(BINS)),
    ]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", eos_token="<|im_end|>"
    )


def build_model(tokenizer: PreTrainedTokenizerFast) -> Qwen3VLForConditionalGeneration:
    ids = tokenizer.convert_tokens_to_ids
    cfg = Qwen3VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            max_position_embeddings=512,
            rope_parameters={
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": [4, 2, 2],
                "mrope_interleaved": True,
            },
        ),
        vision_config=dict(
            depth=2,
            hidden_size=64,
            intermediate_size=128,
            num_heads=4,
            out_hidden_size=64,
            patch_size=PATCH,
            spatial_merge_size=MERGE,
            temporal_patch_size=2,
            num_position_embeddings=64,
            deepstack_visual_indexes=[1],
        ),
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
    )
    torch.manual_seed(0)
    return Qwen3VLForConditionalGeneration(cfg)


# ---------------------------------------------------------------------------- synthetic detection data
class SyntheticDetection(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """Images with 1-2 large common objects; 1 in 8 also holds a small rare "bird"."""

    def __init__(self, n: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.objects: list[list[tuple[str, tuple[int, int, int, int]]]] = []
        self.colors = rng.uniform(0.2, 1.0, size=(n, 3, 3))
        for i in range(n):
            objs = []
            for _ in range(int(rng.integers(1, 3))):
                w, h = rng.integers(12, 24, size=2)
                x, y = rng.integers(0, IMAGE_SIZE - w), rng.integers(0, IMAGE_SIZE - h)
                objs.append((CLASSES[int(rng.integers(0, 2))], (int(x), int(y), int(x + w), int(y + h))))
            if i % 8 == 0:
                x, y = rng.integers(0, IMAGE_SIZE - 3, size=2)
                objs.append(("bird", (int(x), int(y), int(x + 3), int(y + 3))))
            self.objects.append(objs)
        self.rng = np.random.default_rng(seed + 1)

    def __len__(self) -> int:
        return len(self.objects)

    def is_rare(self, index: int) -> bool:
        return any(name == "bird" for name, _ in self.objects[index])

    def categories(self) -> list[list[int]]:
        """The classes of each image's boxes (what a detection annotation file holds): the prior's input."""
        return [[CLASSES.index(name) for name, _ in objs] for objs in self.objects]

    def __getitem__(self, i: int) -> dict[str, Any]:
        image = np.zeros((IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.float32)
        objs = self.objects[i]
        for k, (name, (x0, y0, x1, y1)) in enumerate(objs):
            image[y0:y1, x0:x1] = self.colors[i, min(k, 2)] if name != "bird" else (1.0, 0.1, 0.1)
        if self.rng.random() < 0.5:  # augmentation: a horizontal flip, same logical sample
            image = image[:, ::-1].copy()
            objs = [(n, (IMAGE_SIZE - x1, y0, IMAGE_SIZE - x0, y1)) for n, (x0, y0, x1, y1) in objs]
        target = " ; ".join(
            f"{n} " + " ".join(f"<{min(c * BINS // IMAGE_SIZE, BINS - 1)}>" for c in box) for n, box in objs
        )
        return {"image": (image * 255).astype(np.uint8), "target": target, "sample_id": ID_OFFSET + i}


class DetectionCollator:
    """Builds the Qwen3-VL inputs: image processor -> patches, prompt with image tokens, masked labels."""

    def __init__(self, tokenizer: PreTrainedTokenizerFast) -> None:
        self.tok = tokenizer
        self.images = Qwen2VLImageProcessorPil(
            patch_size=PATCH,
            merge_size=MERGE,
            temporal_patch_size=2,
            min_pixels=IMAGE_SIZE * IMAGE_SIZE,
            max_pixels=IMAGE_SIZE * IMAGE_SIZE,
        )

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        vision = self.images(images=[f["image"] for f in features], return_tensors="pt")
        n_image_tokens = vision["image_grid_thw"].prod(-1) // (MERGE * MERGE)
        rows, prompt_lens = [], []
        for f, n in zip(features, n_image_tokens.tolist()):
            prompt = "<|vision_start|> " + "<|image_pad|> " * n + "<|vision_end|> detect objects"
            p = self.tok(prompt, add_special_tokens=False)["input_ids"]
            t = self.tok(f["target"] + " <|im_end|>", add_special_tokens=False)["input_ids"]
            rows.append(p + t)
            prompt_lens.append(len(p))
        width = max(map(len, rows))
        input_ids = torch.full((len(rows), width), self.tok.pad_token_id, dtype=torch.long)
        attention = torch.zeros_like(input_ids)
        labels = torch.full_like(input_ids, -100)
        for r, (row, p) in enumerate(zip(rows, prompt_lens)):
            input_ids[r, : len(row)] = torch.tensor(row)
            attention[r, : len(row)] = 1
            labels[r, p : len(row)] = input_ids[r, p : len(row)]  # loss on the grounding text only
        image_token = self.tok.convert_tokens_to_ids("<|image_pad|>")
        return {
            "input_ids": input_ids,
            "attention_mask": attention,
            "labels": labels,
            "pixel_values": vision["pixel_values"],
            "image_grid_thw": vision["image_grid_thw"],
            "mm_token_type_ids": (input_ids == image_token).int(),
        }


class DrawReport(TrainerCallback):
    """At each epoch start: how often the samples mined at the last epoch end are drawn in this epoch."""

    def __init__(self, trainer: HardMiningTrainer, data: SyntheticDetection) -> None:
        self.trainer, self.data = trainer, data
        self.ratios: list[float] = []

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        miner = self.trainer.miner
        if miner is None or not miner.hard_ids.size:
            return
        draws = miner.sampler.counts()  # exactly what the sampler yields this epoch
        hard = np.zeros(len(self.data), dtype=bool)
        hard[miner.hard_ids - ID_OFFSET] = True
        ratio = draws[hard].mean() / draws[~hard].mean()
        rare = np.array([self.data.is_rare(i) for i in range(len(self.data))])
        self.ratios.append(float(ratio))
        log.info(
            "demo: epoch %d: %d mined samples drawn %.2f times each on average, the other %d %.2f times "
            "(%.2fx as often); %.0f%% of the mined images hold a rare small bird (%.0f%% of all images)",
            int(state.epoch),
            int(hard.sum()),
            draws[hard].mean(),
            int((~hard).sum()),
            draws[~hard].mean(),
            ratio,
            100 * rare[hard].mean(),
            100 * rare.mean(),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(CONFIG))
    parser.add_argument("--samples", type=int, default=192)
    parser.add_argument("--output-dir", default=None)
    opts = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("transformers").setLevel(logging.WARNING)
    torch.set_num_threads(min(2, os.cpu_count() or 1))

    training = yaml.safe_load(Path(opts.config).read_text())["training"]
    tokenizer = build_tokenizer()
    data = SyntheticDetection(opts.samples)
    out = opts.output_dir or tempfile.mkdtemp(prefix="hardmine-vl-demo-")
    args = TrainingArguments(
        output_dir=out,
        report_to="none",
        use_cpu=True,
        save_strategy="epoch",
        logging_steps=10,
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        **training,
    )
    trainer = HardMiningTrainer(
        model=build_model(tokenizer),
        args=args,
        train_dataset=data,
        data_collator=DetectionCollator(tokenizer),
        mining=opts.config,
        categories=data.categories(),  # images with a rare class are drawn more often (resample.prior)
    )
    report = DrawReport(trainer, data)
    trainer.add_callback(report)
    trainer.train()

    miner = trainer.miner
    assert miner is not None
    fired = [e.epoch for e in miner.history if e.fired]
    final = miner.history[-1]
    prior = miner.planner.prior
    assert prior is not None
    bird = np.array([data.is_rare(i) for i in range(len(data))])
    draws = miner.sampler.counts()
    log.info(
        "demo: the category prior weighs the %d images with a bird %.1fx, the others %.2fx on average; next epoch "
        "the bird images take %.0f%% of the draws (%.0f%% of the images), and %.0f%% of the boost comes from the "
        "prior, %.0f%% from hardness",
        int(bird.sum()),
        prior[bird].mean(),
        prior[~bird].mean(),
        100 * draws[bird].sum() / draws.sum(),
        100 * bird.mean(),
        100 * (final.prior_boost_share or 0.0),
        100 * (1 - (final.prior_boost_share or 0.0)),
    )
    last = get_last_checkpoint(out)
    log.info(
        "demo: mining triggered at epoch %s; final hard set: %d of %d samples; the miner's state is in "
        "%s/hardmine_state.npz (try: hardmine report %s)",
        fired[0] if fired else "never",
        miner.hard_ids.size,
        len(data),
        last,
        last,
    )
    if not fired or not report.ratios or min(report.ratios) <= 1.0:
        raise SystemExit("demo failed: mining did not trigger or mined samples were not drawn more often")


if __name__ == "__main__":
    main()
