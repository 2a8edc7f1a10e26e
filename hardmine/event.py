"""What one epoch end decided: a frozen :class:`MiningEvent`, built once from the pipeline's stages."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from hardmine import distributed

__all__ = ["MiningEvent"]

logger = logging.getLogger("hardmine")

_BLOCK = 1 << 20  # scores whose logs are taken at once
_SCORE_BINS = 30


@dataclass(frozen=True)
class MiningEvent:
    """What happened at the end of one epoch (one record of ``HardMiner.history``).

    >>> import hardmine as hm
    >>> miner = hm.HardMiner({"trigger": {"kind": "epoch", "start_epoch": 0},
    ...                       "select": {"kind": "top_k", "k": 2}}, num_samples=6)
    >>> miner.record([0, 1, 2, 3, 4, 5], [0.1, 0.2, 0.3, 0.4, 2.0, 3.0])
    >>> event = miner.end_epoch(0)
    >>> event.fired, event.num_hard, event.score_cut, event.draws_hist, event.mined_draws, event.total_draws
    (True, 2, 2.0, [2, 2, 2], 4, 6)
    """

    epoch: int
    triggered: bool  # mining is active for the next epoch
    fired: bool = False  # the trigger fired at this epoch (mining starts now)
    num_hard: int = 0
    score_cut: float | None = None
    num_seen: int = 0  # distinct ids in the ledger
    num_eligible: int = 0  # ids that could be selected (observations, source, guards)
    num_observed: int = 0  # (id, loss) pairs gathered this epoch, all ranks
    num_skipped: int = 0  # non-finite losses skipped so far
    excluded: dict[str, int] = field(default_factory=dict)  # guard -> ids it kept out of the hard set
    reason: str | None = None  # why nothing was mined, when nothing was
    per_source: dict[str, int] = field(default_factory=dict)  # draws per source in the next epoch
    overlap_prev: int | None = None  # hard ids shared with the previous epoch's set
    draw_ratio: float | None = None  # mean draws of a mined index / of any other, next epoch
    mined_draws: int | None = None  # draws of mined samples in the next epoch (None: nothing mined)
    total_draws: int = 0  # draws in the next epoch (the epoch length)
    draws_hist: list[int] = field(default_factory=list)  # indices drawn 0, 1, 2, ... times next epoch
    score_hist: dict[str, list[float]] = field(default_factory=dict)  # eligible scores: counts, edges
    metric: float | None = None  # the monitored metric, for a plateau trigger
    prior_boosted: int | None = None  # samples the frequency prior boosts (None: no prior)
    prior_draws: int | None = None  # next epoch's draws of those samples
    boost_draws: float | None = None  # next epoch's draws owed to weights above 1 (prior and hardness)
    prior_boost_draws: float | None = None  # the prior's part of boost_draws (the rest is hardness)
    rare_scale: float | None = None  # factor on the prior of the rare samples that kept their share of the epoch
    # (resample.keep_rare_share; 1: mining did not shrink it; None: not set, or no rare samples)
    cap_lifted: bool = False  # the next epoch is planned without max_repeats (resample.lift_cap_below)
    boosted_flagged: float | None = None  # share of the prior-boosted samples the noise guards keep out (None: not
    # measured: no prior, no lift_cap_below, or the guards are still warming up)

    @property
    def mined_draw_share(self) -> float | None:
        """Share of the next epoch's draws that go to mined samples (None when nothing is mined)."""
        if self.mined_draws is None or not self.total_draws:
            return None
        return self.mined_draws / self.total_draws

    @property
    def prior_draw_share(self) -> float | None:
        """Share of the next epoch's draws that go to samples the prior boosts (None without a prior)."""
        if self.prior_draws is None or not self.total_draws:
            return None
        return self.prior_draws / self.total_draws

    @property
    def prior_boost_share(self) -> float | None:
        """Share of the boost (draws owed to weights above 1) that came from the prior; the rest came from
        hardness (None without a prior or without a boost)."""
        if self.prior_boost_draws is None or not self.boost_draws:
            return None
        return self.prior_boost_draws / self.boost_draws

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MiningEvent:
        """An event from :meth:`to_dict` (refusing unknown fields by name)."""
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        missing = [k for k in ("epoch", "triggered") if k not in data]
        if unknown or missing:
            raise ValueError(f"not a MiningEvent: unknown fields {unknown}, missing fields {missing}")
        return cls(**data)

    def scalars(self, prefix: str = "hardmine/") -> dict[str, float]:
        """The event as flat numbers for a logger (what the HF adapter passes to ``Trainer.log``)."""
        out = {f"{prefix}triggered": float(self.triggered), f"{prefix}num_hard": float(self.num_hard),
               f"{prefix}num_seen": float(self.num_seen), f"{prefix}num_observed": float(self.num_observed),
               f"{prefix}num_skipped": float(self.num_skipped)}
        if self.score_cut is not None and math.isfinite(self.score_cut):
            out[f"{prefix}score_cut"] = float(self.score_cut)
        if self.draw_ratio is not None:
            out[f"{prefix}draw_ratio"] = float(self.draw_ratio)
        share = self.mined_draw_share
        if share is not None:
            out[f"{prefix}mined_draw_share"] = share
        if self.prior_boosted is not None:
            out[f"{prefix}prior_boosted"] = float(self.prior_boosted)
        for name in ("prior_draw_share", "prior_boost_share"):
            value = getattr(self, name)
            if value is not None:
                out[f"{prefix}{name}"] = float(value)
        if self.boost_draws is not None:
            out[f"{prefix}boost_draws"] = float(self.boost_draws)
        if self.rare_scale is not None:
            out[f"{prefix}rare_scale"] = float(self.rare_scale)
        if self.boosted_flagged is not None:
            out[f"{prefix}boosted_flagged"] = float(self.boosted_flagged)
            out[f"{prefix}cap_lifted"] = float(self.cap_lifted)
        out.update({f"{prefix}source/{name}": float(n) for name, n in self.per_source.items()})
        return out


