"""The ``hardmine`` command: ``report`` shows what mining did in a run, ``validate`` checks a config.

``report`` reads a file written by :meth:`hardmine.HardMiner.save` (or the ``hardmine_state.npz`` the
Hugging Face adapter writes into each checkpoint folder) and prints one line per epoch; ``--plot`` draws
the same history (needs matplotlib: ``pip install 'hardmine[report]'``), ``--export`` writes one row per
mined sample. ``validate`` reads the ``custom.hard_sample_mining`` block of a training YAML and prints the
resolved settings. Errors go to stderr with exit code 2.

Example:
    >>> import pathlib, tempfile
    >>> cfg = pathlib.Path(tempfile.mkdtemp()) / "train.yaml"
    >>> _ = cfg.write_text("custom:\\n  hard_sample_mining:\\n    trigger: {kind: epoch, start_epoch: 1}\\n")
    >>> main(["validate", str(cfg)])  # doctest: +ELLIPSIS
    ok: ...train.yaml: custom.hard_sample_mining is valid
    mining starts at the end of epoch 1 (0-based) and stays on
    ...
    0
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

__all__ = ["main"]

_DESCRIPTION = """\
hard-sample mining: see what it did, check how it is configured.

  hardmine report PATH                  per-epoch table of a run (PATH: a saved miner or a checkpoint folder)
  hardmine report PATH --plot r.png     ... and a picture of it (needs: pip install 'hardmine[report]')
  hardmine report PATH --export m.csv   ... and one row per mined sample (.csv or .json)
  hardmine validate train.yaml          check the custom.hard_sample_mining block and print it resolved
"""

_REPORT_HELP = """\
Print what mining did in a run, epoch by epoch.

PATH is one of
  - a file written by HardMiner.save(path)
  - a checkpoint folder holding hardmine_state.npz (written by the Hugging Face adapter)
  - a training output folder of checkpoint-* folders (the latest one holding the file is used)

Columns: status (waiting = trigger not fired yet, fired = mining started at this epoch, active), hard (size
of the mined set), cut (lowest score in it), seen / eligible (ids in the ledger / ids that could be mined),
excl:<guard> (ids the unguarded selection would have mined that this noise guard kept out), overlap (ids
shared with the previous epoch's set) and churn (share of the set that is new), x drawn (a mined sample is
drawn this many times as often as another next epoch), mined draws (share of next epoch's draws that go to
mined samples), then draws per source (fusion runs).
"""

_VALIDATE_HELP = """\
Check the hard-sample mining block of a training config and print the resolved settings.

