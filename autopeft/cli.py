"""The `autopeft` command line: search, show, export, audit.

This is the one place that prints errors: every `AutopeftError` or `AnalysisError` becomes one line on stderr
and exit code 2; Ctrl-C exits 130 after the current write; anything else is a bug with a traceback (exit 1).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import optuna
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from autopeft import __version__
from autopeft.analysis.errors import AnalysisError
from autopeft.errors import AutopeftError

logger = logging.getLogger("autopeft")


def _search(args: argparse.Namespace) -> int:
    from autopeft.search.progress import RichSearchProgress, SilentProgress
    from autopeft.search.search_setup import SearchRequest, SearchSetup

    request = SearchRequest(
        Path(args.space),
        args.trials,
        Path(args.out) if args.out else None,
        args.storage,
        args.study,
        args.seed,
    )
    setup = SearchSetup.prepare(request)
    if args.backend == "ray":
        from autopeft.search.ray_driver import run_ray_search

        run_ray_search(setup, args)
    else:
        from autopeft.search.optuna_driver import run_search

        study = setup.open_study()
        if sys.stderr.isatty() and not args.quiet:
            with RichSearchProgress(setup.trials, setup.finished_count(study)) as progress:
                run_search(setup, progress, study)
        else:
            run_search(setup, SilentProgress(), study)
    from autopeft.dashboards.report import write_report

    report = write_report(setup.run_dir, setup.run_dir.root / "report.html")
    print(
        f"run directory: {setup.run_dir.root}\ndashboard report: {report} "
        f"(live: autopeft dashboard {setup.run_dir.root})"
    )
    return _show_run(setup.run_dir.root, include_dominated=False, as_json=False)


def _show(args: argparse.Namespace) -> int:
    return _show_run(Path(args.run_dir), include_dominated=args.all, as_json=args.json)


def _show_run(root: Path, include_dominated: bool, as_json: bool) -> int:
    from autopeft.pareto import trial_rows
    from autopeft.run_directory import RunDirectory

    run_dir = RunDirectory.existing(root)
    info = run_dir.info()
    rows = trial_rows(run_dir.load_study(), info["objectives"], info["directions"])
    shown = [r for r in rows if r.on_front or (include_dominated and r.state == "complete")]
    if as_json:
        print(json.dumps([r.to_dict() for r in shown], indent=2))
        return 0
    table = Table(title=f"Pareto front of {info['study']} ({len(shown)} of {len(rows)} trials)")
    extra = [] if "trainable_parameters" in info["objectives"] else ["trainable_parameters"]
    for column in ["trial", *info["objectives"], *extra, "front", "plan"]:
        table.add_column(column, justify="left" if column == "plan" else "right")
    for row in sorted(shown, key=lambda r: r.number):
        values = [_format_value(row.values[name]) for name in info["objectives"]]
        values += [f"{row.trainable_parameters:,}" for _ in extra]
        table.add_row(str(row.number), *values, "yes" if row.on_front else "", row.summary)
    Console(width=160).print(table)
    return 0


def _format_value(value: float) -> str:
    """Counts print as grouped integers, metrics with four significant digits."""
    return f"{value:,.0f}" if value >= 1000 and float(value).is_integer() else f"{value:.4g}"


def _export(args: argparse.Namespace) -> int:
    from autopeft.export import PRUNING_PLAN, export_trial
    from autopeft.run_directory import RunDirectory

    out = export_trial(RunDirectory.existing(args.run_dir), args.trial, Path(args.out))
    if (out / PRUNING_PLAN).is_file():
        print(
            f"exported trial {args.trial} to {out}: a Light-PEFT adapter for the pruned base; load it with "
            f"autopeft.export.load_exported(base, '{out}'), not on the unpruned base"
        )
    else:
        print(f"exported trial {args.trial} to {out}; load it with PeftModel.from_pretrained(base, '{out}')")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autopeft", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"autopeft {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    search = commands.add_parser(
        "search",
        help="run or resume a multi-objective search",
        description="Run or resume a study until it holds N finished trials.",
    )
    search.add_argument("space", metavar="SPACE.yaml", help="search-space YAML file")
    search.add_argument(
        "--trials", type=_positive_int, help="finished trials to reach (default: the space's)"
    )
    search.add_argument("--out", help="run directory (default: runs/<study>)")
    search.add_argument(
        "--storage", help="RDB URL such as postgresql://...; default: a journal file in --out"
    )
    search.add_argument("--study", help="study name (default: the space file's name)")
    search.add_argument("--seed", type=int, help="overrides the space's seed")
    search.add_argument(
        "--backend", choices=["optuna", "ray"], default="optuna", help="driver (default optuna)"
    )
    search.add_argument("--quiet", action="store_true", help="no progress display")
    ray = search.add_argument_group("ray backend")
    ray.add_argument("--address", help="HOST:PORT of a running Ray cluster (default: start a local one)")
    ray.add_argument("--gpus-per-trial", type=float, default=0.0, help="GPUs per trial, fractions allowed")
    ray.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs per trial")
    ray.add_argument("--concurrency", type=_positive_int, default=1, help="trials running at once")
    ray.add_argument("--asha", action="store_true", help="stop weak trials early on the task metric (ASHA)")
    search.set_defaults(handler=_search)

    show = commands.add_parser(
        "show", help="print a run's Pareto front", description="Print the Pareto front of a run directory."
    )
    show.add_argument("run_dir", metavar="RUN_DIR")
    show.add_argument("--json", action="store_true", help="print JSON instead of a table")
    show.add_argument("--all", action="store_true", help="include dominated complete trials")
    show.set_defaults(handler=_show)

    export = commands.add_parser(
        "export",
        help="write a trial's adapter as a standard PEFT folder",
        description="Copy a trial's adapter to a folder PeftModel.from_pretrained loads.",
    )
    export.add_argument("run_dir", metavar="RUN_DIR")
    export.add_argument("--trial", type=int, required=True, help="trial number")
    export.add_argument("--out", required=True, help="new or empty folder to write")
    export.set_defaults(handler=_export)
    _add_optional_commands(commands)
    return parser


# Commands that live in their own modules: each has `add_parser(subparsers)` and sets `handler`.
COMMAND_MODULES: tuple[str, ...] = ("autopeft.audit_command", "autopeft.dashboard_command")


def _add_optional_commands(commands: argparse._SubParsersAction) -> None:
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).add_parser(commands)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `autopeft` script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False)],
    )
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return int(args.handler(args) or 0)
    except (AutopeftError, AnalysisError) as error:
        print(f"autopeft: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "autopeft: interrupted; stored results are consistent, run the same command to resume",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
