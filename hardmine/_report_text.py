"""The text of ``hardmine report`` and ``hardmine validate``: settings in words, tables, the export file."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from hardmine._report import EpochRow, MinedRow, resolve_sources
from hardmine.config import DEFAULT_PRIOR, HardMiningConfig, RepeatFactorPriorConfig
from hardmine.run_record import RunRecord


def _fmt(x: float | None, spec: str = ".4g") -> str:
    return "-" if x is None else format(x, spec)


def describe_config(cfg: HardMiningConfig) -> list[str]:
    """The settings in words, one line each (``hardmine validate`` and the report's head)."""
    t, s, r = cfg.trigger, cfg.select, cfg.resample
    if t.kind == "epoch":
        when = f"mining starts at the end of epoch {t.start_epoch} (0-based) and stays on"
    else:
        better = "decrease" if t.mode == "min" else "increase"
        size = f"{t.threshold:g}" + (" relative" if t.threshold_mode == "rel" else " absolute")
        when = (f"mining starts once {t.monitor} has not {better}d by more than {size} for {t.patience} "
                f"epoch(s) (ReduceLROnPlateau rules, cooldown {t.cooldown}) and stays on")
    if s.kind == "top_k":
        which = (f"as many of the highest-scoring eligible ids as {s.k:.0%} of the ids seen" if s.k < 1 else
                 f"the {int(s.k)} highest-scoring eligible ids")
    elif s.kind == "percentile":
        which = f"eligible ids scoring at or above the {s.percentile:g}th percentile"
    else:
        which = f"eligible ids scoring at or above {s.threshold:g}"
    agg = {"ema": f"EMA (decay {cfg.ema_decay:g})", "mean": "mean", "max": "maximum", "last": "latest value"}
    need = ""
    if cfg.min_observations > 1:
        need = f"; a sample needs {cfg.min_observations} observations to be eligible"
    cap = "no cap" if r.max_repeats is None else f"at most {r.max_repeats} copies of one sample per epoch"
    if r.max_repeats is not None and r.lift_cap_below is not None and r.prior is not None:
        cap += (f" (lifted while the noise guards keep out less than {r.lift_cap_below:.0%} of the samples the "
                "prior boosts)")
    guards = [f"{kind} ({', '.join(f'{k} {v:g}' for k, v in settings.items())})"
              for kind, settings in (cfg.guard.model_dump() if cfg.guard else {}).items() if settings is not None]
    if r.prior is None:
        prior = "frequency prior: off (prior: null)"
    else:
        kind = DEFAULT_PRIOR if r.prior == "auto" else r.prior
        setting = (f"threshold {kind.threshold:g}" if isinstance(kind, RepeatFactorPriorConfig)
                   else f"power {kind.power:g}")
        prior = f"frequency prior: {kind.kind} ({setting})" + (
            " when categories are given (prior: auto)" if r.prior == "auto" else "")
        if r.keep_rare_share is not None:
            prior += (f"; the samples it boosts {r.keep_rare_share:g}x or more keep at least the share of the epoch "
                      "it gives them (keep_rare_share)")
    return [
        when,
        f"selects {which} (score: {agg[cfg.aggregate]} of each sample's loss{need})",
        "noise guards: " + ("; ".join(guards) if guards else "none (guard: null)"),
        f"a mined sample is drawn {r.hard_weight:g}x as often as the rest, {cap}; "
        "the epoch length is unchanged",
        prior,
    ]


def summary(run: RunRecord, file: Path) -> str:
    """The head of the report: settings, ids, ledger and mining in a few lines."""
    cfg = run.config
    lines = [f"hardmine report: {file}"]
    if not cfg.enabled:
        lines.append("  mining was DISABLED in this run (enabled: false): stock sampling throughout")
    kind = {"mapped": "custom sample ids", "fusion": "fusion dataset"}.get(run.id_mode, "dataset indices")
    lines.append(f"  dataset: {run.num_samples} samples, ids: {kind}, seed {run.seed}")
    lines += [f"  {x}" for x in describe_config(cfg)]
    ids, _ = run.mined_counts()
    first = next((e.epoch for e in run.history if e.fired), None)
    since = f"active since epoch {first}" if first is not None else (
        "active" if run.active else "not triggered")
    lines.append(f"  ledger: {len(run.ledger)} ids seen, {run.num_skipped} non-finite losses "
                 f"skipped; {len(run.history)} epochs recorded")
    lines.append(f"  mining: {since}; {run.hard_ids.size} ids mined now, {ids.size} mined in at least "
                 "one epoch")
    last = next((e for e in reversed(run.history) if e.prior_boosted is not None), None)
    if last is not None:
        share = last.prior_boost_share
        split = "" if share is None else (f"; of the draws owed to the boost, {share:.0%} came from the prior and "
                                          f"{1 - share:.0%} from hardness")
        lines.append(f"  prior (epoch {last.epoch}): {last.prior_boosted} samples boosted by their categories, "
                     f"{_fmt(last.prior_draw_share, '.1%')} of next epoch's draws{split}")
    shares = [e.boosted_flagged for e in run.history if e.boosted_flagged is not None]
    if shares:
        lifted = sum(e.cap_lifted for e in run.history)  # only a measured epoch can lift the cap
        lines.append(f"  repeat cap: lifted after {lifted} of the {len(shares)} epochs the guards judged "
                     f"(they kept out {min(shares):.1%}-{max(shares):.1%} of the prior-boosted samples)")
    scales = [e.rare_scale for e in run.history if e.rare_scale is not None]
    if scales:
        raised = [x for x in scales if x > 1.0]
        lines.append(f"  rare share: kept by raising the rare categories' prior in {len(raised)} of {len(scales)} "
                     "epochs" + (f" (by up to {max(raised):.2f}x)" if raised else ""))
    if run.fusion is not None and run.hard_ids.size:
        names, _ = resolve_sources(run, run.hard_ids)
        if any(n is not None for n in names):
            counts = sorted(((names.count(n), str(n)) for n in set(names)), key=lambda c: (-c[0], c[1]))
            lines.append("  mined now per source: " + ", ".join(f"{n} {c}" for c, n in counts))
    return "\n".join(lines) + "\n"


def _table(header: list[str], rows: list[list[str]], right: set[int]) -> str:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        padded = (c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
        return "  ".join(padded).rstrip()

    return "\n".join([line(header)] + [line(r) for r in rows]) + "\n"


def format_epochs(rows: list[EpochRow]) -> str:
    """The per-epoch table."""
    if not rows:
        return "no epoch recorded yet (end_epoch was never called)\n"
    reasons = sorted({k for r in rows for k in r.excluded})
    sources = list(dict.fromkeys(k for r in rows for k in r.per_source))
    header = ["epoch", "status", "hard", "cut", "seen", "eligible"]
    header += [f"excl:{k}" for k in reasons] if len(reasons) > 1 else ["excluded"]
    prior = any(r.prior_draw_share is not None for r in rows)
    header += ["overlap", "churn", "x drawn", "mined draws"] + (["prior draws", "prior boost"] if prior else [])
    cap = any(r.boosted_flagged is not None for r in rows)
    header += ["boosted flagged", "cap"] if cap else []
    rare = any(r.rare_scale is not None for r in rows)
    header += ["rare kept"] if rare else []
    header += [f"draws:{s}" for s in sources] + ["note"]
    body = []
    for r in rows:
        mining = r.status in ("fired", "active")
        cells = [str(r.epoch), r.status, str(r.num_hard), _fmt(r.score_cut), str(r.num_seen),
                 str(r.num_eligible) if mining else "-"]
        if len(reasons) > 1:
            cells += [str(r.excluded.get(k, 0)) for k in reasons]
        else:
            cells.append(str(sum(r.excluded.values())))
        cells += [_fmt(r.overlap_prev, "d"), _fmt(r.churn, ".0%"), _fmt(r.draw_ratio, ".2f"),
                  _fmt(r.mined_draw_share, ".1%")]
        if prior:
            cells += [_fmt(r.prior_draw_share, ".1%"), _fmt(r.prior_boost_share, ".0%")]
        if cap:
            cells += [_fmt(r.boosted_flagged, ".1%"), "lifted" if r.cap_lifted else "-"]
        if rare:
            cells.append("-" if r.rare_scale is None or r.rare_scale <= 1.0 else f"x{r.rare_scale:.2f}")
        cells += [str(r.per_source.get(s, 0)) for s in sources]
        cells.append(r.note or "")
        body.append(cells)
    right = set(range(len(header))) - {1, len(header) - 1}
    out = _table(header, body, right)
    if len(reasons) == 1:
        out += f"(excluded: kept out of selection by the {reasons[0]!r} guard)\n"
    if prior:
        out += ("(prior draws: share of next epoch's draws going to samples the category prior boosts; prior boost: "
                "share of the draws owed to weights above 1 that came from the prior, the rest from hardness)\n")
    if cap:
        out += ("(boosted flagged: share of the prior-boosted samples the noise guards keep out; cap: lifted = the "
                "next epoch was planned without max_repeats, as resample.lift_cap_below allows)\n")
    if rare:
        out += ("(rare kept: the factor on the prior of the rare categories (resample.keep_rare_share) that "
                "kept their share of the epoch from falling below the prior's as mining drew other samples)\n")
    return out


def format_top(rows: list[MinedRow], top: int, total: int) -> str:
    """The ``top`` highest-scoring mined samples."""
    rows = sorted(rows, key=lambda r: (-(r.score if r.score is not None else float("-inf")), r.id))[:top]
    header = ["id", "source", "index", "score", "observations", "epochs mined"]
    body = [[str(r.id), r.source or "-", _fmt(r.index, "d"), _fmt(r.score), str(r.observations),
             str(r.epochs_mined)] for r in rows]
    title = f"hardest mined samples now ({len(rows)} of {total}, by score):\n"
    return title + _table(header, body, {0, 2, 3, 4, 5})


def write_export(rows: list[MinedRow], path: Path) -> None:
    """One row per mined id, as CSV or JSON by the suffix of ``path``."""
    records = [r.as_dict() for r in rows]
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")
        return
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(MinedRow.__dataclass_fields__))
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in rec.items()} for rec in records)
