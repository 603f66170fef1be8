"""`autopeft export`: a trial's adapter as a standard PEFT folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    """Register `export` on the `autopeft` command line."""
    export = subparsers.add_parser(
        "export",
        help="write a trial's adapter as a standard PEFT folder",
        description="Copy a trial's adapter to a folder PeftModel.from_pretrained loads.",
    )
    export.add_argument("run_dir", metavar="RUN_DIR")
    export.add_argument("--trial", type=int, required=True, help="trial number")
    export.add_argument("--out", required=True, help="new or empty folder to write")
    export.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Export the trial; warn on stderr when it was stopped early, since its adapter is only partly trained."""
    from autopeft.export import export_trial
    from autopeft.pruning.artifact import is_pruned_adapter
    from autopeft.storage.run_directory import RunDirectory

    exported = export_trial(RunDirectory.existing(args.run_dir), args.trial, Path(args.out))
    out = exported.folder
    if exported.stopped_early_at is not None:
        print(
            f"autopeft: warning: trial {args.trial} was stopped early at step {exported.stopped_early_at} "
            "(state pruned); its adapter is only partly trained",
            file=sys.stderr,
        )
    if is_pruned_adapter(out):
        print(
            f"exported trial {args.trial} to {out}: a Light-PEFT adapter for the pruned base; load it with "
            f"autopeft.export.load_exported(base, '{out}'), not on the unpruned base"
        )
    else:
        print(f"exported trial {args.trial} to {out}; load it with PeftModel.from_pretrained(base, '{out}')")
    return 0
