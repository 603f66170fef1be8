"""`autopeft search`: run or resume a study until it holds N finished trials, on the embedded Optuna driver or
on Ray, then write the static report and print the Pareto table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from autopeft.cli.arguments import positive_int
from autopeft.cli.show import show_run


def add_parser(subparsers: Any) -> None:
    """Register `search` on the `autopeft` command line."""
    search = subparsers.add_parser(
        "search",
        help="run or resume a multi-objective search",
        description="Run or resume a study until it holds N finished trials.",
    )
    search.add_argument("space", metavar="SPACE.yaml", help="search-space YAML file")
    search.add_argument(
        "--trials",
        type=positive_int,
        metavar="N",
        help="finished trials to reach, pruned and failed ones included (interrupted ones are not); "
        "default: the space's",
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
    ray.add_argument("--concurrency", type=positive_int, default=1, help="trials running at once")
    ray.add_argument("--asha", action="store_true", help="stop weak trials early on the task metric (ASHA)")
    search.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Validate everything, run the trials still missing, write the report and print the front."""
    import optuna

    from autopeft.dashboards.report import write_report
    from autopeft.search.search_setup import SearchRequest, SearchSetup

    request = SearchRequest(
        Path(args.space),
        args.trials,
        Path(args.out) if args.out else None,
        args.storage,
        args.study,
        args.seed,
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the drivers log each trial themselves
    setup = SearchSetup.prepare(request)
    if args.backend == "ray":
        from autopeft.search.ray_driver import run_ray_search

        run_ray_search(setup, args)
    else:
        _run_embedded(setup, quiet=args.quiet)
    report = write_report(setup.run_dir, setup.run_dir.root / "report.html")
    print(
        f"run directory: {setup.run_dir.root}\ndashboard report: {report} "
        f"(live: autopeft dashboard {setup.run_dir.root})"
    )
    return show_run(setup.run_dir.root, include_dominated=False, as_json=False)


def _run_embedded(setup: Any, quiet: bool) -> None:
    """The embedded Optuna driver, with a rich progress display on a terminal and a log line per dev
    evaluation elsewhere (logs, CI, nohup)."""
    from autopeft.search.optuna_driver import run_search
    from autopeft.search.progress import LogProgress, RichSearchProgress, SilentProgress

    study = setup.open_study()
    if quiet:
        run_search(setup, SilentProgress(), study)
    elif sys.stderr.isatty():
        with RichSearchProgress(setup.trials, setup.finished_count(study)) as progress:
            run_search(setup, progress, study)
    else:
        run_search(setup, LogProgress(), study)
