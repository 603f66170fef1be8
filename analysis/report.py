"""AuditReport: the result of one audit as a tidy table, per-matrix arrays, and summaries by layer and module.

The table has one row per (matrix, kind) with kind ∈ {base, ft, delta, unmatched}; arrays such as intruder scores
and entanglement profiles live in `details` and in the JSON (ANALYSIS.md intro). Dashboards read the JSON that
`to_json(path)` writes atomically.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

LEADING_COLUMNS = ("matrix", "layer", "module", "kind", "rows", "cols")


@dataclass
class AuditReport:
    """Rows of the metric table, per-matrix details, the tensors left out with reasons, and run metadata."""

    rows: list[dict[str, Any]]
    details: dict[str, dict[str, Any]] = field(default_factory=dict)
    excluded: list[dict[str, str]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        """The tidy table: one row per matrix and kind, NaN plus `reason` where a metric is undefined."""
        frame = pd.DataFrame(self.rows)
        if frame.empty:
            return pd.DataFrame(columns=list(LEADING_COLUMNS))
        leading = [column for column in LEADING_COLUMNS if column in frame]
        return frame[leading + [column for column in frame.columns if column not in leading]]

    def intruder_count(self) -> int:
        """The model's intruder count: the sum over all analysed matrices (ANALYSIS.md §3, step 4)."""
        frame = self.to_frame()
        if "n_intruders" not in frame:
            return 0
        return int(frame.loc[frame["kind"] == "ft", "n_intruders"].sum())

    def summary(self) -> dict[str, pd.DataFrame]:
        """Aggregates by layer, by module type, and for the whole model (one row)."""
        frame = self.to_frame()
        model = _aggregate(frame.assign(model="model"), "model")
        return {
            "by_layer": _aggregate(frame, "layer"),
            "by_module": _aggregate(frame, "module"),
            "model": model,
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything in JSON-compatible types; NaN becomes null."""
        summary = {
            name: table.reset_index().to_dict(orient="records") for name, table in self.summary().items()
        }
        payload = {
            "meta": self.meta,
            "rows": self.rows,
            "details": self.details,
            "excluded": self.excluded,
            "summary": summary,
        }
        return _json_safe(payload)

    def to_json(self, path: str | Path | None = None) -> str:
        """The report as JSON text; with `path`, also written there through a temporary file and `os.replace`."""
        text = json.dumps(self.to_dict(), indent=1, allow_nan=False)
        if path is not None:
            _write_atomic(Path(path), text)
        return text


def _aggregate(frame: pd.DataFrame, by: str) -> pd.DataFrame:
    """Counts, intruders, update size and mean spectral shape per group."""
    if frame.empty or by not in frame:
        return pd.DataFrame()
    groups = {
        kind: frame[frame["kind"] == kind].groupby(by, dropna=False)
        for kind in ("base", "ft", "delta", "unmatched")
    }
    table = pd.DataFrame(
        {
            "matrices": groups["base"].size(),
            "updated": groups["delta"].size(),
            "unmatched": groups["unmatched"].size(),
            "intruders": _column(groups["ft"], "n_intruders", "sum"),
            "update_frobenius": _column(
                groups["delta"], "frobenius_norm", lambda x: math.sqrt(float((x**2).sum()))
            ),
            "relative_update_mean": _column(groups["delta"], "relative_update", "mean"),
            "update_effective_rank_mean": _column(groups["delta"], "effective_rank", "mean"),
            "alpha_base_mean": _column(groups["base"], "alpha", "mean"),
            "alpha_ft_mean": _column(groups["ft"], "alpha", "mean"),
        }
    )
    for count in ("matrices", "updated", "unmatched", "intruders"):
        table[count] = table[count].fillna(0).astype(int)
    return table


def _column(groups: Any, column: str, how: Any) -> pd.Series:
    if column not in groups.obj:
        return pd.Series(dtype=float)
    return groups[column].agg(how)


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return _json_safe(value.item())
    return value


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}.partial")
    staging.write_text(text, encoding="utf-8")
    os.replace(staging, path)
