"""Per-sample losses for the Trainer adapter: one component, :class:`PerSampleLoss`, over every path.

Paths, in order of preference: the stock token CE captured as it is computed (causal LMs and VLMs), the
per-token log-probabilities of TRL's fused LM head, a recompute from the logits, a chunked recompute from
the hidden states (fused losses return no logits), or the user's ``per_sample_loss_fn`` (other heads).
The adapter installs :class:`TokenLossCapture` as the model's ``loss_function``. It reduces the
per-token CE exactly as ``transformers.loss.loss_utils.ForCausalLMLoss`` does (``sum / num_items_in_batch``
when the Trainer passes it, the micro-batch token mean otherwise), so the loss and every gradient are
the stock ones, and keeps a detached view of the same per-token tensor: no second copy of the logits.
The model's outputs are taken by a forward hook (:class:`OutputCapture`), so the Trainer's
``compute_loss`` is called exactly as the Trainer calls it (``return_outputs=False`` in training: TRL runs
no extra forward). :func:`~hardmine.integrations._hf_segments.per_sample_means` then turns the per-token
losses into one loss per sample, splitting packed rows at their boundaries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from transformers.loss.loss_utils import LOSS_MAPPING, ForCausalLMLoss

from hardmine.integrations._hf_segments import (
    BOUNDARY_KEYS,
    IGNORE_INDEX,
    expand_kept,
    per_sample_means,
    row_width,
    segment_starts,
)

__all__ = ["OutputCapture", "PerSampleLoss", "PerSampleLossFn", "TokenLossCapture", "per_sample_means",
           "segment_starts", "shift_targets", "token_losses_from_hidden", "token_losses_from_logits"]

PerSampleLossFn = Callable[[Any, Mapping[str, Any]], torch.Tensor]


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


def _chunked_ce(rows: torch.Tensor, targets: torch.Tensor, to_logits: Callable[[torch.Tensor], torch.Tensor],
                chunk_tokens: int) -> torch.Tensor:
    """No-grad per-token CE of ``to_logits(rows[chunk])`` against ``targets``, ``chunk_tokens`` rows at a time."""
    targets = targets.to(rows.device)
    flat_rows = rows.detach().reshape(-1, rows.shape[-1])
    flat_targets = targets.reshape(-1)
    out = torch.empty(flat_targets.shape, dtype=torch.float32, device=rows.device)
    with torch.no_grad():
        for start in range(0, flat_targets.numel(), chunk_tokens):
            stop = start + chunk_tokens
            out[start:stop] = F.cross_entropy(to_logits(flat_rows[start:stop]).float(), flat_targets[start:stop],
                                              reduction="none")
    return out.view(targets.shape)


def token_losses_from_logits(
    logits: torch.Tensor, targets: torch.Tensor, *, chunk_tokens: int = 4096
) -> torch.Tensor:
    """No-grad per-token CE from logits and shifted ``targets``, ``chunk_tokens`` positions at a time.

    Used when the gradient's loss is not ours (``compute_loss_func``, label smoothing): memory stays
    one chunk of float32 logits above the stock step.
    """
    return _chunked_ce(logits, targets, lambda x: x, chunk_tokens)


def token_losses_from_hidden(
    hidden: torch.Tensor, lm_head: torch.nn.Module, targets: torch.Tensor, *, chunk_tokens: int = 4096
) -> torch.Tensor:
    """No-grad per-token CE recomputed from the last hidden states through ``lm_head``, in chunks.

    The fallback when the model returns ``logits=None`` (Liger fused CE, TRL ``chunked_nll``): it never
    holds more than ``chunk_tokens`` rows of logits.
    """
    return _chunked_ce(hidden, targets, lm_head, chunk_tokens)


def base_model(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers model under PEFT (whose forward calls ``self.loss_function``)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def is_token_ce_model(model: torch.nn.Module) -> bool:
    """Whether the model's loss is ``ForCausalLMLoss`` (causal LMs, VLMs such as Qwen3-VL)."""
    if getattr(model, "_loss_function", None) is not None or not hasattr(type(model), "loss_function"):
        return False
    if getattr(getattr(model, "config", None), "is_encoder_decoder", False):
        return False
    return LOSS_MAPPING.get(getattr(model, "loss_type", None) or "ForCausalLM") is ForCausalLMLoss


def output_field(outputs: Any, name: str) -> Any:
    if hasattr(outputs, name):  # ModelOutput: the attribute, not the dict (None never enters the dict)
        return getattr(outputs, name)
    return outputs.get(name) if isinstance(outputs, Mapping) else None


class OutputCapture:
    """A forward hook on the model that keeps its outputs of the training step's forward, when armed.

    The last forward of the step wins: TRL's ``compute_loss_func`` and label-smoothing paths run a forward
    for the loss and then a no-grad fused one, whose per-token log-probabilities are what is needed.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.armed = False
        self.outputs: Any = None
        model.register_forward_hook(self._hook)

    def _hook(self, module: torch.nn.Module, args: Any, outputs: Any) -> None:
        if self.armed:
            self.outputs = outputs

    def arm(self) -> None:
        self.armed, self.outputs = True, None

    def take(self) -> Any:
        """The outputs of the last forward since :meth:`arm` (None when none ran); disarms."""
        got, self.armed, self.outputs = self.outputs, False, None
        return got


def fused_token_losses(outputs: Any) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(per_token, targets)`` from TRL's ``FusedCausalLMOutput`` (``log_probs``, ``label_mask``), else None.

    Its fields are ``[rows, positions - 1]`` (next-token aligned) or ``[rows, positions]`` with
    ``shift_labels``; either way position ``t`` predicts token ``t + 1``. Only where a label is trained
    does the target matter, so the targets are 0 there and ``-100`` elsewhere.
    """
    log_probs, mask = output_field(outputs, "log_probs"), output_field(outputs, "label_mask")
    if not torch.is_tensor(log_probs) or not torch.is_tensor(mask):
        return None
    per_token = -log_probs.detach().float()
    targets = torch.where(mask, 0, IGNORE_INDEX).long()
    return per_token, targets


