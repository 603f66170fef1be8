"""Export a trial's adapter as a standard PEFT folder that `PeftModel.from_pretrained(base, DIR)` loads."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from autopeft.errors import CheckpointError, ConfigError
from autopeft.run_directory import RunDirectory


def export_trial(run_dir: RunDirectory, number: int, out: Path) -> Path:
    """Copy trial `number`'s adapter and plan into `out`; refuses to overwrite a non-empty folder."""
    source = run_dir.trial_dir(number)
    if not source.is_dir():
        known = sorted(int(p.name) for p in (run_dir.root / "trials").glob("*") if p.name.isdigit())
        raise ConfigError(f"{run_dir.root}: --trial {number}: no such trial; expected one of {known}")
    adapter = source / "adapter"
    if not (adapter / "adapter_config.json").is_file():
        raise CheckpointError(f"{adapter}: no adapter was saved for trial {number} (it did not complete)")
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out}: exists and is not empty; expected a new or empty folder")
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(adapter, staging)
    shutil.copy2(source / "plan.json", staging / "autopeft_plan.json")
    if out.exists():
        out.rmdir()
    os.replace(staging, out)
    return out
