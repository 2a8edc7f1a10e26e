"""The sections of the ``custom.hard_sample_mining`` block: trigger, select, resample (with the prior), guard.

Each section model validates its settings (extra keys refused, errors naming the field) and builds the part
it configures (``build()``). :mod:`hardmine.config` assembles them into :class:`~hardmine.HardMiningConfig`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from hardmine.guards import Guard, build_guards
from hardmine.prior import ClassBalanced, Prior, RepeatFactor
from hardmine.selection import Percentile, Selector, Threshold, TopK
from hardmine.triggers import EpochTrigger, PlateauTrigger, Trigger


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
    k: float = Field(0.15, gt=0, allow_inf_nan=False)

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

    hard_weight: float = Field(4.0, ge=1, allow_inf_nan=False)
    max_repeats: Optional[int] = Field(4, ge=1)
    # with a prior: plan the next epoch without max_repeats while the noise guards, once judging, keep out less
    # than this share of the prior-boosted samples (clean labels: the prior in full); null: the cap always holds
    lift_cap_below: Optional[float] = Field(0.1, gt=0, le=1, allow_inf_nan=False)
    # with a prior: the samples it boosts at least this much (prior weight >= this) keep at least the share of the
    # epoch the prior alone gives them, so mining adds draws to rare categories and never takes the prior's away
    keep_rare_share: Optional[float] = Field(2.0, gt=1, allow_inf_nan=False)
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


class CartographyGuardConfig(_Strict):
    """Exclude hard-to-learn ids: mean confidence ``exp(-score)`` below ``max_confidence`` and its standard
    deviation below ``max_variability`` over the epochs seen, once seen in ``warmup`` epochs; at most the least
    confident ``quantile`` of the judged ids (0: no such limit)."""

    warmup: int = Field(3, ge=1)
    max_confidence: float = Field(0.25, gt=0, lt=1)
    max_variability: float = Field(0.05, gt=0, lt=1)
    quantile: float = Field(0.5, ge=0, lt=1)  # only ids at or below this quantile of the mean confidence


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

    learnability: Optional[LearnabilityGuardConfig] = None
    cartography: Optional[CartographyGuardConfig] = Field(default_factory=CartographyGuardConfig)
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
