"""Stopping a running search through the API interrupts its worker's process group: the job is recorded as
stopped, its processes are gone, and a resume finishes the study with the interrupted trial recorded as failed
(`reason: interrupted`) and not counted."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import psutil

from tests.serve.conftest import space_text
from tests.serve.service_process import ServiceProcess, wait_for, wait_for_job


def _start_long_search(client: httpx.Client, folder: Path, data_root: Path) -> int:
    """Launch the 40-trial search `long` and wait until its first trial is done; its job id."""
    created = client.post("/api/searches", json={"name": "long", "space": space_text(folder, data_root, 40)})
    job_id = int(created.json()["id"])
    wait_for(lambda: client.get("/api/searches/long").json()["trials_done"] >= 1, every=0.5)
    return job_id


def test_a_stopped_search_keeps_a_consistent_study_and_resumes(
    start_server: Callable[..., ServiceProcess], data_root: Path, tmp_path: Path
) -> None:
    server = start_server("--data-root", str(data_root))
    with server.client() as client:
        job_id = _start_long_search(client, tmp_path, data_root)
        stopped = client.post("/api/searches/long/stop")
        assert stopped.status_code == 202, stopped.text
        job = wait_for_job(client, job_id, states=("stopped",), seconds=120)
        study = client.get("/api/searches/long").json()
        assert job["reason"] == "stopped by local"
        assert (
            not psutil.pid_exists(job["pid"]) or psutil.Process(job["pid"]).status() == psutil.STATUS_ZOMBIE
        )
        target = study["trials_done"] + 1
        resumed = client.post("/api/searches/long/resume", json={"trials": target})
        wait_for_job(client, resumed.json()["id"])
        study = client.get("/api/searches/long").json()
    assert study["trials_done"] == target
    assert all(row["state"] != "running" for row in study["rows"])
    assert all(row["state"] == "fail" for row in study["rows"] if row["reason"] == "interrupted")


def test_a_server_stopped_with_ctrl_c_resumes_its_running_search_at_the_next_start(
    start_server: Callable[..., ServiceProcess], data_root: Path, tmp_path: Path
) -> None:
    server = start_server("--data-root", str(data_root))
    with server.client() as client:
        job_id = _start_long_search(client, tmp_path, data_root)
    server.stop()
    server.start()
    with server.client() as client:
        job = client.get(f"/api/jobs/{job_id}").json()
        done = client.get("/api/searches/long").json()["trials_done"]
        wait_for(lambda: client.get("/api/searches/long").json()["trials_done"] > done, every=0.5)
        client.post("/api/searches/long/stop")
    assert job["state"] in ("queued", "running")
    assert job["reason"] == "the server stopped while it ran; it resumes when the server starts again"
