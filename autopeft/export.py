"""Export a trial's adapter as a standard PEFT folder that `PeftModel.from_pretrained(base, DIR)` loads, and load
an exported adapter back (`load_exported`), re-applying a Light-PEFT pruning plan when the folder carries one."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel

from autopeft.errors import CheckpointError, ConfigError
from autopeft.models import load_causal_lm, load_classifier, load_tokenizer, resolve_model_path
from autopeft.plan import PeftPlan
from autopeft.pruning.artifact import base_for_adapter
from autopeft.storage.atomic_files import read_json
from autopeft.storage.run_directory import RunDirectory


@dataclass(frozen=True)
class ExportedTrial:
    """Where a trial's adapter was exported, and the step its training stopped at when it was stopped early."""

    folder: Path
    stopped_early_at: int | None


def export_trial(run_dir: RunDirectory, number: int, out: Path) -> ExportedTrial:
    """Copy trial `number`'s adapter and plan into `out`, a new or empty folder; everything is checked first.

    A trial stopped early (state pruned) is exported, not refused: the user asked for it by number and its adapter
    loads like any other. Its step is returned so that the caller can warn that the adapter is partly trained."""
    source = run_dir.trial_dir(number)
    if not source.is_dir():
        known = run_dir.trial_numbers()
        raise ConfigError(f"{run_dir.root}: --trial {number}: no such trial; expected one of {known}")
    outcome = _finished_outcome(source, number)
    adapter = source / "adapter"
    if not (adapter / "adapter_config.json").is_file():
        raise CheckpointError(f"{adapter}: no adapter was saved for trial {number} (it did not complete)")
    if not isinstance(read_json(adapter / "adapter_config.json"), dict):
        raise CheckpointError(
            f"{adapter / 'adapter_config.json'}: expected a JSON object (a PEFT adapter config)"
        )
    _read_plan(source / "plan.json")
    _check_out(out)
    _copy_atomically(adapter, source / "plan.json", out)
    return ExportedTrial(out, _stopped_at(outcome) if outcome["state"] == "pruned" else None)


def _copy_atomically(adapter: Path, plan: Path, out: Path) -> None:
    """The adapter and its plan into a staging folder, then swapped in: a failed copy leaves nothing behind."""
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        shutil.copytree(adapter, staging)
        shutil.copy2(plan, staging / "autopeft_plan.json")
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _finished_outcome(source: Path, number: int) -> dict[str, Any]:
    """metrics.json of a finished trial that saved an adapter (complete, or stopped early)."""
    path = source / "metrics.json"
    if not path.is_file():
        raise CheckpointError(
            f"{path}: file not found; trial {number} has not finished (it is running or was interrupted)"
        )
    outcome = read_json(path)
    state = outcome.get("state") if isinstance(outcome, dict) else None
    if state not in ("complete", "pruned", "failed"):
        raise ConfigError(f"{path}: state: expected 'complete', 'pruned' or 'failed', got {state!r}")
    if state == "failed":
        raise CheckpointError(
            f"{source}: trial {number} failed ({outcome.get('reason') or 'no reason recorded'}) and saved no "
            "adapter; expected a complete trial"
        )
    return outcome


def _stopped_at(outcome: dict[str, Any]) -> int:
    """The optimizer step a stopped trial reached: its `steps` metric, else its last evaluation."""
    steps = (outcome.get("metrics") or {}).get("steps")
    curve = outcome.get("curve") or [{}]
    return int(steps if steps is not None else curve[-1].get("step", 0))


def _read_plan(path: Path) -> PeftPlan:
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found; expected the trial's plan")
    return PeftPlan.from_json(path.read_text(encoding="utf-8"), source=str(path))


def _check_out(out: Path) -> None:
    """`out` must be a new or empty folder, under a folder (not a file)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file; expected a new or empty folder")
    if out.is_dir() and any(out.iterdir()):
        raise ConfigError(f"--out {out}: exists and is not empty; expected a new or empty folder")
    parent = next(folder for folder in out.absolute().parents if folder.exists())
    if not parent.is_dir():
        raise ConfigError(f"--out {out}: {parent} is a file; expected a path under a folder")


def load_exported(base: str | Path | torch.nn.Module, folder: str | Path, num_labels: int = 2) -> PeftModel:
    """Load an exported (or trial) adapter on its base model, the way the trial trained it.

    The adapter config's `task_type` says which model to build from a base folder or name: a causal LM with its
    own LM head for `CAUSAL_LM` (instruction tuning), else a classifier with `num_labels` outputs (its trained
    head comes from the adapter). A Light-PEFT adapter ships its pruning plan (`autopeft.pruning.artifact`): its
    heads and neurons are removed from the original checkpoint first (the checkpoint files are never modified),
    since the adapter fits only the pruned shapes.
    """
    folder = Path(folder)
    config_path = folder / "adapter_config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{folder}: expected a PEFT adapter folder with adapter_config.json")
    if isinstance(base, torch.nn.Module):
        model = base
    else:
        path = resolve_model_path(str(base))
        pad_token_id = load_tokenizer(path).pad_token_id
        if _task_type(config_path) == "CAUSAL_LM":
            model = load_causal_lm(path, pad_token_id)
        else:
            model = load_classifier(path, num_labels, pad_token_id)
    return PeftModel.from_pretrained(base_for_adapter(model, folder), folder)


def _task_type(config_path: Path) -> str | None:
    """The `task_type` an adapter config records (None when it records none)."""
    config = read_json(config_path)
    if not isinstance(config, dict):
        raise CheckpointError(f"{config_path}: expected a JSON object (a PEFT adapter config)")
    task_type = config.get("task_type")
    return str(task_type) if task_type is not None else None
