"""Per-token losses laid over the batch's rows: ms-swift's kept positions, M-RoPE text positions, TRL's fused head."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest.importorskip("transformers")

from transformers.loss.loss_utils import ForCausalLMLoss  # noqa: E402

from hardmine.integrations._hf_loss import OutputCapture, _to_row_layout, fused_token_losses  # noqa: E402
from hardmine.integrations._hf_segments import (  # noqa: E402
    expand_kept,
    per_sample_means,
    segment_starts,
    text_positions,
)
from tests.hf_tiny import VOCAB  # noqa: E402


def _packed_row(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """One padding-free row: position ids restarting per sample, labels with each sample's prompt masked."""
    g = torch.Generator().manual_seed(seed)
    pos = torch.cat([torch.arange(n) for n in lengths])[None]
    labels = torch.randint(0, VOCAB, pos.shape, generator=g)
    labels[pos < 2] = -100  # the first two tokens of every sample are its prompt
    return pos, labels


def test_kept_positions_give_the_per_sample_losses_of_the_full_row() -> None:
    """ms-swift's padding-free path: labels squeezed to the trained positions, logits only where kept."""
    pos, labels = _packed_row([5, 7, 4])
    logits = torch.randn(1, pos.shape[1], VOCAB, generator=torch.Generator().manual_seed(1))
    full_ce = torch.nn.functional.cross_entropy(logits[0, :-1], labels[0, 1:], reduction="none", ignore_index=-100)
    full = torch.nn.functional.pad(full_ce, (0, 1))[None]
    full_targets = torch.nn.functional.pad(labels[:, 1:], (0, 1), value=-100)
    expected = per_sample_means(full, full_targets, 3, segment_starts({"position_ids": pos}, full.shape))
    # what ms-swift's prepare_logits_to_keep does to the batch
    mask = (labels != -100)[0]
    squeezed = torch.nn.functional.pad(labels[:, mask], (1, 0), value=-100)
    keep = torch.nn.functional.pad(mask[1:], (0, 1), value=True)
    kept_logits = logits[:, keep]
    loss = ForCausalLMLoss(kept_logits, squeezed, VOCAB)  # what the model computes: the same CE, fewer positions
    kept_ce = torch.nn.functional.cross_entropy(kept_logits[0], torch.nn.functional.pad(squeezed[0, 1:], (0, 1),
                                                value=-100), reduction="none", ignore_index=-100)[None]
    kept_targets = torch.nn.functional.pad(squeezed[:, 1:], (0, 1), value=-100)
    before = {"position_ids": pos, "logits_to_keep": keep}
    per_token, targets = _to_row_layout(kept_ce, kept_targets, before)
    got = per_sample_means(per_token, targets, 3, segment_starts(before, per_token.shape))
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(loss, full_ce[labels[0, 1:] != -100].mean())


@pytest.mark.parametrize("keep", [3, torch.tensor(3), 0])
def test_an_int_logits_to_keep_means_the_last_positions(keep: object) -> None:
    per_token = torch.arange(2 * 3 if keep else 2 * 6, dtype=torch.float32).view(2, -1)
    targets = torch.zeros_like(per_token, dtype=torch.long)
    full, full_targets = expand_kept(per_token, targets, keep, 6)
    kept = 3 if keep else 6
    assert full.shape == (2, 6) and torch.equal(full[:, 6 - kept:], per_token)
    assert (full_targets[:, : 6 - kept] == -100).all()


def test_kept_positions_that_do_not_match_are_an_error() -> None:
    with pytest.raises(ValueError, match="3 per-token losses for 2 kept positions"):
        expand_kept(torch.zeros(1, 3), torch.zeros(1, 3, dtype=torch.long), torch.tensor([True, False, True]), 3)


def test_text_positions_of_mrope_position_ids() -> None:
    text = torch.tensor([[0, 1, 2, 0, 1]])
    mrope = torch.stack([text, text * 0, text * 0, text * 0])  # [4, rows, positions]: row 0 is the text
    assert torch.equal(text_positions({"position_ids": mrope}), text)  # type: ignore[arg-type]
    assert torch.equal(text_positions({"text_position_ids": text, "position_ids": mrope[1:]}), text)  # type: ignore[arg-type]
    assert text_positions({"position_ids": mrope[1:]}) is None  # 3-row M-RoPE: no text row to read


def test_fused_log_probs_are_laid_out_like_the_captured_ce() -> None:
    """TRL's FusedCausalLMOutput: -log p of each next-token label, one position shorter than the row."""
    from transformers.modeling_outputs import ModelOutput

    logits = torch.randn(2, 6, VOCAB, generator=torch.Generator().manual_seed(2))
    labels = torch.randint(0, VOCAB, (2, 6), generator=torch.Generator().manual_seed(3))
    labels[0, :3] = -100
    mask = labels[:, 1:] != -100
    log_probs = torch.log_softmax(logits[:, :-1], -1).gather(-1, labels[:, 1:].clamp(min=0)[..., None])[..., 0]
    outputs = ModelOutput(log_probs=torch.where(mask, log_probs, 0.0), label_mask=mask)
    fused = fused_token_losses(outputs)
    assert fused is not None
    per_token, targets = _to_row_layout(*fused, {"attention_mask": torch.ones(2, 6)})
    expected = torch.stack([ForCausalLMLoss(logits[i:i + 1], labels[i:i + 1], VOCAB) for i in range(2)])
    torch.testing.assert_close(per_sample_means(per_token, targets, 2), expected)
    assert fused_token_losses(ModelOutput(logits=logits)) is None


def test_output_capture_keeps_the_last_forward_only_when_armed() -> None:
    layer = torch.nn.Linear(2, 2)
    capture = OutputCapture(layer)
    layer(torch.zeros(1, 2))
    assert capture.take() is None
    capture.arm()
    layer(torch.zeros(1, 2))
    last = layer(torch.ones(1, 2))
    assert capture.take() is last and capture.take() is None
