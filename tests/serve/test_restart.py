"""Two searches with --max-jobs 1 on a real server that is killed with `kill -9` mid-search and started again:
the second search waits in the queue (also across the restart), the first resumes from its storage and ends
with exactly its trial count, and the worker the dead server left behind is ended."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.serve.conftest import space_text
from tests.serve.service_process import ServiceProcess, job_state, wait_for, wait_for_job


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Iterator[dict[str, Any]]:
    """Run the whole story once and keep what was seen at each step."""
    folder = tmp_path_factory.mktemp("restart")
    server = ServiceProcess(folder / "root", ["--data-root", str(data_root), "--max-jobs", "1"]).start()
    seen: dict[str, Any] = {}
    try:
        with server.client() as client:
            first = client.post(
                "/api/searches", json={"name": "first", "space": space_text(folder, data_root, 3)}
            )
            second = client.post(
                "/api/searches", json={"name": "second", "space": space_text(folder, data_root, 1)}
            )
            first_id, second_id = first.json()["id"], second.json()["id"]
            wait_for(lambda: job_state(client, first_id) == "running")
            seen["second_while_first_runs"] = job_state(client, second_id)
            wait_for(lambda: client.get("/api/searches/first").json()["trials_done"] >= 1, every=0.5)
            seen["old_worker"] = client.get(f"/api/jobs/{first_id}").json()["pid"]
        server.kill()
        server.start()
        with server.client() as client:
            seen["second_after_restart"] = job_state(client, second_id)
            seen["old_worker_alive"] = _alive(seen["old_worker"])
            seen["first_job"] = wait_for_job(client, first_id, seconds=400)
            seen["second_job"] = wait_for_job(client, second_id, seconds=400)
            seen["first"] = client.get("/api/searches/first").json()
            seen["second"] = client.get("/api/searches/second").json()
        yield seen
    finally:
        server.stop()


def test_with_max_jobs_1_the_second_search_waits_in_the_queue(scenario: dict[str, Any]) -> None:
    assert scenario["second_while_first_runs"] == "queued"


def test_a_queued_search_stays_queued_across_a_restart(scenario: dict[str, Any]) -> None:
    assert scenario["second_after_restart"] == "queued"


def test_the_worker_of_a_killed_server_is_ended_on_restart(scenario: dict[str, Any]) -> None:
    assert not scenario["old_worker_alive"]


def test_a_killed_server_resumes_the_search_to_its_exact_trial_count(scenario: dict[str, Any]) -> None:
    first = scenario["first"]
    interrupted = [row for row in first["rows"] if row["reason"] == "interrupted"]
    counted = [row for row in first["rows"] if row["state"] != "running" and row not in interrupted]
    assert (scenario["first_job"]["state"], scenario["first_job"]["restarts"]) == ("done", 1)
    assert first["trials_done"] == len(counted) == 3
    assert len(counted) + len(interrupted) == first["trials_total"]


def test_the_queued_search_runs_after_the_first_one(scenario: dict[str, Any]) -> None:
    assert (scenario["second_job"]["state"], scenario["second"]["trials_done"]) == ("done", 1)
    assert scenario["second_job"]["started_at"] >= scenario["first_job"]["finished_at"]
