"""Export a trial's adapter as a standard PEFT folder that `PeftModel.from_pretrained(base, DIR)` loads, and load
an exported adapter back (`load_exported`), re-applying a Light-PEFT pruning plan when the folder carries one."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from peft import PeftModel

from autopeft.errors import CheckpointError, ConfigError
from autopeft.models import load_classifier, load_tokenizer, resolve_model_path
from autopeft.pruning.artifact import base_for_adapter
from autopeft.storage.run_directory import RunDirectory


def export_trial(run_dir: RunDirectory, number: int, out: Path) -> Path:
    """Copy trial `number`'s adapter and plan into `out`; refuses to overwrite a non-empty folder."""
    source = run_dir.trial_dir(number)
    if not source.is_dir():
        known = run_dir.trial_numbers()
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


def load_exported(base: str | Path | torch.nn.Module, folder: str | Path, num_labels: int = 2) -> PeftModel:
    """Load an exported (or trial) adapter on its base model, the way the trial trained it.

    A Light-PEFT adapter ships its pruning plan (`autopeft.pruning.artifact`): its heads and neurons are removed
    from the original checkpoint first (the checkpoint files are never modified), since the adapter fits only the pruned shapes.
    """
    folder = Path(folder)
    if not (folder / "adapter_config.json").is_file():
        raise CheckpointError(f"{folder}: expected a PEFT adapter folder with adapter_config.json")
    if isinstance(base, torch.nn.Module):
        model = base
    else:
        path = resolve_model_path(str(base))
        model = load_classifier(path, num_labels, load_tokenizer(path).pad_token_id)
    return PeftModel.from_pretrained(base_for_adapter(model, folder), folder)
