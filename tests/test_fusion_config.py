"""The custom.fusion YAML block: validated beside hard_sample_mining, errors name the field path."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from hardmine import HardMiner, HardMiningConfig
from hardmine.fusion import FusionConfig, FusionDataset

TRAINING_YAML = """\
model: qwen3-vl
custom:
  hard_sample_mining:
    trigger: {kind: epoch, start_epoch: 1}
  fusion:
    targets:
      bbu: {ratio: 1.0, path: /data/bbu.jsonl}
      rare: 2.0
    auxiliaries:
      lvis: {ratio: 0.08, replacement: false, path: /data/lvis.jsonl}
      coco_captions: {ratio: 0.02, replacement: true, salt: 7}
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "train.yaml"
    p.write_text(text)
    return p


def test_block_beside_hard_sample_mining(tmp_path: Path) -> None:
    path = write(tmp_path, TRAINING_YAML)
    cfg = FusionConfig.from_yaml(path)
    assert list(cfg.targets) == ["bbu", "rare"] and cfg.targets["rare"].ratio == 2.0
    assert cfg.targets["bbu"].path == "/data/bbu.jsonl"
    assert cfg.auxiliaries["lvis"].ratio == 0.08 and cfg.auxiliaries["lvis"].replacement is False
    assert cfg.auxiliaries["coco_captions"].replacement is True and cfg.auxiliaries["coco_captions"].salt == 7
    assert HardMiningConfig.from_yaml(path).trigger.start_epoch == 1  # the sibling block is untouched
    again = FusionConfig.from_yaml(write(tmp_path, cfg.to_yaml()))
    assert again == cfg


def test_from_config_builds_the_fusion_and_a_miner(tmp_path: Path) -> None:
    path = write(tmp_path, TRAINING_YAML)
    pools = {"bbu": range(100), "rare": range(10), "lvis": range(1000), "coco_captions": range(50)}
    fusion = FusionDataset.from_config(path, pools)
    assert fusion.quotas() == {"bbu": 100, "rare": 20, "lvis": 10, "coco_captions": 2}
    miner = HardMiner(path, dataset=fusion)
    assert len(miner.sampler) == 132
    with pytest.raises(ValueError, match=r"no dataset given for source\(s\) \['lvis'\]"):
        FusionDataset.from_config(path, {k: v for k, v in pools.items() if k != "lvis"})
    with pytest.raises(ValueError, match=r"pools \['extra'\] are not sources"):
        FusionDataset.from_config(path, {**pools, "extra": range(3)})


def test_shorthand_forms() -> None:
    cfg = FusionConfig.model_validate({"targets": ["a", "b"], "auxiliaries": {"c": 0.5}})
    assert cfg.targets["a"].ratio == cfg.targets["b"].ratio == 1.0 and cfg.auxiliaries["c"].ratio == 0.5
    cfg = FusionConfig.model_validate({"targets": {"a": None, "b": 3}})  # `a:` with nothing: the defaults
    assert cfg.targets["a"].ratio == 1.0 and cfg.targets["b"].ratio == 3.0


@pytest.mark.parametrize(
    ("block", "path", "words"),
    [
        ({"targets": {}}, "targets", "at least 1 item"),
        ({"auxiliaries": {"a": 0.1}}, "targets", "Field required"),
        ({"targets": ["a"], "auxiliaries": {"lvis": -0.1}}, "auxiliaries.lvis.ratio", "greater than or"),
        ({"targets": ["a"], "auxiliaries": {"lvis": float("nan")}}, "auxiliaries.lvis.ratio", "finite"),
        ({"targets": {"a": {"ratio": float("inf")}}}, "targets.a.ratio", "finite"),
        ({"targets": ["a"], "auxiliaries": {"lvis": {"replacment": True, "ratio": 1}}},
         "auxiliaries.lvis.replacment", "Extra inputs"),
        ({"targets": ["a"], "auxiliaries": {"lvis": {}}}, "auxiliaries.lvis.ratio", "Field required"),
        ({"targets": {"a": {"replacement": True}}}, "targets.a.replacement", "Extra inputs"),
        ({"targets": ["a", "a"]}, "targets", "source name 'a' is used twice as a target"),
        ({"targets": ["a"], "auxiliaries": {"a": 0.1}}, "", "'a' is used both as a target and as an aux"),
        ({"targets": {"": {}}}, "targets", "non-empty"),
        ({"targets": ["a"], "weights": 1}, "weights", "Extra inputs"),
    ],
)
def test_errors_name_the_field(block: dict, path: str, words: str) -> None:
    with pytest.raises(ValidationError) as info:
        FusionConfig.model_validate(block)
    messages = [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in info.value.errors()]
    assert any(loc == path and words in msg for loc, msg in messages), messages


def test_duplicate_names_in_yaml_are_refused(tmp_path: Path) -> None:
    text = "custom:\n  fusion:\n    targets: {a: 1.0}\n    auxiliaries:\n      lvis: 0.1\n      lvis: 0.2\n"
    with pytest.raises(ValueError, match=r"fusion.auxiliaries names source\(s\) \['lvis'\] more than once"):
        FusionConfig.from_yaml(write(tmp_path, text))


def test_missing_block_and_bare_block(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="has no custom.fusion block"):
        FusionConfig.from_yaml(write(tmp_path, "custom:\n  hard_sample_mining: {}\n"))
    cfg = FusionConfig.from_yaml(write(tmp_path, "targets: [bbu]\nauxiliaries: {lvis: 0.1}\n"))
    assert list(cfg.targets) == ["bbu"] and cfg.auxiliaries["lvis"].ratio == 0.1
