"""SearchProgress: what a driver tells the person watching (trials done of total, the current trial's steps).

Drivers call the three hooks; `RichSearchProgress` draws them, `SilentProgress` ignores them (tests, --quiet,
output that is not a terminal).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:
    from typing_extensions import Self


class SearchProgress(Protocol):
    def trial_started(self, number: int, summary: str) -> None: ...

    def trial_step(self, done: int, total: int) -> None: ...

    def trial_finished(self, number: int, state: str, values: Mapping[str, float]) -> None: ...


class SilentProgress:
    """Shows nothing."""

    def trial_started(self, number: int, summary: str) -> None:
        return None

    def trial_step(self, done: int, total: int) -> None:
        return None

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

    def trial_finished(self, number: int, state: str, values: Mapping[str, float]) -> None:
        if self._steps is not None:
            self._progress.remove_task(self._steps)
            self._steps = None
        shown = "  ".join(f"{k}={v:.4g}" for k, v in values.items())
        self._progress.console.log(f"trial {number} {state} {shown}")
        self._progress.advance(self._trials)
