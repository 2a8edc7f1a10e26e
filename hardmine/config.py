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
from typing import Any, Literal, Optional

import yaml
from pydantic import Field, model_validator

from hardmine._config_sections import (
    _SELECT_KEYS,
    _TRIGGER_KEYS,
    DEFAULT_PRIOR,
    ClassBalancedPriorConfig,
    EpochTriggerConfig,
    GuardConfig,
    PercentileSelectConfig,
    PlateauTriggerConfig,
    RepeatFactorPriorConfig,
    ResampleConfig,
    SelectConfig,
    ThresholdSelectConfig,
    TopKSelectConfig,
    TriggerConfig,
    _section,
    _Strict,
)
from hardmine.guards import Guard

__all__ = [
    "DEFAULT_PRIOR",
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


def check_resume(saved: Mapping[str, Any], saved_seed: int, current: HardMiningConfig, seed: int, at: str) -> None:
    """Refuse to resume ``at`` (a file, a checkpoint) when a setting that cannot change did, naming each
    (see :func:`resume_conflicts`; ``seed`` is the effective seed, the training seed when the config has none)."""
    conflicts = resume_conflicts(HardMiningConfig.model_validate(dict(saved)), current)
    if saved_seed != seed:
        conflicts.insert(0, ("seed", saved_seed, seed))
    if conflicts:
        changes = "; ".join(f"{f} was {a!r} when it was saved but is {b!r} now" for f, a, b in conflicts)
        raise ValueError(f"cannot resume from {at}: {changes}. These settings cannot change within a run (they "
                         "decide the epoch in flight or the meaning of the saved scores): resume with the saved "
                         "values, or start mining fresh")
