"""WorkerProcess and LocalRunner: each job is one `autopeft search ...` or `autopeft audit ...` subprocess in
its own process group, so a crashing trial never takes the server down, and a stop reaches every process the
job started.

A stop sends SIGINT to the group: the CLI then records the trial it interrupted as failed (`reason:
interrupted`), leaves the study consistent and exits 130; after the grace period, SIGKILL (a resumed search
settles any trial still marked running). The worker's pid and start time are recorded, so a server that was
killed can tell its own orphans from an unrelated process that reused the pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from autopeft.serve.records import JobRecord
from autopeft.serve.settings import ServiceSettings

ERROR_PREFIX = "autopeft: error: "
TAIL_BYTES = 256 * 1024


@dataclass(frozen=True)
class Outcome:
    """How a job's process ended: its exit code (None when unknown) and the line that says why."""

    exit_code: int | None
    reason: str


class LocalRunner:
    """Starts, watches and stops the worker processes of this server."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self._processes: dict[int, subprocess.Popen[bytes]] = {}
        (settings.service_dir / "logs").mkdir(parents=True, exist_ok=True)

    def log_path(self, job_id: int) -> Path:
        return self.settings.service_dir / "logs" / f"job-{job_id}.log"

    def launch(self, record: JobRecord) -> dict[str, Any]:
        """Start the job's command; returns the fields to record (pid, its start time, the log file)."""
        log_path = self.log_path(record.id)
        command = [*self.settings.worker_command, *record.argv]
        with log_path.open("ab") as log:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"== {stamp} job {record.id}: autopeft {' '.join(record.argv)}\n".encode())
            log.flush()
            process = subprocess.Popen(
                command,
                cwd=self.settings.root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self._processes[record.id] = process
        return {"pid": process.pid, "pid_started_at": _start_time(process.pid), "log_path": str(log_path)}

    def poll(self, record: JobRecord) -> Outcome | None:
        """None while the job's process runs; its outcome once it has ended."""
        process = self._processes.get(record.id)
        if process is None:
            if is_alive(record.pid, record.pid_started_at):
                return None
            return Outcome(None, "the worker process ended while the server was not watching it")
        code = process.poll()
        if code is None:
            return None
        del self._processes[record.id]
        return Outcome(code, failure_line(Path(record.log_path)) if code else "")

    def interrupt(self, record: JobRecord) -> None:
        """Ask the job to stop (SIGINT to its process group, as Ctrl-C would)."""
        self._signal(record, signal.SIGINT)

    def kill(self, record: JobRecord) -> None:
        self._signal(record, signal.SIGKILL)

    def recover(self, record: JobRecord) -> None:
        """End what is left of a job that was running when the server died: SIGINT, then SIGKILL."""
        if not is_alive(record.pid, record.pid_started_at):
            return
        self._signal(record, signal.SIGINT, owned=False)
        if not _wait_gone(record, self.settings.stop_grace_seconds):
            self._signal(record, signal.SIGKILL, owned=False)
            _wait_gone(record, 10.0)

    def log_tail(self, record: JobRecord, lines: int) -> list[str]:
        return tail(Path(record.log_path), lines) if record.log_path else []

    def running_ids(self) -> list[int]:
        return list(self._processes)

    def _signal(self, record: JobRecord, number: signal.Signals, owned: bool = True) -> None:
        if record.pid is None:
            return
        if owned and record.id not in self._processes:
            owned = False
        if not owned and not is_alive(record.pid, record.pid_started_at):
            return  # never signal a pid that now belongs to another process
        try:
            os.killpg(record.pid, number)
        except (ProcessLookupError, PermissionError):
            pass


def is_alive(pid: int | None, started_at: float | None) -> bool:
    """True when `pid` runs and is the process that was recorded (same start time), not a zombie."""
    if pid is None:
        return False
    try:
        process = psutil.Process(pid)
        if started_at is not None and abs(process.create_time() - started_at) > 0.5:
            return False
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _start_time(pid: int) -> float | None:
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


def _wait_gone(record: JobRecord, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not is_alive(record.pid, record.pid_started_at):
            return True
        time.sleep(0.2)
    return not is_alive(record.pid, record.pid_started_at)


def tail(path: Path, lines: int) -> list[str]:
    """The last `lines` lines of a log file (at most the last 256 KiB are read)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - TAIL_BYTES))
            text = handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return text.splitlines()[-lines:] if lines > 0 else []


def failure_line(path: Path) -> str:
    """Why a job failed: the CLI's one-line error when it printed one, else the log's last line."""
    shown = [line.strip() for line in tail(path, 200) if line.strip()]
    for line in reversed(shown):
        if line.startswith(ERROR_PREFIX):
            return line.removeprefix(ERROR_PREFIX)[:500]
    return shown[-1][:500] if shown else ""