class PerSampleLoss:
    """One loss per sample of a training batch, whichever path the model allows.

    Args:
        model: the (unwrapped) model; a token-CE model gets a :class:`TokenLossCapture` as its loss function,
            and every model an :class:`OutputCapture` forward hook.
        fn: ``fn(outputs, inputs) -> Tensor[num_samples]`` for heads whose loss is not token CE.
        want_hidden: ask the model for hidden states (fused losses that return no logits).
    """

    def __init__(self, model: torch.nn.Module, fn: PerSampleLossFn | None = None, want_hidden: bool = False) -> None:
        self.fn = fn
        self.want_hidden = want_hidden and fn is None
        self.capture: TokenLossCapture | None = None
        self.outputs = OutputCapture(model)
        base = base_model(model)
        if fn is None and is_token_ce_model(base):
            self.capture = TokenLossCapture()
            base.loss_function = self.capture  # type: ignore[assignment]

    def prepare(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Before the forward: arm the captures, ask for hidden states; returns the batch's sample boundaries
        (``position_ids``, ``cu_seq_lens``, ``logits_to_keep``...), read before the model may consume them."""
        if self.fn is None and inputs.get("labels") is None:
            raise ValueError(
                "hardmine: the training batch has no 'labels'. The per-sample loss is the token "
                "cross-entropy over labels (-100 = ignored): have the collator return labels, or pass "
                "per_sample_loss_fn=fn(outputs, inputs) -> Tensor[batch] for a model whose loss is not token CE.")
        if self.want_hidden:
            inputs["output_hidden_states"] = True
        if self.capture is not None:
            self.capture.arm()
        self.outputs.arm()
        return {k: inputs.get(k) for k in (*BOUNDARY_KEYS, "labels", "shift_labels")}

    def compute(self, model: Callable[[], torch.nn.Module], outputs: Any, inputs: Mapping[str, Any],
                before: Mapping[str, Any], num_samples: int) -> torch.Tensor:
        """After the forward: ``Tensor[num_samples]``, detached (NaN for a sample with no valid token).

        ``outputs`` are the ones ``compute_loss`` returned, if it did; else the forward hook's. ``model``
        returns the unwrapped model; it is called only on the hidden-state path (unwrapping costs ms a step).
        """
        hooked = self.outputs.take()
        outputs = hooked if outputs is None else outputs
        if self.fn is not None:
            with torch.no_grad():
                losses = torch.as_tensor(self.fn(outputs, {**inputs, "labels": before["labels"]})).reshape(-1)
            if losses.numel() != num_samples:
                raise ValueError(f"hardmine: per_sample_loss_fn returned {losses.numel()} losses for a batch of "
                                 f"{num_samples} sample ids; it must return one loss per sample (Tensor[batch]).")
            return losses.detach().float()
        per_token, targets = self._token_losses(model, outputs, before)
        per_token, targets = _to_row_layout(per_token, targets, before)
        starts = segment_starts(before, per_token.shape)
        return per_sample_means(per_token, targets, num_samples, starts).detach().float()

    def _token_losses(self, model: Callable[[], torch.nn.Module], outputs: Any,
                      before: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        captured = self.capture.take() if self.capture is not None else None
        if captured is not None:
            return captured
        fused = fused_token_losses(outputs)
        if fused is not None:
            return fused
        targets = shift_targets(before, before["labels"])
        logits = output_field(outputs, "logits")
        if logits is not None:
            return token_losses_from_logits(logits, targets), targets.to(logits.device)
        hidden = output_field(outputs, "hidden_states")
        unwrapped: Any = base_model(model())
        head = unwrapped.get_output_embeddings()
        if hidden is not None and head is not None:
            return token_losses_from_hidden(hidden[-1], head, targets), targets.to(hidden[-1].device)
        raise ValueError(
            "hardmine: the model returned logits=None (a fused cross-entropy: use_liger_kernel=True, or TRL "
            "loss_type='chunked_nll') and no hidden states to recompute per-sample losses from. Set "
            "use_liger_kernel=True in TrainingArguments (hardmine then asks for hidden states), turn the fused "
            "loss off, or pass per_sample_loss_fn=fn(outputs, inputs) -> Tensor[batch].")


def _to_row_layout(per_token: torch.Tensor, targets: torch.Tensor,
                   before: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token losses laid out over the batch's rows, so the packing keys line up with them.

    ms-swift's ``logits_to_keep`` computes only some positions (put back with
    :func:`~hardmine.integrations._hf_segments.expand_kept`); TRL's fused head drops the last position.
    """
    width = row_width(before)
    if width is None or per_token.shape[-1] == width:
        return per_token, targets
    keep = before.get("logits_to_keep")
    if keep is not None and not isinstance(keep, bool):
        return expand_kept(per_token, targets, keep, width)
    if per_token.shape[-1] == width - 1:
        return F.pad(per_token, (0, 1)), F.pad(targets, (0, 1), value=IGNORE_INDEX)
    return per_token, targets
