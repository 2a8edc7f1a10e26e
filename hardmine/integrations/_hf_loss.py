"""Per-sample token cross-entropy for causal LMs and VLMs, with the stock Trainer's gradient.

The adapter installs :class:`TokenLossCapture` as the model's ``loss_function``. It reduces the
per-token CE exactly as ``transformers.loss.loss_utils.ForCausalLMLoss`` does (``sum / num_items_in_batch``
when the Trainer passes it, the micro-batch token mean otherwise), so the loss and every gradient are
the stock ones, and keeps a detached view of the same per-token tensor: no second copy of the logits.
:func:`per_sample_means` then turns it into one loss per sample, splitting packed rows at their
boundaries (:func:`segment_starts`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


class TokenLossCapture:
    """``ForCausalLMLoss`` computed once with ``reduction="none"``; keeps the per-token losses when armed.

    Called by the model as ``self.loss_function(logits=..., labels=..., vocab_size=..., **kwargs)``.
    """

    def __init__(self) -> None:
        self.armed = False
        self.per_token: torch.Tensor | None = None  # [rows, positions], detached, float32
        self.targets: torch.Tensor | None = None  # shifted labels, same shape

    def __call__(
        self,
        logits: torch.Tensor,
        labels: torch.Tensor,
        vocab_size: int,
        num_items_in_batch: torch.Tensor | int | None = None,
        ignore_index: int = IGNORE_INDEX,
        shift_labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        logits = logits.float()
        if shift_labels is None:
            labels = F.pad(labels, (0, 1), value=ignore_index)
            shift_labels = labels[..., 1:].contiguous()
        targets = shift_labels.view(-1).to(logits.device)
        per_token = F.cross_entropy(
            logits.view(-1, vocab_size), targets, ignore_index=ignore_index, reduction="none"
        )
        if num_items_in_batch is not None:
            if torch.is_tensor(num_items_in_batch):
                num_items_in_batch = num_items_in_batch.to(per_token.device)
            loss = per_token.sum() / num_items_in_batch
        else:
            loss = per_token.sum() / (targets != ignore_index).sum()
        if self.armed:
            self.per_token = per_token.detach().view(shift_labels.shape)
            self.targets = shift_labels.to(logits.device)
        return loss

    def arm(self) -> None:
        """Keep the per-token losses of the next call (training steps only)."""
        self.armed, self.per_token, self.targets = True, None, None

    def take(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The captured ``(per_token, targets)`` of the last call, or None; disarms."""
        got = None if self.per_token is None or self.targets is None else (self.per_token, self.targets)
        self.armed, self.per_token, self.targets = False, None, None
        return got


def shift_targets(inputs: Mapping[str, Any], labels: torch.Tensor) -> torch.Tensor:
    """The targets ``ForCausalLMLoss`` scores: the collator's ``shift_labels``, else the labels shifted."""
    shifted = inputs.get("shift_labels")
    if torch.is_tensor(shifted):
        return shifted
    return F.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:]


def token_losses_from_logits(
    logits: torch.Tensor, targets: torch.Tensor, *, chunk_tokens: int = 4096
) -> torch.Tensor:
    """No-grad per-token CE from logits and shifted ``targets``, ``chunk_tokens`` positions at a time.

    Used when the gradient's loss is not ours (``compute_loss_func``, label smoothing): memory stays
    one chunk of float32 logits above the stock step.
    """
    targets = targets.to(logits.device)
    flat_logits = logits.detach().reshape(-1, logits.shape[-1])
    flat_targets = targets.reshape(-1)
    out = torch.empty(flat_targets.shape, dtype=torch.float32, device=logits.device)
    with torch.no_grad():
        for start in range(0, flat_targets.numel(), chunk_tokens):
            stop = start + chunk_tokens
            out[start:stop] = F.cross_entropy(
                flat_logits[start:stop].float(), flat_targets[start:stop], reduction="none"
            )
    return out.view(targets.shape)


