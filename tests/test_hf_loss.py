"""Per-sample token CE with the stock reduction, and the packed-row split (no Trainer needed)."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest.importorskip("transformers")

from transformers import Qwen3ForCausalLM  # noqa: E402
from transformers.loss.loss_utils import ForCausalLMLoss  # noqa: E402

from hardmine.integrations._hf_loss import (  # noqa: E402
    TokenLossCapture,
    per_sample_means,
    segment_starts,
    shift_targets,
    token_losses_from_hidden,
    token_losses_from_logits,
)
from tests.hf_tiny import VOCAB, tiny_qwen3  # noqa: E402


def _tiny_lm(seed: int = 0) -> Qwen3ForCausalLM:
    model: Qwen3ForCausalLM = tiny_qwen3(seed).eval()
    return model


def _labels(rows: int, width: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, VOCAB, (rows, width), generator=g)
    labels[torch.rand(rows, width, generator=g) < 0.3] = -100
    return labels


@pytest.mark.parametrize("num_items", [None, 37, torch.tensor(37)])
def test_capture_matches_stock_loss_and_gradient(num_items: object) -> None:
    logits = torch.randn(3, 9, VOCAB, dtype=torch.float64).float().requires_grad_()
    labels = _labels(3, 9)
    stock = ForCausalLMLoss(logits, labels, VOCAB, num_items_in_batch=num_items)
    (g_stock,) = torch.autograd.grad(stock, logits)
    capture = TokenLossCapture()
    capture.arm()
    ours = capture(logits=logits, labels=labels, vocab_size=VOCAB, num_items_in_batch=num_items)
    (g_ours,) = torch.autograd.grad(ours, logits)
    torch.testing.assert_close(ours, stock, rtol=1e-6, atol=0)
    assert torch.equal(g_ours, g_stock)
    per_token, targets = capture.take()  # type: ignore[misc]
    assert per_token.shape == labels.shape and not per_token.requires_grad
    assert capture.take() is None  # disarmed after take


def test_unarmed_capture_keeps_nothing() -> None:
    capture = TokenLossCapture()
    capture(logits=torch.randn(2, 4, VOCAB), labels=_labels(2, 4), vocab_size=VOCAB)
    assert capture.take() is None


def test_per_sample_means_rows_match_reference() -> None:
    logits, labels = torch.randn(4, 7, VOCAB), _labels(4, 7)
    labels[2] = -100  # an all-masked row: undefined, NaN (the ledger skips and counts it)
    targets = shift_targets({}, labels)
    per_token = token_losses_from_logits(logits, targets, chunk_tokens=5)
    got = per_sample_means(per_token, targets, num_samples=4)
    for row in (0, 1, 3):
        t = labels[row, 1:]
        ref = torch.nn.functional.cross_entropy(logits[row, :-1][t != -100], t[t != -100])
        torch.testing.assert_close(got[row], ref)
    assert torch.isnan(got[2])


def _packed_and_unpacked(lengths: list[int], seed: int = 3) -> tuple[list[torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    seqs = [torch.randint(0, VOCAB, (n,), generator=g) for n in lengths]
    return seqs, torch.cat(seqs)[None]


def test_packed_batch_gives_the_unpacked_per_sample_losses() -> None:
    model = _tiny_lm()
    seqs, packed = _packed_and_unpacked([5, 8, 3, 6])
    labels = packed.clone()
    position_ids = torch.cat([torch.arange(len(s)) for s in seqs])[None]
    labels[position_ids == 0] = -100  # what padding-free collators do: no cross-sample target
    capture = TokenLossCapture()
    model.loss_function = capture  # type: ignore[assignment]
    capture.arm()
    model(input_ids=packed, position_ids=position_ids, labels=labels, use_cache=False)
    per_token, targets = capture.take()  # type: ignore[misc]
    inputs = {"position_ids": position_ids}
    got = per_sample_means(per_token, targets, len(seqs), segment_starts(inputs, per_token.shape))
    ref = torch.stack([model(input_ids=s[None], labels=s[None]).loss for s in seqs])
    torch.testing.assert_close(got, ref.detach(), rtol=1e-5, atol=1e-6)


def test_cu_seq_lens_and_position_ids_give_the_same_split() -> None:
    per_token = torch.rand(2, 6)
    targets = torch.randint(0, VOCAB, (2, 6))
    targets[:, -1] = -100
    position_ids = torch.tensor([[0, 1, 2, 0, 1, 2], [0, 1, 0, 1, 2, 3]])
    by_pos = per_sample_means(
        per_token, targets, 4, segment_starts({"position_ids": position_ids}, targets.shape)
    )
    cu = torch.tensor([0, 3, 6, 8, 12], dtype=torch.int32)
    by_cu = per_sample_means(per_token, targets, 4, segment_starts({"cu_seq_lens_q": cu}, targets.shape))
    torch.testing.assert_close(by_pos, by_cu)
    seq_idx = torch.tensor([[0, 0, 0, 1, 1, 1], [2, 2, 3, 3, 3, 3]])
    by_idx = per_sample_means(per_token, targets, 4, segment_starts({"seq_idx": seq_idx}, targets.shape))
    torch.testing.assert_close(by_pos, by_idx)
    # sample 1 = row 0 tokens 3..5: predictions at positions 3, 4 (position 2 crosses into it)
    torch.testing.assert_close(by_pos[1], per_token[0, 3:5].mean())


def test_padding_never_starts_a_sample_and_rows_fall_back() -> None:
    position_ids = torch.tensor([[0, 1, 2, 0], [0, 1, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    starts = segment_starts({"position_ids": position_ids, "attention_mask": mask}, position_ids.shape)
    assert starts is not None and starts.sum().item() == 2
    per_token, targets = torch.rand(2, 4), torch.zeros(2, 4, dtype=torch.long)
    assert per_sample_means(per_token, targets, 2, starts).shape == (2,)


def test_id_count_mismatch_is_a_clear_error() -> None:
    per_token, targets = torch.rand(2, 4), torch.zeros(2, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="carries 3 sample ids"):
        per_sample_means(per_token, targets, 3)


def test_hidden_state_recompute_matches_logits() -> None:
    model = _tiny_lm()
    ids = torch.randint(0, VOCAB, (3, 10))
    labels = _labels(3, 10)
    out = model(input_ids=ids, output_hidden_states=True)
    targets = shift_targets({}, labels)
    a = token_losses_from_logits(out.logits, targets)
    b = token_losses_from_hidden(out.hidden_states[-1], model.lm_head, targets, chunk_tokens=7)
    torch.testing.assert_close(a, b)
    assert torch.equal(shift_targets({"shift_labels": targets}, labels), targets)
