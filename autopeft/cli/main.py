"""The `autopeft` command line: search, show, export, audit, dashboard, report.

This is the one place that prints errors: every `AutopeftError` or `AnalysisError` becomes one line on stderr
and exit code 2; Ctrl-C exits 130 after the current write; anything else is a bug with a traceback (exit 1).
Each command lives in its own module with `add_parser(subparsers)`, which sets its `handler`.

Building the parser imports nothing heavy (no torch, optuna, transformers, peft, rich): `--help` and argument
errors answer at once, and each handler imports what its command needs when it runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Sequence

from autopeft import __version__
from autopeft.cli import audit, dashboard, export, report, search, serve, show
from autopeft.errors import AutopeftError

COMMANDS = (search, show, export, audit, dashboard, report, serve)


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
    _configure_logging(args.verbose)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print(
            "autopeft: interrupted; stored results are consistent, run the same command to resume",
            file=sys.stderr,
        )
        return 130
    except Exception as error:
        if not _is_input_error(error):
            raise
        print(f"autopeft: error: {error}", file=sys.stderr)
        return 2


def _configure_logging(verbose: bool) -> None:
    """Log through rich on stderr; imported here, after parsing, because rich takes a noticeable share of a
    `--help` that should answer at once."""
    from rich.console import Console
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False)],
    )
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")


def _is_input_error(error: Exception) -> bool:
    """True for bad input: an `AutopeftError`, or an `AnalysisError` from the audit.

    `autopeft.analysis` is looked up, not imported: importing it loads torch (seconds), and an `AnalysisError`
    can only have been raised once the module that defines it was imported."""
    if isinstance(error, AutopeftError):
        return True
    analysis_errors = sys.modules.get("autopeft.analysis.errors")
    return analysis_errors is not None and isinstance(error, analysis_errors.AnalysisError)
