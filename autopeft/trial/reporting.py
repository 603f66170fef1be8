"""Reporter: how a trial tells its driver about intermediate values, and learns whether to stop.

`run_trial` receives its reporter as an argument and never reaches for Optuna or Ray; each driver brings its
own adapter (`OptunaReporter`, `RayReporter`). `NullReporter` serves export and scripts,
`RecordingReporter` tests and benchmarks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable


@runtime_checkable
class Reporter(Protocol):
    """Receives intermediate values during a trial and may ask it to stop early."""

    def report(self, step: int, values: Mapping[str, float]) -> None:
        """Record the values measured after optimizer step `step` (1-based count of steps done)."""

    def should_stop(self) -> bool:
        """True when the driver wants the trial stopped now (it then ends as pruned)."""


class NullReporter:
    """Ignores every report and never stops a trial."""

    def report(self, step: int, values: Mapping[str, float]) -> None:
        return None

    def should_stop(self) -> bool:
        return False


class RecordingReporter:
    """Keeps every report; stops the trial after `stop_after` reports when given."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.reports: list[tuple[int, dict[str, float]]] = []
        self.stop_after = stop_after

    def report(self, step: int, values: Mapping[str, float]) -> None:
        self.reports.append((step, dict(values)))

    def should_stop(self) -> bool:
        return self.stop_after is not None and len(self.reports) >= self.stop_after
