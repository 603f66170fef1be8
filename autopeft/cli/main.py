"""The `autopeft` command line: search, show, export, audit, dashboard, report.

This is the one place that prints errors: every `AutopeftError` or `AnalysisError` becomes one line on stderr
and exit code 2; Ctrl-C exits 130 after the current write; anything else is a bug with a traceback (exit 1).
Each command lives in its own module with `add_parser(subparsers)`, which sets its `handler`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Sequence

import optuna
from rich.console import Console
from rich.logging import RichHandler

from autopeft import __version__
from autopeft.analysis.errors import AnalysisError
from autopeft.cli import audit, dashboard, export, report, search, show
from autopeft.errors import AutopeftError

COMMANDS = (search, show, export, audit, dashboard, report)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: global flags and one subcommand per module of `COMMANDS`."""
    parser = argparse.ArgumentParser(prog="autopeft", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--version", action="version", version=f"autopeft {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


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
