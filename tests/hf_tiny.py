"""Tiny offline models, datasets and collators for the Hugging Face adapter tests (nothing downloads)."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch.utils.data import Dataset

os.environ.setdefault("HF_HUB_OFFLINE", "1")

VOCAB = 64
IMAGE_TOKEN, VIDEO_TOKEN, VISION_START, VISION_END = 60, 61, 62, 63
TEXT_VOCAB = 56  # text tokens stay below the vision specials


def tiny_args(out: Any, **overrides: Any) -> Any:
    """``TrainingArguments`` for the tiny CPU runs: no reporting, no progress bars, seed 0, lr 1e-2."""
    from transformers import TrainingArguments

    base: dict[str, Any] = dict(output_dir=str(out), report_to="none", use_cpu=True, disable_tqdm=True,
                                learning_rate=1e-2, seed=0)
    return TrainingArguments(**{**base, **overrides})


def tiny_qwen3(seed: int = 0) -> Any:
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed)
    return Qwen3ForCausalLM(
        Qwen3Config(
            vocab_size=VOCAB,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=8,
        )
    )


def tiny_qwen3_vl(seed: int = 0) -> Any:
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    torch.manual_seed(seed)
    cfg = Qwen3VLConfig(
        text_config=dict(
            vocab_size=VOCAB,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=8,
            max_position_embeddings=256,
            rope_parameters={
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": [2, 1, 1],
                "mrope_interleaved": True,
            },
        ),
        vision_config=dict(
            depth=1,
            hidden_size=32,
            intermediate_size=64,
            num_heads=4,
            out_hidden_size=32,
            patch_size=8,
            spatial_merge_size=2,
            temporal_patch_size=2,
            num_position_embeddings=64,
            deepstack_visual_indexes=[0],
        ),
        image_token_id=IMAGE_TOKEN,
        video_token_id=VIDEO_TOKEN,
        vision_start_token_id=VISION_START,
        vision_end_token_id=VISION_END,
    )
    return Qwen3VLForConditionalGeneration(cfg)


class TokenDataset(Dataset):  # type: ignore[type-arg]
    """Random token rows; ``sample_id`` optional; ``extra`` adds a column the model does not take."""

    def __init__(
        self,
        n: int,
        width: int = 10,
        seed: int = 0,
        sample_ids: list[int] | None = None,
        extra: bool = False,
        masked: tuple[int, ...] = (),
    ) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randint(0, TEXT_VOCAB, (n, width), generator=g)
        self.sample_ids, self.extra, self.masked = sample_ids, extra, set(masked)
        self.reads: list[int] = []

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, Any]:
        self.reads.append(int(i))
        labels = self.x[i].clone()
        if int(i) in self.masked:
            labels[:] = -100
        item: dict[str, Any] = {"input_ids": self.x[i], "labels": labels}
        if self.sample_ids is not None:
            item["sample_id"] = self.sample_ids[i]
        if self.extra:
            item["caption"] = f"row {i}"
        return item


class VLDataset(Dataset):  # type: ignore[type-arg]
    """Tiny 16x16 images with a short text target; the collator builds the vision inputs."""

    def __init__(self, n: int, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.pixels = torch.rand(n, 16, 16, 3, generator=g)
        self.text = torch.randint(1, TEXT_VOCAB, (n, 6), generator=g)

    def __len__(self) -> int:
        return len(self.text)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"image": self.pixels[i], "text": self.text[i]}


def vl_collate(features: list[dict[str, Any]]) -> dict[str, Any]:
    """Patchify 16x16 images the way Qwen2-VL's processor lays them out (patch 8, merge 2, temporal 2)."""
    images = torch.stack([f["image"] for f in features]).permute(0, 3, 1, 2)  # B,C,H,W
    b = images.shape[0]
    frames = images[:, None].expand(b, 2, 3, 16, 16)  # temporal_patch_size 2
    # (B, T, C, gh, mh, ph, gw, mw, pw) -> (B, gh, gw, mh, mw, C, T, ph, pw)
    p = frames.reshape(b, 2, 3, 1, 2, 8, 1, 2, 8).permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
    pixel_values = p.reshape(b * 4, 3 * 2 * 8 * 8)
    grid = torch.tensor([[1, 2, 2]] * b)
    n_img = 1  # 2x2 patches merged 2x2
    text = torch.stack([f["text"] for f in features])
    prefix = torch.tensor([VISION_START] + [IMAGE_TOKEN] * n_img + [VISION_END]).expand(b, -1)
    input_ids = torch.cat([prefix, text], dim=1)
    labels = input_ids.clone()
    labels[:, : prefix.shape[1]] = -100
    return {
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "labels": labels,
        "pixel_values": pixel_values,
        "image_grid_thw": grid,
        "mm_token_type_ids": (input_ids == IMAGE_TOKEN).int(),
    }


def stack_collate(features: list[dict[str, Any]]) -> dict[str, Any]:
    return {k: torch.stack([f[k] for f in features]) for k in features[0]}


def record_stream(trainer: Any) -> list[tuple[int, float]]:
    """Every (id, loss) pair the adapter hands ``trainer.miner.record``, in order (the list fills as it trains)."""
    stream: list[tuple[int, float]] = []
    miner = trainer.miner
    record = miner.record

    def recording(ids: Any, losses: Any, indices: Any = None) -> None:
        stream.extend(zip(torch.as_tensor(ids).tolist(), torch.as_tensor(losses).tolist()))
        record(ids, losses, indices)

    miner.record = recording
    return stream


def tiny_tokenizer() -> Any:
    """A WordLevel tokenizer built in code over the tiny models' vocabulary: ``w0``..``w55`` and chat specials."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>", "<|endoftext|>", "user", "assistant", "system"]
    words = [*specials, *(f"w{i}" for i in range(TEXT_VOCAB - len(specials)))]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", eos_token="<|im_end|>",
                                   additional_special_tokens=["<|im_start|>", "<|endoftext|>"])


def record_plans(trainer: Any) -> list[tuple[Any, Any]]:
    """``(draws per index, mined ids)`` of each epoch's plan, read as the epoch starts (fills as it trains)."""
    from transformers import TrainerCallback

    plans: list[tuple[Any, Any]] = []

    class Plans(TrainerCallback):  # added after hardmine's callback: the sampler knows its epoch by now
        def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            plans.append((trainer.miner.sampler.counts(), trainer.miner.hard_ids.copy()))

    trainer.add_callback(Plans())
    return plans
