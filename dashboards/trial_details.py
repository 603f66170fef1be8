"""TrialDetails: everything the trial view shows about one trial, gathered from the storage and its folder.

Files in the run directory win over user attributes (they hold the method reports and the saved adapter);
with a bare storage URL the user attributes are all there is.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from autopeft.dashboards.run_source import RunSource
from autopeft.errors import ConfigError


@dataclass(frozen=True)
class TrialDetails:
    """One trial: state, objective values, measurements, plan, curve, method reports and where its files are."""

    number: int
    state: str
    reason: str
    values: dict[str, float]
    metrics: dict[str, float]
    summary: str
    constraints: dict[str, float]
    plan: dict[str, Any] | None
    adapter_config: dict[str, Any] | None
    curve: list[dict[str, float]]
    method_reports: dict[str, Any]
    folder: Path | None
    export_command: str

    @property
    def feasible(self) -> bool:
        """True when every constraint (for instance the parameter budget) is met."""
        return all(value <= 0 for value in self.constraints.values())


def trial_details(source: RunSource, study: optuna.Study, number: int) -> TrialDetails:
    """Gather trial `number`; an unknown number is a `ConfigError` naming the valid range."""
    trial = source.trial(study, number)
    folder = source.trial_dir(study, number)
    stored = _read_optional(folder / "metrics.json") if folder is not None else None
    names = source.objectives(study).names
    values = dict(zip(names, trial.values, strict=True)) if trial.values else {}
    adapter_config = _adapter_config(folder)
    return TrialDetails(
        number=number,
        state=trial.state.name.lower(),
        reason=str(trial.user_attrs.get("reason", "")),
        values=values,
        metrics=dict((stored or {}).get("metrics") or trial.user_attrs.get("metrics", {})),
        summary=str(trial.user_attrs.get("plan_summary", "")),
        constraints=dict(trial.constraints),
        plan=_plan(trial, folder),
        adapter_config=adapter_config,
        curve=list((stored or {}).get("curve") or trial.user_attrs.get("curve", [])),
        method_reports=dict((stored or {}).get("methods", {})),
        folder=folder,
        export_command=_export_command(folder, number) if adapter_config is not None else "",
    )


def _plan(trial: optuna.trial.FrozenTrial, folder: Path | None) -> dict[str, Any] | None:
    from_file = _read_optional(folder / "plan.json") if folder is not None else None
    return from_file if from_file is not None else trial.user_attrs.get("plan")


def _adapter_config(folder: Path | None) -> dict[str, Any] | None:
    return None if folder is None else _read_optional(folder / "adapter" / "adapter_config.json")


def _read_optional(path: Path) -> dict[str, Any] | None:
    """A JSON file that may not exist yet (a running trial); a corrupt one is a `ConfigError` naming it."""
    if not path.is_file():
        return None
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}: not valid JSON ({error.msg} at line {error.lineno})") from None


def _export_command(folder: Path | None, number: int) -> str:
    """The command that writes this trial's adapter; empty without a run directory or a saved adapter."""
    if folder is None:
        return ""
    run_dir = shlex.quote(str(folder.parents[1]))  # folder is RUN_DIR/trials/<number>
    return f"autopeft export {run_dir} --trial {number} --out {shlex.quote(f'trial-{number}-adapter')}"
