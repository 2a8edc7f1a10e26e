"""The ``custom.hard_sample_mining`` YAML block as validated pydantic models.

Unknown keys are refused and every error names its field path (``trigger.patience``) and the
allowed values. A section may carry keys that belong to another ``kind`` (the documented block lists
them all, with comments saying which applies): those are accepted and ignored; anything else is an error.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from os import PathLike
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from hardmine.guards import Guard, build_guards
from hardmine.prior import ClassBalanced, Prior, RepeatFactor
from hardmine.selection import Percentile, Selector, Threshold, TopK
from hardmine.triggers import EpochTrigger, PlateauTrigger, Trigger

__all__ = [
    "ClassBalancedPriorConfig",
    "EpochTriggerConfig",
    "GuardConfig",
    "HardMiningConfig",
    "PercentileSelectConfig",
    "PlateauTriggerConfig",
    "RepeatFactorPriorConfig",
    "ResampleConfig",
    "ThresholdSelectConfig",
    "TopKSelectConfig",
]

logger = logging.getLogger("hardmine")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _drop_sibling_keys(data: Any, own: set[str], siblings: set[str]) -> Any:
    """Accept (and drop) keys that belong to another kind of the same section."""
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if k in own or k not in siblings}
    return data


# ---------------------------------------------------------------------------- trigger
class EpochTriggerConfig(_Strict):
    """Mine at the end of ``start_epoch`` (0-based) and every epoch after."""

    kind: Literal["epoch"] = "epoch"
    start_epoch: int = Field(2, ge=0)

    def build(self) -> Trigger:
        return EpochTrigger(self.start_epoch)


class PlateauTriggerConfig(_Strict):
    """Mine once ``monitor`` plateaus (``torch.optim.lr_scheduler.ReduceLROnPlateau`` semantics)."""

    kind: Literal["plateau"] = "plateau"
    monitor: str = "train_loss"
    mode: Literal["min", "max"] = "min"
    patience: int = Field(2, ge=0)
    threshold: float = Field(0.01, ge=0, allow_inf_nan=False)
    threshold_mode: Literal["rel", "abs"] = "rel"
    cooldown: int = Field(0, ge=0)

    def build(self) -> Trigger:
        return PlateauTrigger(self.monitor, self.mode, self.patience, self.threshold, self.threshold_mode,
                              self.cooldown)


_TRIGGER_KEYS = {"epoch": set(EpochTriggerConfig.model_fields), "plateau": set(PlateauTriggerConfig.model_fields)}
TriggerConfig = Annotated[Union[EpochTriggerConfig, PlateauTriggerConfig], Field(discriminator="kind")]


# ---------------------------------------------------------------------------- select
class TopKSelectConfig(_Strict):
    """The ``k`` highest scores; ``0 < k < 1`` is a fraction of the eligible ids."""

    kind: Literal["top_k"] = "top_k"
    k: float = Field(0.1, gt=0, allow_inf_nan=False)

    @field_validator("k")
    @classmethod
    def _count_is_integer(cls, k: float) -> float:
        if k >= 1 and int(k) != k:
            raise ValueError(f"k >= 1 is a count and must be an integer (or 0 < k < 1 a fraction), got {k}")
        return k

    def build(self) -> Selector:
        return TopK(self.k)


class PercentileSelectConfig(_Strict):
    """Ids at or above the ``percentile``-th percentile of the eligible scores."""

    kind: Literal["percentile"] = "percentile"
    percentile: float = Field(90.0, ge=0, le=100)

    def build(self) -> Selector:
        return Percentile(self.percentile)


class ThresholdSelectConfig(_Strict):
    """Ids whose score is at or above ``threshold``."""

    kind: Literal["threshold"] = "threshold"
    threshold: float = Field(2.5, allow_inf_nan=False)

    def build(self) -> Selector:
        return Threshold(self.threshold)


_SELECT_KEYS = {"top_k": set(TopKSelectConfig.model_fields), "percentile": set(PercentileSelectConfig.model_fields),
                "threshold": set(ThresholdSelectConfig.model_fields)}
SelectConfig = Annotated[Union[TopKSelectConfig, PercentileSelectConfig, ThresholdSelectConfig],
                         Field(discriminator="kind")]


# ---------------------------------------------------------------------------- resample
class RepeatFactorPriorConfig(_Strict):
    """Repeat-factor sampling (LVIS): ``max(1, sqrt(threshold / f_c))`` for the rarest category of a sample."""

    kind: Literal["repeat_factor"] = "repeat_factor"
    threshold: float = Field(gt=0, le=1)  # no default: it depends on the number of categories (LVIS: 0.001)

    def build(self) -> Prior:
        return RepeatFactor(self.threshold)


class ClassBalancedPriorConfig(_Strict):
    """Power-smoothed class balance: ``(f_max / f_c) ** power`` for the rarest category of a sample."""

    kind: Literal["class_balanced"] = "class_balanced"
    power: float = Field(1.0, ge=0, le=2)

    def build(self) -> Prior:
        return ClassBalanced(self.power)


PriorConfig = Union[RepeatFactorPriorConfig, ClassBalancedPriorConfig]
DEFAULT_PRIOR: PriorConfig = ClassBalancedPriorConfig()  # what ``prior: auto`` means (docs/benchmarks.md)
_PRIOR_KINDS = ("auto", "repeat_factor", "class_balanced")


def _prior_tag(value: Any) -> str | None:
    """``auto``, or the ``kind`` of a prior section (the tag pydantic validates it by)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return value.get("kind") if isinstance(value.get("kind"), str) else None
    return getattr(value, "kind", None)