The block is read from custom.hard_sample_mining (the ms-swift / training-YAML place), from a top-level
hard_sample_mining key, or from the whole file when it is a bare block. Unknown keys and out-of-range
values are errors that name the field.
"""


class _UsageError(Exception):
    """A problem with the user's input: printed as one line, exit code 2, no traceback."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _build_parser() -> argparse.ArgumentParser:
    from hardmine import __version__

    raw = argparse.RawDescriptionHelpFormatter
    parser = _Parser(prog="hardmine", description=_DESCRIPTION, formatter_class=raw)
    parser.add_argument("--version", action="version", version=f"hardmine {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    rep = sub.add_parser("report", help="per-epoch table, plot and export of a saved miner or checkpoint",
                         description=_REPORT_HELP, formatter_class=raw)
    rep.add_argument("path", metavar="PATH", help="a saved miner file or a checkpoint / output folder")
    rep.add_argument("--plot", metavar="FILE.png",
                     help="write a figure: score distribution with the cut, hard-set size and churn, "
                          "draws per sample before/after mining, shares of the draws (needs matplotlib)")
    rep.add_argument("--export", metavar="FILE.csv|FILE.json",
                     help="write one row per mined id: id, source, index, score, observations, epochs mined, "
                          "mined now, first loss, last seen epoch")
    rep.add_argument("--top", metavar="N", type=int, default=10,
                     help="list the N highest-scoring samples of the current mined set "
                          "(default: 10; 0: none)")

    val = sub.add_parser("validate", help="check a training config's hard_sample_mining block",
                         description=_VALIDATE_HELP, formatter_class=raw)
    val.add_argument("config", metavar="CONFIG.yaml",
                     help="a training YAML (or a bare hard_sample_mining block)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``hardmine`` command with ``argv`` (default: ``sys.argv[1:]``); returns the exit code.

    >>> main(["report", "/no/such/run.npz"])
    2
    """
    parser = _build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        code = _report(args, sys.stdout) if args.command == "report" else _validate(Path(args.config), sys.stdout)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler below, not at interpreter exit
        return code
    except _UsageError as e:
        print(f"hardmine {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`hardmine report ... | head`): stop quietly, as cat does
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's last flush must not fail again
        return 0


# ---------------------------------------------------------------------------------------------- report
def _load(path: str) -> tuple[Any, Path]:
    from hardmine._report import find_state_file
    from hardmine.run_record import RunRecord

    try:
        file, note = find_state_file(path)
    except (FileNotFoundError, ValueError) as e:
        raise _UsageError(str(e)) from None
    if note:
        print(f"hardmine report: {note}", file=sys.stderr)
    try:
        return RunRecord.load(file), file
    except OSError as e:
        raise _UsageError(f"cannot read {str(file)!r} ({e.strerror or e})") from None
    except ValueError as e:
        raise _UsageError(f"{e}; expected a file written by HardMiner.save or a checkpoint's "
                          "hardmine_state.npz") from None
    except Exception as e:  # a truncated or foreign file can fail anywhere inside numpy/zipfile
        raise _UsageError(f"cannot read {str(file)!r} as a hardmine state file "
                          f"({type(e).__name__}: {e})") from None


def _report(args: argparse.Namespace, out: TextIO) -> int:
    from hardmine._report import epoch_rows, mined_rows
    from hardmine._report_text import format_epochs, format_top, summary, write_export

    if args.top < 0:
        raise _UsageError(f"--top must be >= 0, but got {args.top}")
    plot = _check_output(args.plot, (".png",), "--plot") if args.plot else None
    export = _check_output(args.export, (".csv", ".json"), "--export") if args.export else None
    draw = None
    if plot is not None:  # fail before printing anything when matplotlib is missing
        try:
            from hardmine._report_plot import plot_report
        except ImportError as e:
            raise _UsageError(f"--plot needs matplotlib ({e}); install it with: "
                              "pip install 'hardmine[report]'") from None
        draw = plot_report
    run, file = _load(args.path)
    rows = mined_rows(run) if (export is not None or args.top) else []
    out.write(summary(run, file))
    out.write("\n")
    out.write(format_epochs(epoch_rows(run.history)))
    if args.top and run.hard_ids.size:
        out.write("\n")
        out.write(format_top([r for r in rows if r.mined_now], args.top, int(run.hard_ids.size)))
    if export is not None:
        _writing(export, lambda: write_export(rows, export))
        out.write(f"\nwrote {len(rows)} mined ids to {export}\n")
    if draw is not None and plot is not None:
        title = file.name if file.name != "hardmine_state.npz" else file.parent.name
        _writing(plot, lambda: draw(run, plot, title=title))
        out.write(f"wrote plot to {plot}\n")
    return 0


def _writing(path: Path, write: Any) -> None:
    """Run ``write()``; a file system error becomes a usage error that names ``path``."""
    try:
        write()
    except OSError as e:
        raise _UsageError(f"cannot write {str(path)!r} ({e.strerror or e})") from None


def _check_output(name: str, suffixes: tuple[str, ...], flag: str) -> Path:
    p = Path(name)
    if p.suffix.lower() not in suffixes:
        raise _UsageError(f"{flag} must name a {' or '.join(suffixes)} file, but got {name!r}")
    if p.parent != Path("") and not p.parent.is_dir():
        raise _UsageError(f"{flag}: folder {str(p.parent)!r} does not exist")
    return p


# ---------------------------------------------------------------------------------------------- validate
def _block_prefix(data: Any) -> str:
    if isinstance(data, dict):
        if isinstance(data.get("custom"), dict):
            return "custom.hard_sample_mining"
        if "hard_sample_mining" in data:
            return "hard_sample_mining"
    return "(bare block)"


def _explain(err: Any) -> str:
    """One pydantic error as ``field.path: message (got value)``, without the union tag in the path."""
    from hardmine import _config_sections as sections
    from hardmine.config import HardMiningConfig

    loc = [str(p) for p in err["loc"]]
    tags = {"trigger": ("epoch", "plateau"), "select": ("top_k", "percentile", "threshold")}
    if len(loc) > 1 and loc[1] in tags.get(loc[0], ()):
        del loc[1]
    if loc[:2] == ["resample", "prior"] and len(loc) > 2 and loc[2] in ("auto", "repeat_factor", "class_balanced"):
        del loc[2]
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        models: list[Any] = [m for m in vars(sections).values() if isinstance(m, type) and hasattr(m, "model_fields")]
        known = {f for m in [*models, HardMiningConfig] for f in m.model_fields}
        close = difflib.get_close_matches(loc[-1], sorted(known), n=1)
        return f"{'.'.join(loc)}: unknown key{f' (did you mean {close[0]!r}?)' if close else ''}"
    got = err.get("input")
    return f"{'.'.join(loc)}: {msg}" + ("" if repr(got) in msg or str(got) in msg else f" (got {got!r})")


def _validate(path: Path, out: TextIO) -> int:
    import yaml
    from pydantic import ValidationError

    from hardmine._report_text import describe_config
    from hardmine.config import HardMiningConfig, load_yaml_block

    try:
        block = load_yaml_block(path, "hard_sample_mining", HardMiningConfig.model_fields)
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise _UsageError(str(e)) from None
    except yaml.YAMLError as e:
        raise _UsageError(f"{str(path)!r} is not valid YAML: {e}") from None
    except (ValueError, OSError) as e:
        raise _UsageError(str(e)) from None
    prefix = _block_prefix(data)
    if block is None:
        custom = data.get("custom", {}) if isinstance(data, dict) else {}
        close = difflib.get_close_matches("hard_sample_mining", [str(k) for k in custom], n=1)
        hint = f"; did you mean custom.{close[0]} -> custom.hard_sample_mining?" if close else ""
        out.write(f"ok: {path}: no custom.hard_sample_mining block, so mining is DISABLED "
                  f"(stock training){hint}\n")
        return 0
    try:
        cfg = HardMiningConfig.model_validate(block)
    except ValidationError as e:
        lines = [f"{str(path)!r}: {prefix} is invalid ({e.error_count()} error(s)):"]
        head = "" if prefix == "(bare block)" else prefix + "."
        lines += [f"  {head}{_explain(err)}" for err in e.errors()]
        raise _UsageError("\n".join(lines)) from None
    out.write(f"ok: {path}: {prefix} is valid\n")
    if not cfg.enabled:
        out.write("mining is DISABLED (enabled: false): the adapter installs nothing, training is stock\n")
    else:
        out.write("".join(f"{x}\n" for x in describe_config(cfg)))
        seed = "the training seed" if cfg.seed is None else str(cfg.seed)
        out.write(f"seed: {seed}\n")
    out.write("\nresolved settings:\n")
    out.write(cfg.to_yaml())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
