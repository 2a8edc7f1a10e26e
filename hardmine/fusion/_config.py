"""The ``custom.fusion`` YAML block: source names, ratios, replacement and salts, validated.

Which data each source holds (``path``) is the user's business: it is kept for their loader and never
read here. Unknown keys are refused and every error names its field path (``auxiliaries.lvis.ratio``).

.. code-block:: yaml

    custom:
      fusion:
        targets:
          bbu: {ratio: 1.0, path: /data/bbu.jsonl}
        auxiliaries:
          lvis: {ratio: 0.08, replacement: false, path: /data/lvis.jsonl}
          coco_captions: 0.02          # shorthand for {ratio: 0.02}
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Any, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from hardmine.config import load_yaml_block
from hardmine.fusion._layout import check_names

_SALT_LIMIT = 2**32


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _shorthand(value: Any) -> Any:
    """``name: 0.08`` means ``name: {ratio: 0.08}``; ``name:`` (null) means the defaults."""
    if value is None:
        return {}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"ratio": value}
    return value


class TargetConfig(_Strict):
    """A mined source: ``round(ratio * size)`` draws per epoch (1.0: every sample once while uniform)."""

    ratio: float = Field(1.0, ge=0, allow_inf_nan=False)
    salt: Optional[int] = Field(None, ge=0, lt=_SALT_LIMIT)  # noqa: UP045 (pydantic on Python 3.9)
    path: Optional[str] = None  # noqa: UP045 -- for the user's loader; hardmine never reads it


class AuxiliaryConfig(_Strict):
    """An auxiliary source: ``round(ratio * target quota)`` uniform draws per epoch, never mined."""

    ratio: float = Field(..., ge=0, allow_inf_nan=False)
    replacement: bool = False
    salt: Optional[int] = Field(None, ge=0, lt=_SALT_LIMIT)  # noqa: UP045 (pydantic on Python 3.9)
    path: Optional[str] = None  # noqa: UP045 -- for the user's loader; hardmine never reads it


class FusionConfig(_Strict):
    """The ``custom.fusion`` block: targets (at least one) and auxiliaries, by source name.

    >>> cfg = FusionConfig.model_validate({"targets": ["bbu"], "auxiliaries": {"lvis": 0.08}})
    >>> cfg.targets["bbu"].ratio, cfg.auxiliaries["lvis"].ratio, cfg.auxiliaries["lvis"].replacement
    (1.0, 0.08, False)
    """

    targets: dict[str, TargetConfig] = Field(..., min_length=1)
    auxiliaries: dict[str, AuxiliaryConfig] = Field(default_factory=dict)

    @field_validator("targets", "auxiliaries", mode="before")
    @classmethod
    def _accept_shorthand(cls, value: Any, info: ValidationInfo) -> Any:
        kind = "target" if info.field_name == "targets" else "auxiliary"
        if isinstance(value, list):  # targets: [bbu, other]
            if not all(isinstance(v, str) for v in value):
                return value  # pydantic reports the expected mapping
            check_names([(v, kind) for v in value])
            return {v: {} for v in value}
        if isinstance(value, dict):
            check_names([(k, kind) for k in value])
            return {k: _shorthand(v) for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _names_are_unique(self) -> FusionConfig:
        check_names([(n, "target") for n in self.targets] + [(n, "auxiliary") for n in self.auxiliaries])
        return self

    @classmethod
    def from_yaml(cls, path: str | PathLike[str]) -> FusionConfig:
        """Read ``custom.fusion`` (or ``fusion``, or a bare block) from a YAML file.

        A source name written twice in one mapping is an error (plain YAML loading would keep the last).
        """
        block = load_yaml_block(path, "fusion", cls.model_fields)
        if block is None:
            raise ValueError(f"{str(path)!r} has no custom.fusion block")
        _refuse_duplicate_names(Path(path))
        return cls.model_validate(block)

    def to_yaml(self) -> str:
        """The resolved block, as it would appear under ``custom.fusion``."""
        text: str = yaml.safe_dump({"custom": {"fusion": self.model_dump(mode="json")}}, sort_keys=False)
        return text


def _mapping_child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            child: yaml.Node = v
            return child
    return None


def _refuse_duplicate_names(path: Path) -> None:
    with path.open("r", encoding="utf-8") as f:
        root = yaml.compose(f, Loader=yaml.SafeLoader)
    block = _mapping_child(_mapping_child(root, "custom"), "fusion") or _mapping_child(root, "fusion") or root
    for section in ("targets", "auxiliaries"):
        node = _mapping_child(block, section)
        if not isinstance(node, yaml.MappingNode):
            continue
        names = [k.value for k, _ in node.value if isinstance(k, yaml.ScalarNode)]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"{str(path)!r}: fusion.{section} names source(s) {dupes} more than once; "
                             "source names must be unique")