PriorField = Annotated[
    Union[Annotated[Literal["auto"], Tag("auto")], Annotated[RepeatFactorPriorConfig, Tag("repeat_factor")],
          Annotated[ClassBalancedPriorConfig, Tag("class_balanced")]],
    Discriminator(_prior_tag, custom_error_type="prior_kind",
                  custom_error_message="expected auto, null, {kind: repeat_factor, threshold: ...} or "
                                       "{kind: class_balanced, power: ...}"),
]


class ResampleConfig(_Strict):
    """How much more often mined samples are drawn, with the epoch length unchanged; the frequency prior."""

    hard_weight: float = Field(3.0, ge=1, allow_inf_nan=False)
    max_repeats: Optional[int] = Field(4, ge=1)
    # auto: the measured best prior when the miner is given categories, none otherwise; null: no prior
    prior: Optional[PriorField] = "auto"

    def build_prior(self, has_categories: bool) -> Prior | None:
        """The prior to apply: None without categories under ``auto`` or with ``prior: null``.

        Raises ValueError when a prior is set explicitly but there are no categories to compute it from."""
        if self.prior is None:
            return None
        if self.prior == "auto":
            return DEFAULT_PRIOR.build() if has_categories else None
        if not has_categories:
            raise ValueError(f"resample.prior is {self.prior.kind!r}, but no categories were given: pass "
                             "categories=... to the miner (or the trainer), or set resample.prior to auto or null")
        return self.prior.build()


# ---------------------------------------------------------------------------- noise guard
class LearnabilityGuardConfig(_Strict):
    """Exclude high-loss ids whose loss is not falling against their own past (likely mislabeled), once they
    have been tracked ``patience`` epochs (the warm-up that lets a rare sample's loss start to fall)."""

    patience: int = Field(5, ge=1)
    min_drop: float = Field(0.15, ge=0, lt=1)
    quantile: float = Field(0.5, ge=0, lt=1)
    smoothing: float = Field(0.6, ge=0, lt=1)


class StalenessGuardConfig(_Strict):
    """Exclude ids not seen for more than ``max_age`` epochs (an old high score is not news)."""

    max_age: int = Field(3, ge=0)


class LossTailGuardConfig(_Strict):
    """Exclude the top ``fraction`` of ids by score (opt-in)."""

    fraction: float = Field(0.05, gt=0, lt=1)


class LossMixtureGuardConfig(_Strict):
    """Exclude the tail of the high-loss component of a two-Gaussian fit, when clearly apart (opt-in)."""

    z: float = Field(0.0, allow_inf_nan=False)
    min_posterior: float = Field(0.5, gt=0, lt=1)
    min_separation: float = Field(2.0, ge=0)


class GuardConfig(_Strict):
    """Noise guards run in this order; ``null`` switches one off. Defaults chosen on the quality benchmark."""

    learnability: Optional[LearnabilityGuardConfig] = Field(default_factory=LearnabilityGuardConfig)
    staleness: Optional[StalenessGuardConfig] = Field(default_factory=StalenessGuardConfig)
    loss_tail: Optional[LossTailGuardConfig] = None
    loss_mixture: Optional[LossMixtureGuardConfig] = None

    def build(self) -> list[Guard]:
        return build_guards(self.model_dump())


# ---------------------------------------------------------------------------- the block
def _section(data: Any, keys: dict[str, set[str]], default_kind: str) -> Any:
    if not isinstance(data, dict):
        return data
    kind = data.get("kind", default_kind)
    if kind not in keys:
        return data  # the discriminator reports the allowed kinds
    siblings = set().union(*(v for k, v in keys.items() if k != kind))
    return _drop_sibling_keys({**data, "kind": kind}, keys[kind], siblings)


