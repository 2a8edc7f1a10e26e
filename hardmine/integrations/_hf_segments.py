"""Where the samples of a batch lie in its per-token losses: packed rows, padding-free rows, kept positions.

:func:`segment_starts` reads the packing keys of a batch (``cu_seq_lens``, ``seq_idx``, ``position_ids``
restarting at 0, ms-swift's ``text_position_ids``); :func:`expand_kept` puts per-token losses computed
at ms-swift's ``logits_to_keep`` positions back at their places in the row; :func:`per_sample_means`
turns per-token losses into one loss per sample.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

IGNORE_INDEX = -100
BOUNDARY_KEYS = ("position_ids", "text_position_ids", "attention_mask", "cu_seq_lens_q", "cu_seq_lens_k", "seq_idx",
                 "logits_to_keep")


def text_positions(inputs: Mapping[str, Any]) -> torch.Tensor | None:
    """The 2-D text position ids: ``text_position_ids`` (ms-swift), the text row of 4-row M-RoPE position
    ids (Qwen3-VL's ``[4, rows, positions]``), or 2-D ``position_ids``; None otherwise."""
    text = inputs.get("text_position_ids")
    if torch.is_tensor(text) and text.dim() == 2:
        return text
    pos = inputs.get("position_ids")
    if torch.is_tensor(pos) and pos.dim() == 3 and pos.shape[0] == 4:
        return pos[0]
    return pos if torch.is_tensor(pos) and pos.dim() == 2 else None


def row_width(inputs: Mapping[str, Any]) -> int | None:
    """The number of positions of the batch's rows, read off its packing keys (None when they say nothing)."""
    pos = text_positions(inputs)
    if pos is not None:
        return int(pos.shape[-1])
    mask = inputs.get("attention_mask")
    return int(mask.shape[-1]) if torch.is_tensor(mask) and mask.dim() == 2 else None


def expand_kept(per_token: torch.Tensor, targets: torch.Tensor, keep: Any,
                width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token losses computed only at ``keep`` (``logits_to_keep``) put back into rows of ``width``.

    ms-swift trains with ``logits_to_keep``: a bool mask over the row's positions (one padding-free row:
    the positions whose next token is trained) or an int (the last ``keep`` positions), and squeezes the
    labels to match. Position ``t`` of the result predicts token ``t + 1`` of the row, as everywhere here;
    positions that were not kept are ignored (target ``-100``).
    """
    rows = per_token.shape[0]
    if torch.is_tensor(keep) and keep.dtype == torch.bool:
        where = keep.reshape(-1).nonzero().reshape(-1).to(per_token.device)
    elif isinstance(keep, int) or (torch.is_tensor(keep) and keep.numel() == 1):
        kept = int(keep) or width  # 0: every position
        where = torch.arange(width - kept, width, device=per_token.device)
    else:
        raise ValueError(f"hardmine: logits_to_keep must be a bool mask or an int, but got {keep!r}.")
    if where.numel() != per_token.shape[1] or (where.numel() and int(where[-1]) >= width):
        raise ValueError(
            f"hardmine: {per_token.shape[1]} per-token losses for {where.numel()} kept positions of rows of "
            f"{width}; the batch's logits_to_keep and labels do not match.")
    full = per_token.new_zeros(rows, width)
    full[:, where] = per_token
    full_targets = targets.new_full((rows, width), IGNORE_INDEX)
    full_targets[:, where] = targets.to(full_targets.device)
    return full, full_targets


def segment_starts(inputs: Mapping[str, Any], shape: torch.Size) -> torch.Tensor | None:
    """Bool ``[rows, positions]``: True where a packed sample begins, or None when rows are not packed.

    Read from ``cu_seq_lens_q``/``cu_seq_lens_k`` (padding-free flash-attention batches), ``seq_idx``, or
    text position ids restarting at 0 (:func:`text_positions`; padding tokens, ``attention_mask == 0``,
    never start a sample).
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
    pos = text_positions(inputs)
    if pos is None or tuple(pos.shape) != tuple(shape):
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
