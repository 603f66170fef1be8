"""`autopeft serve --ray-address`: a search job submitted to a real `ray start --head` cluster (with its
dashboard, which serves Ray's job API) as a Ray job; its state and log come from Ray, and it finishes with the
trials it asked for."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.search.ray_cluster import free_port, start_head, stop_head
from tests.serve.conftest import space_text
from tests.serve.service_process import ServiceProcess, wait_for_job


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """A head node with its dashboard on 127.0.0.1; yields the job-submission address and the environment
    (token auth) that a client of the cluster needs."""
    pytest.importorskip("ray.dashboard.modules.job.job_head", reason="ray[default] provides Ray's job API")
    dashboard = free_port()
    flags = (
        "--include-dashboard",
        "true",
        "--dashboard-host",
        "127.0.0.1",
        "--dashboard-port",
        str(dashboard),
    )
    cluster = start_head(tmp_path_factory.mktemp("ray_head"), *flags)
    try:
        _wait_for_the_job_agent(f"http://127.0.0.1:{dashboard}", cluster.env)
        yield f"127.0.0.1:{dashboard}", cluster.env
    finally:
        stop_head(cluster)


def _wait_for_the_job_agent(url: str, env: dict[str, str]) -> None:
    """`ray start` returns before the node's job agent has registered (a submission then fails with "No
    available agent"): submit a job that does nothing until one is accepted and succeeds."""
    probe = (
        "import sys, time\n"
        "from ray.job_submission import JobStatus, JobSubmissionClient\n"
        "client = JobSubmissionClient(sys.argv[1])\n"
        "deadline = time.monotonic() + 120\n"
        "while time.monotonic() < deadline:\n"
        "    try:\n"
        "        job = client.submit_job(entrypoint='true')\n"
        "    except RuntimeError as error:\n"
        "        print(error); time.sleep(1); continue\n"
        "    while client.get_job_status(job) not in (JobStatus.SUCCEEDED, JobStatus.FAILED):\n"
        "        time.sleep(0.5)\n"
        "    sys.exit(0 if client.get_job_status(job) == JobStatus.SUCCEEDED else 1)\n"
        "sys.exit(2)\n"
    )
    ready = subprocess.run(
        [sys.executable, "-c", probe, url], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert ready.returncode == 0, ready.stdout + ready.stderr


def test_a_search_runs_as_a_ray_job_with_its_state_and_log_from_ray(
    ray_head: tuple[str, dict[str, str]],
    data_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    address, env = ray_head
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.setenv(name, env[name])  # the server (a child of this process) joins with the token
    server = ServiceProcess(tmp_path / "root", ["--data-root", str(data_root), "--ray-address", address])
    server.start()
    try:
        text = space_text(tmp_path / "space", data_root)
        with server.client() as client:
            response = client.post(
                "/api/searches", json={"name": "on_ray", "space": text, "trials": 2, "backend": "ray"}
            )
            assert response.status_code == 201, response.text
            job = wait_for_job(client, response.json()["id"], seconds=600)
            assert job["state"] == "done"
            assert job["ray_submission_id"].startswith("autopeft-job-")
            study = client.get("/api/searches/on_ray").json()
            log = client.get(f"/api/jobs/{job['id']}/log", params={"lines": 400}).json()["lines"]
        assert (study["trials_done"], study["backend"]) == (2, "ray")
        assert any("trial" in line for line in log)  # the log is the Ray job's own output
        asked = (  # Ray's own record of the job, read by a client of the cluster
            "from ray.job_submission import JobSubmissionClient as C; "
            f"info = C('http://{address}').get_job_info('{job['ray_submission_id']}'); "
            "print(info.status.value); print(info.entrypoint)"
        )
        ray_job = subprocess.run(
            [sys.executable, "-c", asked], env=env, capture_output=True, text=True, timeout=120, check=True
        )
        status, entrypoint = ray_job.stdout.strip().splitlines()[-2:]
        assert status == "SUCCEEDED" and entrypoint.endswith("--backend ray")
    finally:
        server.stop()
