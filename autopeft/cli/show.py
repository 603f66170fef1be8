"""`autopeft show`: a run's Pareto front (or all its complete trials) as a table or JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    """Register `show` on the `autopeft` command line."""
    show = subparsers.add_parser(
        "show", help="print a run's Pareto front", description="Print the Pareto front of a run directory."
    )
    show.add_argument("run_dir", metavar="RUN_DIR")
    show.add_argument("--json", action="store_true", help="print JSON instead of a table")
    show.add_argument("--all", action="store_true", help="include dominated complete trials")
    show.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    return show_run(Path(args.run_dir), include_dominated=args.all, as_json=args.json)


def show_run(root: Path, include_dominated: bool, as_json: bool) -> int:
    """Print the front of the run directory `root` (with the dominated complete trials when asked)."""
    from rich.console import Console
    from rich.table import Table

    from autopeft.pareto import trial_rows
    from autopeft.storage.run_directory import RunDirectory

    run_dir = RunDirectory.existing(root)
    info = run_dir.info()
    rows = trial_rows(run_dir.load_study(), info["objectives"], info["directions"])
    shown = [r for r in rows if r.on_front or (include_dominated and r.state == "complete")]
    if as_json:
        print(json.dumps([r.to_dict() for r in shown], indent=2))
        return 0
    table = Table(title=_title(info["study"], len(shown), len(rows), include_dominated))
    extra = [] if "trainable_parameters" in info["objectives"] else ["planned_trainable_parameters"]
    for column in ["trial", *info["objectives"], *extra, "front", "plan"]:
        table.add_column(column, justify="left" if column == "plan" else "right")
    for row in sorted(shown, key=lambda r: r.number):
        values = [_format_value(row.values[name]) for name in info["objectives"]]
        values += [f"{row.planned_trainable_parameters:,}" for _ in extra]
        table.add_row(str(row.number), *values, "yes" if row.on_front else "", row.summary)
    Console(width=160).print(table)
    return 0


def _title(study: str, shown: int, total: int, include_dominated: bool) -> str:
    """What the table holds: the front, or with --all every complete trial (the front marked)."""
    if include_dominated:
        return f"Complete trials of {study}, Pareto front marked ({shown} of {total} trials)"
    return f"Pareto front of {study} ({shown} of {total} trials)"


def _format_value(value: float) -> str:
    """Counts print as grouped integers, metrics with four significant digits."""
    return f"{value:,.0f}" if value >= 1000 and float(value).is_integer() else f"{value:.4g}"
