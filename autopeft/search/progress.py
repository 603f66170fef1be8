"""SearchProgress: what a driver tells the person watching (trials done of total, the current trial's steps
and dev evaluations).

Drivers call the four hooks; `RichSearchProgress` draws them on a terminal, `LogProgress` logs a line per dev
evaluation where there is no terminal (logs, CI, nohup: the driver already logs a line per finished trial), and
`SilentProgress` ignores them (tests, --quiet).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:
    from typing_extensions import Self

logger = logging.getLogger(__name__)


class SearchProgress(Protocol):
    def trial_started(self, number: int, summary: str) -> None: ...

    def trial_step(self, done: int, total: int) -> None: ...

    def trial_evaluated(self, step: int, task_metric: float) -> None:
        """The current trial scored its dev split after `step` steps (called after `trial_step(step, ...)`)."""

    def trial_finished(self, number: int, state: str, values: Mapping[str, float]) -> None: ...


class SilentProgress:
    """Shows nothing."""

    def trial_started(self, number: int, summary: str) -> None:
        return None

    def trial_step(self, done: int, total: int) -> None:
        return None

    def trial_evaluated(self, step: int, task_metric: float) -> None:
        return None

    def trial_finished(self, number: int, state: str, values: Mapping[str, float]) -> None:
        return None


class LogProgress:
    """A log line per dev evaluation: trial number, step of total, task metric and seconds since the trial
    started. Without it a log shows nothing between two finished trials, however long a trial runs; the
    finished trial itself is logged by the driver."""

    def __init__(self) -> None:
        self._number = -1
        self._total = 0
        self._started = time.perf_counter()

    def trial_started(self, number: int, summary: str) -> None:
        self._number, self._total, self._started = number, 0, time.perf_counter()

    def trial_step(self, done: int, total: int) -> None:
        self._total = total

    def trial_evaluated(self, step: int, task_metric: float) -> None:
        elapsed = time.perf_counter() - self._started
        logger.info(
            "trial %d: step %d/%d task_metric=%.4g (%.1f s)",
            self._number,
            step,
            self._total,
            task_metric,
            elapsed,
        )

    def trial_finished(self, number: int, state: str, values: Mapping[str, float]) -> None:
        return None


class RichSearchProgress:
    """A rich progress display: one bar for trials, a transient bar for the current trial's steps."""

    def __init__(self, total_trials: int, done_trials: int, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self._trials = self._progress.add_task("trials", total=total_trials, completed=done_trials)
        self._steps: TaskID | None = None

    def __enter__(self) -> Self:
        self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._progress.stop()

    def trial_started(self, number: int, summary: str) -> None:
        self._steps = self._progress.add_task(f"  trial {number}: {summary[:60]}", total=None)

    def trial_step(self, done: int, total: int) -> None:
        if self._steps is not None:
            self._progress.update(self._steps, completed=done, total=total)

    def trial_evaluated(self, step: int, task_metric: float) -> None:
        return None  # the step bar is the display; the metric shows when the trial finishes

    def trial_finished(self, number: int, state: str, values: Mapping[str, float]) -> None:
        if self._steps is not None:
            self._progress.remove_task(self._steps)
            self._steps = None
        shown = "  ".join(f"{k}={v:.4g}" for k, v in values.items())
        self._progress.console.log(f"trial {number} {state} {shown}")
        self._progress.advance(self._trials)
