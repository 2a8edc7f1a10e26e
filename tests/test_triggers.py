"""Triggers: EpochTrigger table; PlateauTrigger fires exactly when ReduceLROnPlateau reduces."""

from __future__ import annotations

import logging

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hardmine import EpochTrigger, PlateauTrigger


@pytest.mark.parametrize(("start", "fires"), [(0, [1, 1, 1, 1]), (2, [0, 0, 1, 1]), (5, [0, 0, 0, 0])])
def test_epoch_trigger(start: int, fires: list[int]) -> None:
    t = EpochTrigger(start)
    assert [t.step(e, {}) for e in range(4)] == [bool(f) for f in fires]


def reductions(series: list[float], **kw: object) -> list[bool]:
    """Epochs at which torch's ReduceLROnPlateau reduces the learning rate."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, **kw)  # type: ignore[arg-type]
    out = []
    for v in series:
        before = opt.param_groups[0]["lr"]
        sched.step(v)
        out.append(opt.param_groups[0]["lr"] < before)
    return out


PLATEAU_TABLE = [
    # (settings, series, epochs at which it fires)
    ({"mode": "min", "patience": 0, "threshold": 0.0}, [3, 2, 2, 1, 1], [2, 4]),
    ({"mode": "min", "patience": 1, "threshold": 0.1}, [10, 9.5, 9.4, 9.3, 5], [2]),
    ({"mode": "max", "patience": 1, "threshold": 0.0, "threshold_mode": "abs"}, [1, 2, 2, 2, 3, 3, 3], [3, 6]),
    ({"mode": "min", "patience": 0, "threshold": 0.0, "cooldown": 2}, [5, 5, 5, 5, 5, 5], [1, 4]),
    ({"mode": "min", "patience": 2, "threshold": 0.5, "threshold_mode": "abs"}, [5, 4.8, 4.6, 4.55, 3.0], [3]),
]


@pytest.mark.parametrize(("kw", "series", "fires_at"), PLATEAU_TABLE)
def test_plateau_table(kw: dict, series: list[float], fires_at: list[int]) -> None:
    t = PlateauTrigger(monitor="m", **kw)
    fired = [e for e, v in enumerate(series) if t.step(e, {"m": v})]
    assert fired == fires_at
    assert [e for e, r in enumerate(reductions(series, **kw)) if r] == fires_at


@settings(max_examples=80, deadline=None)
@given(
    series=st.lists(st.floats(0.01, 10.0), min_size=1, max_size=25),
    mode=st.sampled_from(["min", "max"]),
    threshold_mode=st.sampled_from(["rel", "abs"]),
    threshold=st.sampled_from([0.0, 0.01, 0.1, 0.5]),
    patience=st.integers(0, 3),
    cooldown=st.integers(0, 2),
)
def test_plateau_matches_reduce_lr_on_plateau(series: list[float], mode: str, threshold_mode: str,
                                              threshold: float, patience: int, cooldown: int) -> None:
    kw = {"mode": mode, "threshold_mode": threshold_mode, "threshold": threshold, "patience": patience,
          "cooldown": cooldown}
    t = PlateauTrigger(monitor="eval_map", **kw)  # type: ignore[arg-type]
    assert [t.step(e, {"eval_map": v}) for e, v in enumerate(series)] == reductions(series, **kw)


def test_missing_metric_warns_once_and_does_not_count(caplog: pytest.LogCaptureFixture) -> None:
    t = PlateauTrigger(monitor="eval_map", patience=0, threshold=0.0)
    with caplog.at_level(logging.WARNING, logger="hardmine"):
        assert not t.step(0, {"train_loss": 1.0})
        assert not t.step(1, {"train_loss": 1.0})
    assert sum("eval_map" in r.message for r in caplog.records) == 1
    assert t.num_bad_epochs == 0


def test_state_round_trip() -> None:
    a = PlateauTrigger(monitor="m", patience=2, cooldown=1)
    for e, v in enumerate([3.0, 2.0, 2.5]):
        a.step(e, {"m": v})
    b = PlateauTrigger(monitor="m", patience=2, cooldown=1)
    b.load_state_dict(a.state_dict())
    series = [2.5, 2.5, 2.5, 1.0, 1.0, 1.0]
    assert [a.step(e, {"m": v}) for e, v in enumerate(series)] == [b.step(e, {"m": v}) for e, v in enumerate(series)]
    with pytest.raises(ValueError, match="negative"):
        b.load_state_dict({**a.state_dict(), "num_bad_epochs": -1})


@pytest.mark.parametrize(("kw", "match"), [({"mode": "avg"}, "mode must be one of"),
                                           ({"threshold_mode": "pct"}, "threshold_mode"),
                                           ({"patience": -1}, "patience"), ({"cooldown": 1.5}, "cooldown"),
                                           ({"threshold": float("nan")}, "threshold")])
def test_plateau_bad_settings(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PlateauTrigger(**kw)


def test_epoch_trigger_bad_settings() -> None:
    with pytest.raises(ValueError, match="start_epoch"):
        EpochTrigger(-1)


def test_nan_metrics_are_warned_about_once_and_not_counted(caplog: pytest.LogCaptureFixture) -> None:
    t = PlateauTrigger(monitor="eval_loss", patience=0, threshold=0.0)
    with caplog.at_level("WARNING", logger="hardmine"):
        fired = [t.step(e, {"eval_loss": v}) for e, v in enumerate([1.0, float("nan"), float("nan"), 1.0])]
    assert fired == [False, False, False, True]  # only the real second 1.0 is a bad epoch
    assert sum("NaN" in r.message for r in caplog.records) == 1
