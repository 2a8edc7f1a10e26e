"""HardMiningConfig: the documented block validates; errors name the field path and allowed values."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from hardmine import HardMiningConfig

DESIGN_BLOCK = """\
custom:
  hard_sample_mining:
    enabled: true                # false: stock behaviour, bit for bit (the adapter installs nothing)
    seed: 42                     # optional; default: the training seed
    aggregate: ema               # ema | mean | max | last
    ema_decay: 0.9
    min_observations: 1          # ids seen fewer times are never selected
    trigger:
      kind: epoch                # epoch | plateau
      start_epoch: 2             # epoch: mine at the end of this epoch (0-based) and every epoch after
      monitor: train_loss        # plateau: train_loss or any logged eval metric (eval_loss, eval_map, ...)
      mode: min                  # plateau: min | max
      patience: 2
      threshold: 0.01
      threshold_mode: rel        # rel | abs
      cooldown: 0
    select:
      kind: top_k                # top_k | percentile | threshold
      k: 1000                    # top_k: a count, or a fraction of seen ids when 0 < k < 1
      percentile: 90             # percentile: ids at or above it
      threshold: 2.5             # threshold: ids whose score is at or above it
    resample:
      hard_weight: 3.0           # a mined sample is drawn this many times as often as the rest
      max_repeats: 4             # cap on copies of one sample in one epoch
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "train.yaml"
    p.write_text(text)
    return p


def test_documented_block_is_valid(tmp_path: Path) -> None:
    cfg = HardMiningConfig.from_yaml(write(tmp_path, DESIGN_BLOCK))
    assert cfg.enabled and cfg.seed == 42 and cfg.trigger.kind == "epoch" and cfg.trigger.start_epoch == 2
    assert cfg.select.kind == "top_k" and cfg.select.k == 1000
    assert cfg.resample.hard_weight == 3.0 and cfg.resample.max_repeats == 4


def test_plateau_and_percentile_from_the_same_block(tmp_path: Path) -> None:
    text = DESIGN_BLOCK.replace("kind: epoch", "kind: plateau").replace("kind: top_k", "kind: percentile")
    cfg = HardMiningConfig.from_yaml(write(tmp_path, text))
    assert cfg.trigger.kind == "plateau" and cfg.trigger.patience == 2 and cfg.trigger.monitor == "train_loss"
    assert cfg.select.kind == "percentile" and cfg.select.percentile == 90


def test_bare_block_and_top_level_key(tmp_path: Path) -> None:
    assert HardMiningConfig.from_yaml(write(tmp_path, "ema_decay: 0.5\n")).ema_decay == 0.5
    assert HardMiningConfig.from_yaml(write(tmp_path, "hard_sample_mining:\n  aggregate: max\n")).aggregate == "max"


def test_training_config_without_block_is_disabled(tmp_path: Path) -> None:
    cfg = HardMiningConfig.from_yaml(write(tmp_path, "custom:\n  other: 1\nmodel: x\n"))
    assert cfg.enabled is False


def test_round_trip_through_yaml(tmp_path: Path) -> None:
    cfg = HardMiningConfig.model_validate({"trigger": {"kind": "plateau", "monitor": "eval_map", "mode": "max"}})
    again = HardMiningConfig.from_yaml(write(tmp_path, cfg.to_yaml()))
    assert again == cfg


@pytest.mark.parametrize(
    ("block", "path", "words"),
    [
        ({"trigger": {"kind": "epoch", "patiense": 3}}, "trigger.epoch.patiense", "Extra inputs"),
        ({"trigger": {"kind": "weekly"}}, "trigger", "'epoch', 'plateau'"),
        ({"select": {"kind": "top_k", "k": 0}}, "select.top_k.k", "greater than 0"),
        ({"select": {"kind": "top_k", "k": 2.5}}, "select.top_k.k", "integer"),
        ({"select": {"kind": "percentile", "percentile": 120}}, "select.percentile.percentile", "100"),
        ({"ema_decay": 1.0}, "ema_decay", "less than 1"),
        ({"ema_decay": -0.1}, "ema_decay", "greater than or equal to 0"),
        ({"resample": {"hard_weight": 0.5}}, "resample.hard_weight", "greater than or equal to 1"),
        ({"resample": {"max_repeats": 0}}, "resample.max_repeats", "greater than or equal to 1"),
        ({"aggregate": "median"}, "aggregate", "'ema', 'mean', 'max' or 'last'"),
        ({"trigger": {"kind": "plateau", "mode": "up"}}, "trigger.plateau.mode", "'min' or 'max'"),
        ({"unknown": 1}, "unknown", "Extra inputs"),
        ({"resample": {"prior": {"kind": "repeat_factor", "threshold": 2}}}, "resample.prior.repeat_factor.threshold",
         "less than or equal to 1"),
        ({"resample": {"prior": {"kind": "class_balanced", "power": -1}}}, "resample.prior.class_balanced.power",
         "greater than or equal to 0"),
        ({"resample": {"prior": "rfs"}}, "resample.prior", "expected auto, null, {kind: repeat_factor"),
        ({"resample": {"prior": {"threshold": 0.1}}}, "resample.prior", "expected auto, null"),
    ],
)
def test_errors_name_the_field(block: dict, path: str, words: str) -> None:
    with pytest.raises(ValidationError) as info:
        HardMiningConfig.model_validate(block)
    text = str(info.value)
    assert path in text and words in text


def test_missing_file_and_non_mapping(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        HardMiningConfig.from_yaml(tmp_path / "nope.yaml")
    with pytest.raises(ValueError, match="must hold a YAML mapping"):
        HardMiningConfig.from_yaml(write(tmp_path, "- 1\n- 2\n"))


@pytest.mark.parametrize("text", ["", "# nothing here\n", "model: qwen3-vl\nlr: 1.0e-5\n", "custom:\n  other: 1\n",
                                  "enabled: true\nmodel: x\n"])
def test_no_block_means_mining_off_and_other_keys_are_not_ours(tmp_path: Path, text: str) -> None:
    """An empty file or a training YAML without custom.hard_sample_mining: mining off, as documented."""
    assert HardMiningConfig.from_yaml(write(tmp_path, text)).enabled is False


def test_a_binary_file_is_a_value_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "weights.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00binary")
    with pytest.raises(ValueError, match=r"weights.yaml' is not a YAML text file \(not UTF-8"):
        HardMiningConfig.from_yaml(path)
    with pytest.raises(FileNotFoundError, match="is a folder, not a config file"):
        HardMiningConfig.from_yaml(tmp_path)
