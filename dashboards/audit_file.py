"""AuditFile: a trial's spectral audit (RUN_DIR/trials/N/audit.json) as the audit views read it, and how to make one.

The JSON is `AuditReport.to_json()` from `autopeft.analysis`: `rows` (one per matrix and kind with the metric
columns), `details` (per matrix: intruder scores, entanglement profile) and `meta`. A trial's audit records in
`meta` what it compared (`AuditedSources`): `base`, the absolute folder of the original base model;
`base_pruned_by`, the Light-PEFT pruning plan that shrank that base before the comparison (null when none); and
`adapter`. The two trial files are stored relative to the run directory and resolved against it when read, so an
audit reads the same from any working directory and after the run directory is moved. Computing a missing audit
goes through `autopeft.analysis.audit` with paths taken from the run directory, never from a request.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autopeft.errors import CheckpointError, ConfigError
from autopeft.storage.run_directory import RunDirectory

if TYPE_CHECKING:
    from torch import nn

logger = logging.getLogger(__name__)
AUDIT_FILE = "audit.json"


@dataclass(frozen=True)
class AuditedSources:
    """What a trial's audit compares, as absolute paths: the original base (a model folder), the Light-PEFT
    pruning plan applied to it first (None for a full base), and the trial's adapter folder."""

    base: str
    base_pruned_by: Path | None
    adapter: Path

    @classmethod
    def of_trial(cls, run_dir: RunDirectory, number: int, base: str) -> AuditedSources:
        """The sources of trial `number` audited against `base`; a trial with no saved adapter (failed, or
        still running) is a `CheckpointError` naming the folder."""
        from autopeft.pruning.artifact import PRUNING_PLAN_FILE, is_pruned_adapter  # transformers: only here

        adapter = trial_adapter(run_dir, number).absolute()
        plan = adapter / PRUNING_PLAN_FILE if is_pruned_adapter(adapter) else None
        return cls(str(Path(base).expanduser().absolute()), plan, adapter)

    def load_base(self) -> str | nn.Module:
        """The base the adapter fits: the base folder, or the model that folder loads pruned by the plan."""
        if self.base_pruned_by is None:
            return self.base
        from autopeft.pruning.pruning_plan import load_pruned

        return load_pruned(self.base, self.base_pruned_by)

    def meta(self, run_dir: RunDirectory) -> dict[str, str | None]:
        """The `meta` entries an audit of these sources stores, trial files relative to `run_dir`."""
        root = run_dir.root.absolute()
        return {
            "base": self.base,
            "base_pruned_by": None if self.base_pruned_by is None else _relative(self.base_pruned_by, root),
            "adapter": _relative(self.adapter, root),
        }


@dataclass(frozen=True)
class AuditFile:
    """The parsed audit of one trial, and the run directory its relative paths are resolved against."""

    path: Path
    run_dir: Path
    rows: tuple[dict[str, Any], ...]
    details: dict[str, dict[str, Any]]
    meta: dict[str, Any]

    @property
    def adapted_matrices(self) -> list[str]:
        """Matrices with a fine-tuned row (the ones training changed), in audit order."""
        return [row["matrix"] for row in self.rows if row["kind"] == "ft"]

    def row(self, matrix: str, kind: str) -> dict[str, Any] | None:
        """The metric row of `matrix` for `kind` (base, ft or delta), if the audit has it."""
        return next((r for r in self.rows if r["matrix"] == matrix and r["kind"] == kind), None)

    def sources(self) -> AuditedSources:
        """The base, pruning plan and adapter this audit compared; a `ConfigError` naming the meta key when one
        cannot be read back (a full-checkpoint audit, a base that was a model in memory, a moved file)."""
        adapter = self._existing("adapter", "the trial's adapter folder")
        plan = self.meta.get("base_pruned_by")
        base = str(self.meta.get("base") or "")
        if not base or base.startswith("<"):
            raise ConfigError(
                f"{self.path}: meta.base: expected the audited base model's folder, got {base!r}; "
                "re-run `autopeft audit RUN_DIR --trial N` to record it"
            )
        pruned_by = None if plan is None else self._existing("base_pruned_by", "the trial's pruning plan")
        return AuditedSources(base, pruned_by, adapter)

    def _existing(self, key: str, expected: str) -> Path:
        value = self.meta.get(key)
        path = self.run_dir / str(value or "")  # an absolute value replaces the run directory
        if not value or not path.exists():
            raise ConfigError(
                f"{self.path}: meta.{key}: expected {expected}, absolute or relative to {self.run_dir}, "
                f"got {value!r}; re-run `autopeft audit RUN_DIR --trial N`"
            )
        return path


def load_audit(run_dir: RunDirectory, number: int) -> AuditFile | None:
    """Read trial `number`'s audit; None when it has not been computed, a `ConfigError` when the file is not an
    audit (bad JSON, rows without a matrix and kind)."""
    path = run_dir.trial_dir(number) / AUDIT_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise ConfigError(f"{path}: rows: expected the list of rows written by `autopeft audit`")
    for index, row in enumerate(data["rows"]):
        if not isinstance(row, dict) or not {"matrix", "kind"} <= row.keys():
            raise ConfigError(f"{path}: rows[{index}]: expected an object with 'matrix' and 'kind'")
    for key in ("details", "meta"):
        if not isinstance(data.get(key) or {}, dict):
            raise ConfigError(f"{path}: {key}: expected an object")
    root = run_dir.root.absolute()
    return AuditFile(
        path, root, tuple(data["rows"]), dict(data.get("details") or {}), dict(data.get("meta") or {})
    )


def compute_audit(run_dir: RunDirectory, number: int) -> Path:
    """Audit trial `number`'s saved adapter against the run's base model and write its audit.json.

    The base is the run's `model` (run.json), pruned first by the trial's pruning plan for Light-PEFT, and the
    adapter is the trial's `adapter/` folder; a trial that saved no adapter is a `CheckpointError`.
    """
    from autopeft.analysis import audit
    from autopeft.models import resolve_model_path

    base = resolve_model_path(str(run_dir.info().get("model", "")))
    sources = AuditedSources.of_trial(run_dir, number, str(base))
    report = audit(sources.load_base(), adapter=sources.adapter)
    report.meta.update(sources.meta(run_dir))
    out = run_dir.trial_dir(number) / AUDIT_FILE
    report.to_json(out)
    logger.info("audit of trial %d written to %s", number, out)
    return out


def trial_adapter(run_dir: RunDirectory, number: int) -> Path:
    """Trial `number`'s adapter folder; a `CheckpointError` naming it when the trial saved none (it failed, or
    is still running)."""
    adapter = run_dir.trial_dir(number) / "adapter"
    if not (adapter / "adapter_config.json").is_file():
        raise CheckpointError(f"{adapter}: adapter_config.json: no such file (is trial {number} finished?)")
    return adapter


def _relative(path: Path, root: Path) -> str:
    """`path` relative to `root` in POSIX form, or absolute when it lies outside `root`."""
    relative = os.path.relpath(path, root)
    return str(path) if relative.startswith("..") else Path(relative).as_posix()