def token_losses_from_hidden(
    hidden: torch.Tensor, lm_head: torch.nn.Module, targets: torch.Tensor, *, chunk_tokens: int = 4096
) -> torch.Tensor:
    """No-grad per-token CE recomputed from the last hidden states through ``lm_head``, in chunks.

    The fallback when the model returns ``logits=None`` (Liger fused CE, TRL ``chunked_nll``): it never
    holds more than ``chunk_tokens`` rows of logits.
    """
    targets = targets.to(hidden.device)
    flat_hidden = hidden.detach().reshape(-1, hidden.shape[-1])
    flat_targets = targets.reshape(-1)
    out = torch.empty(flat_targets.shape, dtype=torch.float32, device=hidden.device)
    with torch.no_grad():
        for start in range(0, flat_targets.numel(), chunk_tokens):
            stop = start + chunk_tokens
            logits = lm_head(flat_hidden[start:stop]).float()
            out[start:stop] = F.cross_entropy(logits, flat_targets[start:stop], reduction="none")
    return out.view(targets.shape)


def segment_starts(inputs: Mapping[str, Any], shape: torch.Size) -> torch.Tensor | None:
    """Bool ``[rows, positions]``: True where a packed sample begins, or None when rows are not packed.

    Read from ``cu_seq_lens_q``/``cu_seq_lens_k`` (padding-free flash-attention batches), ``seq_idx``, or
    2-D ``position_ids`` restarting at 0 (padding tokens, ``attention_mask == 0``, never start a sample).
    """
    seq_idx = inputs.get("seq_idx")
    if torch.is_tensor(seq_idx) and tuple(seq_idx.shape) == tuple(shape):
        starts = torch.ones(shape, dtype=torch.bool, device=seq_idx.device)
        starts[:, 1:] = seq_idx[:, 1:] != seq_idx[:, :-1]
        return starts
    cu = inputs.get("cu_seq_lens_q", inputs.get("cu_seq_lens_k"))
    if torch.is_tensor(cu):
        starts = torch.zeros(shape.numel(), dtype=torch.bool, device=cu.device)
        offsets = cu.reshape(-1)[:-1].long()
        starts[offsets[offsets < starts.numel()]] = True
        return starts.view(shape)
    pos = inputs.get("position_ids")
    if not torch.is_tensor(pos) or pos.dim() != 2 or tuple(pos.shape) != tuple(shape):
        return None
    starts = pos == 0
    mask = inputs.get("attention_mask")
    if torch.is_tensor(mask) and tuple(mask.shape) == tuple(shape):
        starts &= mask.bool()
    return starts


def per_sample_means(
    per_token: torch.Tensor,
    targets: torch.Tensor,
    num_samples: int,
    starts: torch.Tensor | None = None,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """Mean CE over each sample's valid target tokens; NaN for a sample with none (the ledger skips it).

    ``per_token``/``targets`` are ``[rows, positions]`` aligned so that position ``t`` predicts token
    ``t + 1``. Without ``starts`` (or when ``num_samples`` equals the number of rows and the packing
    does not split them) each row is one sample. With ``starts`` every row may hold several samples,
    numbered in row-major order; a prediction whose target opens a new sample crosses a boundary and
    belongs to no sample.
    """
    rows, width = per_token.shape
    valid = targets != ignore_index
    if starts is not None:
        starts = starts.reshape(-1).to(device=per_token.device, dtype=torch.bool, copy=True)
        starts[::width] = True  # a row never continues the previous row's sample
    if starts is None or int(starts.sum()) != num_samples:
        if num_samples != rows:
            found = (
                f"{rows} rows" if starts is None else f"{rows} rows and {int(starts.sum())} packed samples"
            )
            raise ValueError(
                f"hardmine: the batch holds {found} but carries {num_samples} sample ids. A packed row "
                "needs position_ids restarting at 0 (or cu_seq_lens_q) at each sample, and the ids in the "
                "same row-major order."
            )
        zero = torch.zeros((), dtype=per_token.dtype, device=per_token.device)
        return torch.where(valid, per_token, zero).sum(dim=1) / valid.sum(dim=1)
    sample_of_token = starts.cumsum(0) - 1
    # position t predicts token t + 1: credit it to that token's sample, unless it opens a new one
    target_sample = torch.cat([sample_of_token[1:], sample_of_token[-1:]])
    crosses = torch.cat([starts[1:], starts.new_zeros(1)])
    keep = valid.reshape(-1) & ~crosses
    sample = target_sample[keep]
    sums = torch.zeros(num_samples, dtype=per_token.dtype, device=per_token.device)
    sums.index_add_(0, sample, per_token.reshape(-1)[keep])
    counts = torch.bincount(sample, minlength=num_samples)
    return sums / counts
