"""AuditFile: a trial's spectral audit (RUN_DIR/trials/N/audit.json) as the audit views read it, and how to make one.

The JSON is `AuditReport.to_json()` from `autopeft.analysis`: `rows` (one per matrix and kind with the metric
columns), `details` (per matrix: intruder scores, entanglement profile) and `meta` (the base and adapter that
were audited). Computing a missing audit goes through `autopeft.analysis.audit` with paths taken from the run
directory, never from a request.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autopeft.errors import CheckpointError, ConfigError
from autopeft.storage.run_directory import RunDirectory

logger = logging.getLogger(__name__)
AUDIT_FILE = "audit.json"


@dataclass(frozen=True)
class AuditFile:
    """The parsed audit of one trial."""

    path: Path
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


def load_audit(path: Path) -> AuditFile | None:
    """Read an audit; None when it has not been computed, a `ConfigError` when the file is not an audit."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}: not valid JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise ConfigError(f"{path}: rows: expected the list of rows written by `autopeft audit`")
    return AuditFile(path, tuple(data["rows"]), dict(data.get("details") or {}), dict(data.get("meta") or {}))


def compute_audit(run_dir: RunDirectory, number: int) -> Path:
    """Audit trial `number`'s saved adapter against the run's base model and write its audit.json.

    The base is the run's `model` (run.json) and the adapter is the trial's `adapter/` folder; a trial that
    saved no adapter (failed, or still running) is a `CheckpointError` naming the folder.
    """
    from autopeft.analysis import audit
    from autopeft.models import resolve_model_path

    adapter = run_dir.trial_dir(number) / "adapter"
    if not (adapter / "adapter_config.json").is_file():
        raise CheckpointError(
            f"{adapter}: trial {number} saved no adapter; only finished trials can be audited"
        )
    base = resolve_model_path(str(run_dir.info().get("model", "")))
    out = run_dir.trial_dir(number) / AUDIT_FILE
    audit(base, adapter=adapter).to_json(out)
    logger.info("audit of trial %d written to %s", number, out)
    return out
