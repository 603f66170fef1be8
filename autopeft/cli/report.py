"""`autopeft report`: the dashboard's figures as one self-contained HTML file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from autopeft.errors import ConfigError


def add_parser(subparsers: Any) -> None:
    """Register `report` on the `autopeft` command line."""
    report = subparsers.add_parser(
        "report",
        help="write the dashboard's figures as one self-contained HTML file",
        description="Write a static HTML report (plotly.js embedded, no network needed) of a run directory.",
    )
    report.add_argument("run_dir", metavar="RUN_DIR")
    report.add_argument("--out", required=True, help="HTML file to write, e.g. report.html")
    report.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Check --out, then write the report (building it takes seconds, and a folder in its place would only fail
    at the final rename)."""
    from autopeft.dashboards.report import write_report
    from autopeft.storage.run_directory import RunDirectory

    out = Path(args.out)
    run_dir = RunDirectory.existing(args.run_dir)
    _check_out(out)
    out = write_report(run_dir, out)
    print(f"report written to {out}")
    return 0


def _check_out(out: Path) -> None:
    """`out` must be a file path (new or replaced) under a folder."""
    if out.is_dir():
        raise ConfigError(
            f"--out {out}: is a folder; expected an HTML file path such as {out / 'report.html'}"
        )
    parent = next(folder for folder in out.absolute().parents if folder.exists())
    if not parent.is_dir():
        raise ConfigError(f"--out {out}: {parent} is a file; expected a path under a folder")
