"""A real `autopeft serve` in a subprocess on a free port of 127.0.0.1, driven by an HTTP client."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.search.ray_cluster import free_port

START_SECONDS = 180.0


@dataclass
class ServiceProcess:
    """One server: start it, talk to it, kill it (-9) or stop it, start it again on the same root."""

    root: Path
    flags: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"
    headers: dict[str, str] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.root.parent / f"{self.root.name}-server-{self.starts}.log"

    def start(self) -> ServiceProcess:
        self.port = free_port()
        self.starts += 1
        command = [sys.executable, "-m", "autopeft", "serve", "--root", str(self.root), "--host", self.host]
        command += ["--port", str(self.port), "--stop-grace", "20", *self.flags]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited {self.process.returncode}: {self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/api/health", headers=self.headers, timeout=2).status_code < 500:
                    return self
            except httpx.TransportError:
                time.sleep(0.5)
        raise AssertionError(f"server did not answer within {START_SECONDS}s: {self.log.read_text()}")

    def client(self, **headers: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={**self.headers, **headers}, timeout=30)

    def kill(self) -> None:
        """`kill -9`: no clean-up of any kind."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)


def wait_for(check: Callable[[], Any], seconds: float = 240.0, every: float = 1.0) -> Any:
    """Poll `check` until it returns something truthy; fail with its last value after `seconds`."""
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"gave up after {seconds}s; last value: {last!r}")


def job_state(client: httpx.Client, job_id: int) -> str:
    return str(client.get(f"/api/jobs/{job_id}").json()["state"])


def wait_for_job(
    client: httpx.Client, job_id: int, states: tuple[str, ...] = ("done",), seconds: float = 300
) -> dict:
    """Wait until the job reaches one of `states`; fail early (with its log) when it ends otherwise."""
    final = ("done", "failed", "stopped", "interrupted")

    def ended() -> dict | None:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["state"] in states:
            return job
        if job["state"] in final:
            log = client.get(f"/api/jobs/{job_id}/log", params={"lines": 60}).json()["lines"]
            raise AssertionError(f"job {job_id} ended {job['state']}: {job['reason']}\n" + "\n".join(log))
        return None

    return wait_for(ended, seconds)  # type: ignore[no-any-return]
