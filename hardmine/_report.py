"""What ``hardmine report`` shows, as plain data: the state file, one row per epoch, one per mined id.

No printing and no plotting here: :mod:`hardmine.cli` formats these rows as a table or a CSV/JSON file, and
:mod:`hardmine._report_plot` draws them.
"""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from hardmine._checkpoints import STATE_FILE, checkpoints
from hardmine.event import MiningEvent
from hardmine.fusion import decode_ids
from hardmine.run_record import RunRecord


def find_state_file(path: str | PathLike[str]) -> tuple[Path, str | None]:
    """The miner file behind ``path`` and a note on how it was found (None when ``path`` is the file).

    ``path`` is a file written by ``HardMiner.save``, a checkpoint folder holding ``hardmine_state.npz``,
    or an output folder of ``checkpoint-<step>`` folders (the latest one holding the file is used).

    >>> find_state_file("/no/such/run")
    Traceback (most recent call last):
    ...
    FileNotFoundError: no such file or folder: '/no/such/run'
    """
    p = Path(path)
    if p.is_file():
        return p, None
    if not p.exists():
        raise FileNotFoundError(f"no such file or folder: {str(p)!r}")
    if not p.is_dir():
        raise ValueError(f"{str(p)!r} is neither a file nor a folder")
    direct = p / STATE_FILE
    if direct.is_file():
        return direct, None
    steps = checkpoints(p)
    holding = [(s, c) for s, c in steps if (c / STATE_FILE).is_file()]
    if not holding:
        where = (f"none of its {len(steps)} checkpoint-* folders holds one" if steps
                 else "and it has no checkpoint-* folders")
        raise FileNotFoundError(f"no {STATE_FILE} in folder {str(p)!r} ({where}); expected a file written "
                                f"by HardMiner.save, a checkpoint folder holding {STATE_FILE}, or a training "
                                "output folder of checkpoint-* folders")
    step, folder = holding[0]
    note = f"using {folder.name}, the latest checkpoint holding {STATE_FILE}"
    if steps[0][0] != step:
        note += f" ({steps[0][1].name} is newer but holds none)"
    return folder / STATE_FILE, note


@dataclass(frozen=True)
class EpochRow:
    """One line of the per-epoch table."""

    epoch: int
    status: str  # disabled | waiting | fired | active
    num_hard: int
    score_cut: float | None
    num_seen: int
    num_eligible: int
    excluded: dict[str, int]
    per_source: dict[str, int]
    overlap_prev: int | None
    churn: float | None  # share of this epoch's hard set that was not in the previous one
    draw_ratio: float | None
    mined_draw_share: float | None  # share of the next epoch's draws that go to mined samples
    note: str | None
    prior_draw_share: float | None = None  # share of the next epoch's draws that go to prior-boosted samples
    prior_boost_share: float | None = None  # share of the boost that came from the prior (the rest: hardness)
    boosted_flagged: float | None = None  # share of the prior-boosted samples the noise guards keep out
    cap_lifted: bool = False  # the next epoch was planned without max_repeats
    rare_scale: float | None = None  # factor that kept the rare categories' share (resample.keep_rare_share)


def _status(e: MiningEvent) -> str:
    if e.reason == "disabled":
        return "disabled"
    if e.fired:
        return "fired"
    return "active" if e.triggered else "waiting"


def epoch_rows(history: list[MiningEvent]) -> list[EpochRow]:
    """The per-epoch table from ``miner.history``."""
    rows: list[EpochRow] = []
    for e in history:
        churn = None  # undefined for a first set: there is nothing to churn from
        if e.overlap_prev is not None and e.num_hard:
            churn = (e.num_hard - e.overlap_prev) / e.num_hard
        rows.append(EpochRow(epoch=e.epoch, status=_status(e), num_hard=e.num_hard, score_cut=e.score_cut,
                             num_seen=e.num_seen, num_eligible=e.num_eligible, excluded=dict(e.excluded),
                             per_source=dict(e.per_source), overlap_prev=e.overlap_prev, churn=churn,
                             draw_ratio=e.draw_ratio, mined_draw_share=e.mined_draw_share,
                             note=None if e.reason in (None, "disabled") else e.reason,
                             prior_draw_share=e.prior_draw_share, prior_boost_share=e.prior_boost_share,
                             boosted_flagged=e.boosted_flagged, cap_lifted=e.cap_lifted, rare_scale=e.rare_scale))
    return rows


@dataclass(frozen=True)
class MinedRow:
    """One line of ``--export``: a sample that was mined in at least one epoch."""

    id: int
    source: str | None
    index: int | None
    score: float | None
    observations: int
    epochs_mined: int
    mined_now: bool
    first_loss: float | None
    last_seen: int | None

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def resolve_sources(run: RunRecord, ids: np.ndarray) -> tuple[list[str | None], list[int | None]]:
    """Source name and index of each id: decoded through a fusion description, else the dataset index.

    With custom sample ids (items carrying their own ``sample_id``) the index is unknown: None.
    """
    if run.fusion is not None:
        names, indices = decode_ids(run.fusion, ids)
        return [str(n) for n in names], [int(i) for i in np.asarray(indices)]
    if run.custom_ids:
        return [None] * ids.size, [None] * ids.size
    return [None] * ids.size, [int(i) for i in ids]


def mined_rows(run: RunRecord) -> list[MinedRow]:
    """Every id mined in any epoch, ascending, with its ledger statistics and how often it was mined."""
    ids, epochs = run.mined_counts()
    stats = run.ledger
    pos = np.searchsorted(stats.ids, ids)
    pos_c = np.minimum(pos, max(stats.ids.size - 1, 0))
    known = (stats.ids.size > 0) & (stats.ids[pos_c] == ids) if ids.size else np.zeros(0, bool)
    now = np.isin(ids, run.hard_ids)
    sources, indices = resolve_sources(run, ids)
    rows = []
    for j in range(ids.size):  # export only: one row per mined id, not a training path
        k = int(pos_c[j])
        ok = bool(known[j])
        rows.append(MinedRow(id=int(ids[j]), source=sources[j], index=indices[j],
                             score=float(stats.scores[k]) if ok else None,
                             observations=int(stats.counts[k]) if ok else 0, epochs_mined=int(epochs[j]),
                             mined_now=bool(now[j]), first_loss=float(stats.first[k]) if ok else None,
                             last_seen=int(stats.last_seen[k]) if ok else None))
    return rows
