"""The JSON API on a real server: a 2-trial search of the tiny model runs to the end, is listed beside a run
the CLI started, is audited, resumed with more trials, and deleted."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.serve.conftest import space_text
from tests.serve.service_process import ServiceProcess, wait_for_job


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Iterator[ServiceProcess]:
    root = tmp_path_factory.mktemp("service") / "root"
    server = ServiceProcess(root, ["--data-root", str(data_root), "--max-trials", "5"]).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def finished(
    server: ServiceProcess, data_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The job of a 2-trial search named `tiny`, run to the end."""
    text = space_text(tmp_path_factory.mktemp("space"), data_root)
    with server.client() as client:
        response = client.post("/api/searches", json={"name": "tiny", "space": text, "trials": 2})
        assert response.status_code == 201, response.text
        return wait_for_job(client, response.json()["id"])


def test_a_two_trial_search_finishes_with_two_trials(
    server: ServiceProcess, finished: dict[str, Any]
) -> None:
    with server.client() as client:
        study = client.get("/api/searches/tiny").json()
    assert (study["state"], study["trials_done"], study["trials_total"]) == ("done", 2, 2)
    assert [row["number"] for row in study["rows"]] == [0, 1]
    assert (server.root / "tiny" / "run.json").is_file()


def test_the_list_gives_trials_best_point_hypervolume_and_backend(
    server: ServiceProcess, finished: dict[str, Any]
) -> None:
    with server.client() as client:
        listed = {study["name"]: study for study in client.get("/api/searches").json()}
    tiny = listed["tiny"]
    assert (tiny["trials_done"], tiny["trials_asked"], tiny["backend"]) == (2, 2, "optuna")
    assert tiny["best"]["values"].keys() == {"task_metric", "trainable_parameters"}
    assert tiny["hypervolume"] > 0
    assert tiny["started_at"] is not None


def test_a_run_the_cli_started_is_listed(server: ServiceProcess, data_root: Path, tmp_path: Path) -> None:
    space = tmp_path / "cli.yaml"
    space.write_text(space_text(tmp_path, data_root, trials=1))
    command = [sys.executable, "-m", "autopeft", "search", str(space), "--out", str(server.root / "from-cli")]
    subprocess.run([*command, "--quiet"], check=True, capture_output=True, timeout=600)
    with server.client() as client:
        listed = {study["name"]: study for study in client.get("/api/searches").json()}
    assert (listed["from-cli"]["state"], listed["from-cli"]["managed"]) == ("external", False)
    assert listed["from-cli"]["trials_done"] == 1


def test_an_audit_of_a_finished_trial_writes_its_report(
    server: ServiceProcess, finished: dict[str, Any]
) -> None:
    trial = next(n for n in (0, 1) if (server.root / "tiny" / "trials" / str(n) / "adapter").is_dir())
    with server.client() as client:
        response = client.post("/api/searches/tiny/audits", json={"trial": trial, "spectrum": "top"})
        assert response.status_code == 202, response.text
        wait_for_job(client, response.json()["id"])
        audit = client.get(f"/api/searches/tiny/audits/{trial}").json()
    assert audit["ready"] and audit["job"]["state"] == "done"
    assert (server.root / "tiny" / "trials" / str(trial) / "audit.json").is_file()


def test_audit_requests_outside_the_rules_are_refused_and_queue_nothing(
    server: ServiceProcess, finished: dict[str, Any]
) -> None:
    trial = next(n for n in (0, 1) if (server.root / "tiny" / "trials" / str(n) / "adapter").is_dir())
    with server.client() as client:
        before = client.get("/api/jobs").json()
        outside = client.post("/api/searches/tiny/audits", json={"trial": trial, "base": "/etc"})
        unknown = client.post("/api/searches/tiny/audits", json={"trial": 99})
        after = client.get("/api/jobs").json()
    assert outside.status_code == 400
    assert outside.json()["message"].startswith(
        "base: expected a built-in model name (minilm) or an absolute path"
    )
    assert unknown.status_code == 404
    assert unknown.json() == {
        "message": "study 'tiny': trial 99 has no adapter (unknown or unfinished trial)"
    }
    assert after == before


def test_a_second_search_with_a_taken_name_is_refused(
    server: ServiceProcess, finished: dict[str, Any]
) -> None:
    with server.client() as client:
        response = client.post("/api/searches", json={"name": "tiny", "space": "model: minilm"})
    assert response.status_code == 409
    assert response.json()["message"].startswith("name: study 'tiny' already exists under the root")


def test_the_log_of_a_job_is_its_tail(server: ServiceProcess, finished: dict[str, Any]) -> None:
    with server.client() as client:
        lines = client.get(f"/api/jobs/{finished['id']}/log", params={"lines": 3}).json()["lines"]
        everything = client.get(f"/api/jobs/{finished['id']}/log", params={"lines": 5000}).json()["lines"]
    assert len(lines) == 3 and lines == everything[-3:]
    assert everything[0].endswith(finished["command"])


def test_resume_with_more_trials_runs_only_the_missing_one(
    server: ServiceProcess, finished: dict[str, Any]
) -> None:
    with server.client() as client:
        response = client.post("/api/searches/tiny/resume", json={"trials": 3})
        assert response.status_code == 202, response.text
        wait_for_job(client, response.json()["id"])
        study = client.get("/api/searches/tiny").json()
    assert (study["trials_done"], study["trials_total"], study["trials_asked"]) == (3, 3, 3)


def test_openapi_describes_the_api(server: ServiceProcess) -> None:
    with server.client() as client:
        paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/searches", "/api/searches/{name}/stop", "/api/jobs/{job_id}/log"} <= set(paths)


def test_delete_removes_the_run_directory_and_the_listing(
    server: ServiceProcess, finished: dict[str, Any]
) -> None:
    with server.client() as client:
        response = client.delete("/api/searches/tiny")
        listed = [study["name"] for study in client.get("/api/searches").json()]
    assert response.status_code == 200, response.text
    assert json.loads(response.text) == {"message": "study 'tiny' deleted"}
    assert not (server.root / "tiny").exists() and "tiny" not in listed