class HardMiningConfig(_Strict):
    """Settings of hard-sample mining: the ``custom.hard_sample_mining`` block of a training YAML.

    >>> cfg = HardMiningConfig.model_validate({"trigger": {"kind": "epoch", "start_epoch": 1}})
    >>> cfg.trigger.start_epoch, cfg.select.kind
    (1, 'top_k')
    """

    enabled: bool = True
    seed: Optional[int] = Field(None, ge=0)
    aggregate: Literal["ema", "mean", "max", "last"] = "ema"
    ema_decay: float = Field(0.3, ge=0, lt=1)
    min_observations: int = Field(1, ge=1)
    trigger: TriggerConfig = Field(default_factory=EpochTriggerConfig)
    select: SelectConfig = Field(default_factory=TopKSelectConfig)
    resample: ResampleConfig = Field(default_factory=ResampleConfig)
    guard: Optional[GuardConfig] = Field(default_factory=GuardConfig)  # null: no noise guard
    # resuming a checkpoint written with mining on whose hardmine_state.npz is missing: an error, or start fresh
    on_missing_state: Literal["error", "fresh"] = "error"

    @model_validator(mode="before")
    @classmethod
    def _accept_documented_sibling_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            if "trigger" in data:
                data["trigger"] = _section(data["trigger"], _TRIGGER_KEYS, "epoch")
            if "select" in data:
                data["select"] = _section(data["select"], _SELECT_KEYS, "top_k")
        return data

    @classmethod
    def coerce(cls, config: HardMiningConfig | Mapping[str, Any] | str | PathLike[str] | None,
               name: str = "config") -> HardMiningConfig:
        """``config`` as a config: itself, a dict, a YAML path, or None (the defaults).

        ``name`` is the argument named in errors (``mining`` for the HF adapter)."""
        if config is None:
            return cls()
        if isinstance(config, HardMiningConfig):
            return config
        if isinstance(config, Mapping):
            return cls.model_validate(dict(config))
        if isinstance(config, (str, PathLike)):
            if not Path(config).is_file():
                raise FileNotFoundError(f"{name}={str(config)!r} does not exist. Pass the path of a YAML file "
                                        "holding custom.hard_sample_mining, a dict, or a HardMiningConfig.")
            return cls.from_yaml(config)
        raise TypeError(f"{name} must be a HardMiningConfig, a dict or a YAML path, but got {type(config).__name__}")

    def build_guards(self) -> list[Guard]:
        """The noise guards this config asks for (none when ``guard: null``)."""
        return [] if self.guard is None else self.guard.build()

    @classmethod
    def from_yaml(cls, path: str | PathLike[str]) -> HardMiningConfig:
        """Read ``custom.hard_sample_mining`` (or ``hard_sample_mining``, or a bare block) from a YAML file.

        A file without the block (an empty file, or a training config whose other keys are not ours) gives a
        disabled config (stock training), with a warning.
        """
        block = load_yaml_block(path, "hard_sample_mining", cls.model_fields)
        if block is None:
            logger.warning("hardmine: %s has no custom.hard_sample_mining block; mining is disabled", path)
            return cls(enabled=False)
        return cls.model_validate(block)

    def to_yaml(self) -> str:
        """The resolved block, as it would appear under ``custom.hard_sample_mining``."""
        text: str = yaml.safe_dump({"custom": {"hard_sample_mining": self.model_dump(mode="json")}}, sort_keys=False)
        return text


def load_yaml_block(path: str | PathLike[str], name: str, fields: Iterable[str] = ()) -> dict[str, Any] | None:
    """The mapping at ``custom.<name>`` or ``<name>`` in a YAML file, or the whole file when it is a bare block
    (every top-level key one of ``fields``); None when there is no block: an empty file, or a training config
    without it (its other keys are not ours to read)."""
    p = Path(path)
    if not p.is_file():
        what = "is a folder, not a config file" if p.is_dir() else "does not exist"
        raise FileNotFoundError(f"no such config file: {str(p)!r} {what}")
    try:
        with p.open("r", encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except UnicodeDecodeError as e:
        raise ValueError(f"{str(p)!r} is not a YAML text file (not UTF-8: {e.reason} at byte {e.start})") from None
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ValueError(f"{str(p)!r} must hold a YAML mapping, but holds a {type(data).__name__}")
    custom = data.get("custom")
    if isinstance(custom, dict) and name in custom:
        block = custom[name]
    elif name in data:
        block = data[name]
    elif data and set(data) <= set(fields):
        return data
    else:
        return None
    if block is None:
        return {}
    if not isinstance(block, dict):
        raise ValueError(f"{name} in {str(p)!r} must be a mapping, but is a {type(block).__name__}")
    return block


def resume_conflicts(saved: HardMiningConfig, current: HardMiningConfig) -> list[tuple[str, Any, Any]]:
    """``(field, saved value, current value)`` for every setting a run cannot change when it resumes.

    Refused: the ones that decide the order of the epoch in flight (``seed`` is compared by the miner, with
    the training seed it defaults to; ``resample.max_repeats``), the meaning of the saved scores
    (``aggregate``, ``ema_decay``) and the kind of state saved (``trigger.kind``, which guards are on).
    Every other field applies from the next epoch end on.
    """
    def guards(cfg: HardMiningConfig) -> list[str]:
        return [] if cfg.guard is None else [k for k, v in cfg.guard.model_dump().items() if v is not None]

    pairs = [("aggregate", saved.aggregate, current.aggregate), ("ema_decay", saved.ema_decay, current.ema_decay),
             ("resample.max_repeats", saved.resample.max_repeats, current.resample.max_repeats),
             ("trigger.kind", saved.trigger.kind, current.trigger.kind), ("guard", guards(saved), guards(current))]
    return [(f, a, b) for f, a, b in pairs if a != b]
