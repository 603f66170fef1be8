"""The `autopeft` command line: one module per command, wired together in `autopeft.cli.main`."""

from autopeft.cli.main import main

__all__ = ["main"]
