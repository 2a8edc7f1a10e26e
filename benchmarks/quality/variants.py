"""The sampling strategies the quality benchmark compares, all at the same step budget."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hardmine.guards import Guard, Learnability, LossMixture, LossTail, Staleness

__all__ = ["DEFAULT", "VARIANTS", "Variant", "mining_config"]


def mining_config(hard_weight: float = 2.0, k: float = 0.1, ema_decay: float = 0.3, start_epoch: int = 2,
                  max_repeats: int = 4, select: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``hard_sample_mining`` block; its guards are given per variant (``HardMiner(..., guards=)``)."""
    return {"ema_decay": ema_decay, "trigger": {"kind": "epoch", "start_epoch": start_epoch},
            "select": select or {"kind": "top_k", "k": k},
            "resample": {"hard_weight": hard_weight, "max_repeats": max_repeats}}


def default_guards() -> list[Guard]:
    """The proposed default guard: learnability (trend) plus staleness."""
    return [Learnability(patience=2, min_drop=0.15, quantile=0.5, smoothing=0.6), Staleness(max_age=3)]


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    mining: dict[str, Any] | None  # None: uniform sampling
    guards: Callable[[], list[Guard] | None] = list  # returning None: the config's own guard section


DEFAULT = Variant("default", "hardmine's defaults as shipped: top 10% x2 from epoch 2, EMA 0.3, learnability + "
                  "staleness guard", {}, lambda: None)

VARIANTS: tuple[Variant, ...] = (
    Variant("uniform", "uniform sampling (no mining)", None),
    Variant("naive_x4", "the removed feature: top 20% x4 by EMA loss, no guard",
            mining_config(hard_weight=4.0, k=0.2)),
    Variant("no_guard", "defaults without the guard (top 10% x2)", mining_config()),
    DEFAULT,
    Variant("default_x4", "defaults with hard_weight 4", mining_config(hard_weight=4.0), default_guards),
    Variant("pct90", "defaults with select percentile 90", mining_config(select={"kind": "percentile",
                                                                                 "percentile": 90.0}),
            default_guards),
    Variant("ema0.9", "defaults with ema_decay 0.9", mining_config(ema_decay=0.9), default_guards),
    Variant("learn_fast", "learnability guard, short memory (smoothing 0.5, min_drop 0.1)", mining_config(),
            lambda: [Learnability(patience=2, min_drop=0.1, smoothing=0.5)]),
    Variant("tail10", "loss-tail guard alone: never mine the top 10% by loss", mining_config(),
            lambda: [LossTail(0.1)]),
    Variant("mixture", "two-component mixture guard alone (exclude the high component above its mean)",
            mining_config(), lambda: [LossMixture()]),
)
