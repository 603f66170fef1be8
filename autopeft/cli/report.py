"""`autopeft report`: the dashboard's figures as one self-contained HTML file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


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
    from autopeft.dashboards.report import write_report
    from autopeft.storage.run_directory import RunDirectory

    out = write_report(RunDirectory.existing(args.run_dir), Path(args.out))
    print(f"report written to {out}")
    return 0
