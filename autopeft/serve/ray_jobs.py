"""RayRunner: with --ray-address, search jobs are submitted as Ray jobs (`ray.job_submission`), and their
status and logs come from Ray. Audits still run as local worker processes.

`--ray-address HOST:PORT` is the Ray dashboard's job-submission address (`ray start --head` serves it on port
8265). The job's entrypoint is the same `autopeft search ... --backend ray` command line; inside a Ray job,
`ray.init()` joins that cluster. The head node needs the same environment at the same path and the root on
a shared mount (README.md, "Running on a cluster"). Ray jobs outlive the server: after a restart the service
watches them again instead of starting them anew.
"""

from __future__ import annotations

import shlex
from typing import Any

from autopeft.errors import ConfigError
from autopeft.serve.records import JobRecord
from autopeft.serve.settings import ServiceSettings
from autopeft.serve.worker import Outcome

TERMINAL = {"SUCCEEDED": 0, "FAILED": 1, "STOPPED": None}


class RayRunner:
    """Submits, watches, stops and reads the logs of Ray jobs."""

    def __init__(self, settings: ServiceSettings) -> None:
        from ray.job_submission import JobSubmissionClient

        self.settings = settings
        address = str(settings.ray_address)
        url = address if "://" in address else f"http://{address}"
        try:
            self.client = JobSubmissionClient(url)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise ConfigError(
                f"--ray-address {address}: cannot reach Ray's job API there ({error}); expected the "
                "job-submission address of a head node started with its dashboard (HOST:8265 by default), "
                "and ray[default] installed"
            ) from None

    def launch(self, record: JobRecord) -> dict[str, Any]:
        entrypoint = shlex.join([*self.settings.worker_command, *record.argv, "--backend", "ray"])
        submission = f"autopeft-job-{record.id}-{record.restarts or 0}"
        self.client.submit_job(entrypoint=entrypoint, submission_id=submission)
        return {"ray_submission_id": submission, "log_path": ""}

    def poll(self, record: JobRecord) -> Outcome | None:
        info = self.client.get_job_info(str(record.ray_submission_id))
        status = str(getattr(info.status, "value", info.status))
        if status not in TERMINAL:
            return None
        return Outcome(TERMINAL[status], "" if status == "SUCCEEDED" else str(info.message or status))

    def interrupt(self, record: JobRecord) -> None:
        if record.ray_submission_id:
            self.client.stop_job(record.ray_submission_id)

    def kill(self, record: JobRecord) -> None:
        self.interrupt(record)

    def recover(self, record: JobRecord) -> bool:
        """A Ray job survives the server: watch it again (its next poll records how it ended)."""
        return record.ray_submission_id is not None

    def log_tail(self, record: JobRecord, lines: int) -> list[str]:
        if not record.ray_submission_id:
            return []
        return self.client.get_job_logs(record.ray_submission_id).splitlines()[-lines:]