def score_histogram(scores: np.ndarray) -> dict[str, list[float]]:
    """Counts and edges of the eligible scores; log-spaced when they are positive and span over a decade
    (losses are heavy-tailed: linear bins would put the cut inside the first one)."""
    if not scores.size:
        return {}
    x = np.asarray(scores, dtype=np.float32)  # the ledger's precision: enough for 30 bins, half the memory traffic
    lo, hi = float(x.min()), float(x.max())
    log = lo > 0 and hi / lo > 10  # uniform bins of log(score), then back to scores
    span = (math.log(lo), math.log(hi)) if log else (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)
    counts = np.zeros(_SCORE_BINS, dtype=np.int64)
    for start in range(0, x.size, _BLOCK):  # float64, a block at a time: the extremes fall inside, no full copy
        block = x[start : start + _BLOCK].astype(np.float64)
        counts += np.histogram(np.log(block, out=block) if log else block, bins=_SCORE_BINS, range=span)[0]
    edges = np.histogram_bin_edges(span, bins=_SCORE_BINS, range=span)
    return {"counts": counts.tolist(), "edges": (np.exp(edges) if log else edges).tolist()}


def log_event(event: MiningEvent, labels: dict[str, str]) -> None:
    """One INFO line per epoch, from rank 0 only (every rank holds the same event in its history).

    ``labels``: ``{guard name: words}`` for why ids were excluded."""
    if distributed.get_rank() != 0:
        return
    lift = "" if not event.cap_lifted else (f"; max_repeats lifted (the guards keep out "
                                            f"{event.boosted_flagged:.1%} of the prior-boosted samples)")
    if not event.triggered:
        logger.info("hardmine: epoch %d: mining not triggered yet (%d ids seen)%s", event.epoch, event.num_seen, lift)
        return
    head = "mining triggered at epoch" if event.fired else "mining at epoch"
    cut = "n/a" if event.score_cut is None else f"{event.score_cut:.4g}"
    extra = "".join(f"; {n} excluded as {labels.get(r, r)}" for r, n in event.excluded.items() if n)
    ratio = "" if event.draw_ratio is None else f"; mined samples drawn {event.draw_ratio:.2f}x as often next epoch"
    why = f" ({event.reason})" if event.reason and not event.num_hard else ""
    logger.info("hardmine: %s %d: %d hard samples (score >= %s)%s%s%s%s", head, event.epoch, event.num_hard, cut,
                extra, ratio, lift, why)
