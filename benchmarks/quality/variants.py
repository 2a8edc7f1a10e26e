"""The sampling strategies the quality benchmark compares, all at the same step budget.

A variant is either a frequency baseline (per-sample weights from the label counts, drawn with
replacement: what a practitioner writes in 20 lines) or a ``hard_sample_mining`` block (run through
``HardMiner`` on the MLP tasks and through ``HardMiningTrainer`` on the token task).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.quality.task import Task
from benchmarks.quality.train import Sampling, Uniform, WithReplacement, mining

__all__ = ["VARIANTS", "Variant", "all_variants", "class_balanced_weights", "old_config", "rfs_weights"]

RFS_THRESHOLD = 0.3  # the baseline's best of {0.03, 0.1, 0.3} on the tuning seeds of digits_lt and tokens_lt


def old_config() -> dict[str, Any]:
    """hardmine's defaults before issue 12, written out so that they stay fixed when the defaults change."""
    return {"ema_decay": 0.3, "trigger": {"kind": "epoch", "start_epoch": 2}, "select": {"kind": "top_k", "k": 0.1},
            "resample": {"hard_weight": 2.0, "max_repeats": 4, "prior": None, "lift_cap_below": None,
                         "keep_rare_share": None},
            "guard": {"learnability": {"patience": 2, "min_drop": 0.15, "quantile": 0.5, "smoothing": 0.6},
                      "staleness": {"max_age": 3}, "cartography": None}}


def _share(labels: np.ndarray) -> np.ndarray:
    """Per sample: the share of training samples with its (observed) label."""
    return np.bincount(labels)[labels] / labels.size


def class_balanced_weights(labels: np.ndarray) -> np.ndarray:
    """Class-balanced resampling: 1 / (count of the sample's label)."""
    return 1.0 / _share(labels)


def rfs_weights(labels: np.ndarray) -> np.ndarray:
    """Repeat-factor sampling (LVIS): max(1, sqrt(t / f))."""
    return np.maximum(1.0, np.sqrt(RFS_THRESHOLD / _share(labels)))


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    build: Callable[[Task, int], Sampling]
    config: dict[str, Any] | None = None  # the mining block (None: not a miner)
    categories: bool = False  # the miner is given the observed labels as categories
    weights: Callable[[np.ndarray], np.ndarray] | None = None  # a frequency baseline's weights from labels


def miner_variant(name: str, description: str, config: dict[str, Any], categories: bool = True) -> Variant:
    return Variant(name, description, mining(config, None, categories), config, categories)


def weighted_variant(name: str, description: str, weights: Callable[[np.ndarray], np.ndarray]) -> Variant:
    return Variant(name, description, lambda task, seed: WithReplacement(weights(task.y), seed), weights=weights)


VARIANTS: tuple[Variant, ...] = (
    Variant("uniform", "uniform sampling (a permutation per epoch)", lambda task, seed: Uniform(len(task.y), seed)),
    weighted_variant("class_balanced", "class-balanced resampling (1 / label count, with replacement)",
                     class_balanced_weights),
    weighted_variant("rfs", f"repeat-factor sampling, t = {RFS_THRESHOLD} (with replacement)", rfs_weights),
    miner_variant("old_defaults", "hardmine's defaults before issue 12 (no categories: top 10% x2 from epoch 2, "
                  "learnability guard with patience 2 + staleness)", old_config(), categories=False),
    miner_variant("new_defaults", "hardmine's defaults (an empty block), given the labels as categories", {}),
    miner_variant("rfs_prior", "hardmine's defaults with a repeat-factor prior, t = 0.3 (the playbook's setting for "
                  "rare categories with noisy labels), given the labels as categories", {"resample": {"prior": {
                      "kind": "repeat_factor", "threshold": RFS_THRESHOLD}}}),
)


def all_variants() -> dict[str, Variant]:
    """Every variant by name: the suite's and the study's (``benchmarks/quality/study.py``)."""
    from benchmarks.quality.study import STUDY

    return {v.name: v for v in (*VARIANTS, *STUDY)}
