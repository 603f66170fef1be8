"""JobQueue: queued jobs start in submission order, at most --max-jobs at once; a background thread watches
the running ones and records how each ended.

Recovery after a crash (`kill -9` of the server): a job recorded as running is resumed. Its old worker, if it
still runs, is ended first (SIGINT, so the interrupted trial is recorded as such, then SIGKILL), and the job
goes back to the queue with its command unchanged: `autopeft search` resumes from the study's storage, so no
finished trial is lost or counted twice. An audit simply runs again. A job that has been resumed this way
`MAX_RESTARTS` times is marked interrupted instead, with the reason. Ray jobs survive the server and are
watched again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any, Protocol

from autopeft.serve.records import JobRecord, JobStore
from autopeft.serve.settings import ServiceSettings
from autopeft.serve.worker import Outcome

logger = logging.getLogger(__name__)

MAX_RESTARTS = 3
RESUMED = "resumed after a server restart"
SHUTDOWN = "the server stopped while it ran; it resumes when the server starts again"


class JobRunner(Protocol):
    """Runs jobs of one backend: local worker processes or Ray jobs."""

    def launch(self, record: JobRecord) -> dict[str, Any]: ...

    def poll(self, record: JobRecord) -> Outcome | None: ...

    def interrupt(self, record: JobRecord) -> None: ...

    def kill(self, record: JobRecord) -> None: ...

    def recover(self, record: JobRecord) -> bool | None: ...

    def log_tail(self, record: JobRecord, lines: int) -> list[str]: ...


class JobQueue:
    """The queue and its watcher thread; every change goes to the `JobStore` at once."""

    def __init__(self, settings: ServiceSettings, store: JobStore, runners: Mapping[str, JobRunner]) -> None:
        self.settings = settings
        self.store = store
        self.runners = dict(runners)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._tick_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def runner(self, record: JobRecord) -> JobRunner:
        return self.runners[record.backend]

    def start(self) -> None:
        """Recover what a previous server left running, then watch and start jobs on a background thread."""
        self.recover()
        self._thread = threading.Thread(target=self._watch, name="autopeft-jobs", daemon=True)
        self._thread.start()

    def submit(self, **fields: Any) -> JobRecord:
        record = self.store.add(**fields)
        self._wake.set()
        return record

    def stop(self, record: JobRecord, caller: str) -> JobRecord:
        """A queued job never starts; a running one is interrupted (and killed after the grace period)."""
        if record.state == "queued":
            record = self.store.update(
                record.id,
                state="stopped",
                finished_at=time.time(),
                reason=f"stopped by {caller} before it started",
            )
        elif record.state == "running" and record.stop_requested_at is None:
            self.runner(record).interrupt(record)
            record = self.store.update(
                record.id, stop_requested_at=time.time(), reason=f"stopped by {caller}"
            )
        self._wake.set()
        return record

    def tick(self) -> None:
        """Record the jobs that ended, escalate overdue stops, start queued jobs while there is room."""
        with self._tick_lock:
            self._reap()
            self._start_queued()

    def recover(self) -> None:
        for record in self._runnable(self.store.jobs(states=("running",))):
            if self.runner(record).recover(record):
                logger.info("job %d still runs on its backend; watching it again", record.id)
            elif record.restarts >= MAX_RESTARTS:
                self.store.update(
                    record.id,
                    state="interrupted",
                    finished_at=time.time(),
                    reason=f"the server restarted {record.restarts + 1} times while it ran; resume it by hand",
                )
            else:
                self.store.update(
                    record.id, state="queued", pid=None, reason=RESUMED, restarts=record.restarts + 1
                )
                logger.info("job %d was running when the server stopped; queued again", record.id)

    def shutdown(self) -> None:
        """Stop watching; interrupt local workers. A job that was stopped or had just finished keeps how it
        ended; the others go back to the queue and resume at the next start."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        local = [r for r in self.store.jobs(states=("running",)) if r.backend == "local"]
        ended = self._interrupt_all(local)
        for record in local:
            outcome = ended.get(record.id)
            if record.stop_requested_at is not None or (outcome is not None and outcome.exit_code == 0):
                state, reason = final_state(record, outcome or Outcome(None, ""))
                self.store.update(record.id, state=state, reason=reason, finished_at=time.time())
            else:
                self.store.update(record.id, state="queued", pid=None, reason=SHUTDOWN)

    def _interrupt_all(self, records: list[JobRecord]) -> dict[int, Outcome]:
        """SIGINT to every job, SIGKILL to those still running after the grace period; how each ended."""
        for record in records:
            self.runner(record).interrupt(record)
        ended: dict[int, Outcome] = {}
        deadline = time.monotonic() + self.settings.stop_grace_seconds
        while len(ended) < len(records) and time.monotonic() < deadline:
            for record in records:
                outcome = None if record.id in ended else self.runner(record).poll(record)
                if outcome is not None:
                    ended[record.id] = outcome
            time.sleep(0.1)
        for record in records:
            if record.id not in ended:
                self.runner(record).kill(record)
        return ended

    def _runnable(self, records: list[JobRecord]) -> list[JobRecord]:
        """`records` whose backend this server has; the others are marked interrupted, with the reason."""
        for record in records:
            if record.backend not in self.runners:
                self.store.update(
                    record.id,
                    state="interrupted",
                    finished_at=time.time(),
                    reason=f"a {record.backend} job, and this server was started without --ray-address",
                )
        return [record for record in records if record.backend in self.runners]

    def _watch(self) -> None:
        while not self._stopping.is_set():
            try:
                self.tick()
            except Exception:
                logger.exception("job watcher: tick failed; retrying")
            self._wake.wait(self.settings.poll_seconds)
            self._wake.clear()

    def _reap(self) -> None:
        for record in self._runnable(self.store.jobs(states=("running",))):
            runner = self.runner(record)
            outcome = runner.poll(record)
            if outcome is None:
                overdue = record.stop_requested_at is not None and (
                    time.time() - record.stop_requested_at > self.settings.stop_grace_seconds
                )
                if overdue:
                    runner.kill(record)
                continue
            state, reason = final_state(record, outcome)
            self.store.update(
                record.id, state=state, reason=reason, exit_code=outcome.exit_code, finished_at=time.time()
            )
            logger.info("job %d %s%s", record.id, state, f": {reason}" if reason else "")

    def _start_queued(self) -> None:
        running = len(self.store.jobs(states=("running",)))
        for record in self._runnable(self.store.queued())[: max(0, self.settings.max_jobs - running)]:
            if self._stopping.is_set():
                return
            try:
                fields = self.runner(record).launch(record)
            except Exception as error:  # noqa: BLE001 - any launch failure ends this job, not the server
                self.store.update(
                    record.id, state="failed", finished_at=time.time(), reason=f"could not start: {error}"
                )
                continue
            self.store.update(record.id, state="running", started_at=time.time(), **fields)
            logger.info("job %d started: autopeft %s", record.id, " ".join(record.argv))


def final_state(record: JobRecord, outcome: Outcome) -> tuple[str, str]:
    """The recorded state and reason of a job whose process ended."""
    if record.stop_requested_at is not None:
        return "stopped", record.reason
    if outcome.exit_code == 0:
        return "done", ""
    if outcome.exit_code == 130:
        return "interrupted", "interrupted (exit code 130); resume the search to continue"
    if outcome.exit_code is None:
        return "interrupted", outcome.reason
    return "failed", outcome.reason or f"exit code {outcome.exit_code}"
