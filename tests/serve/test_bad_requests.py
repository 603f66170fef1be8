"""The bad-request catalogue on a real server: each request gets its status and one JSON message naming the
field and the rule, and changes nothing (no file under the root, no job)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.serve.conftest import space_text
from tests.serve.service_process import ServiceProcess

MAX_TRIALS = 5


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> dict[str, Path]:
    """A second data root holding a symlink that leads out of it, and a folder for space files."""
    data = tmp_path_factory.mktemp("data")
    (data / "escape").symlink_to("/etc")
    return {"data": data, "spaces": tmp_path_factory.mktemp("spaces"), "model": data_root}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, folders: dict[str, Path]) -> Iterator[ServiceProcess]:
    flags = ["--data-root", str(folders["model"]), "--data-root", str(folders["data"])]
    server = ServiceProcess(
        tmp_path_factory.mktemp("bad") / "root", [*flags, "--max-trials", str(MAX_TRIALS)]
    )
    yield server.start()
    server.stop()


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under the root but the database and lock: path -> (size, mtime)."""
    found = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            if not name.startswith(("service.db", "server.lock")):
                stat = path.stat()
                found[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns)
    return found


def _space(folders: dict[str, Path], model: str | Path | None = None, **overrides: str) -> str:
    return space_text(folders["spaces"], model or folders["model"], **overrides)


def _space_cases(folders: dict[str, Path]) -> list[tuple[str, str]]:
    """(search-space YAML, expected message) pairs; each is refused with 400."""
    model, data = folders["model"], folders["data"]
    rule = f"inside a data root ({model}, {data})"
    builtin = "expected a built-in model name (minilm) or an absolute path"
    file_task = "{name: file, train_file: /etc/passwd, dev_file: /etc/passwd}"
    limit = f"trials: this server runs at most {MAX_TRIALS} trials per search (--max-trials)"
    return [
        ("model: [unclosed", "s.yaml: line 1: invalid YAML"),
        (_space(folders) + "colour: red\n", "s.yaml: colour: unknown key; remove it or check its spelling"),
        (_space(folders, "/etc"), f"s.yaml: model: {builtin} {rule}, got '/etc'"),
        (
            _space(folders, f"{model}/../../../etc"),
            f"s.yaml: model: '..' is not allowed in paths; expected a path {rule}",
        ),
        (_space(folders, f"{data}/escape"), f"s.yaml: model: {builtin} {rule}, got '{data}/escape'"),
        (
            _space(folders, "some-org/some-model"),
            f"s.yaml: model: {builtin} {rule}, got 'some-org/some-model'",
        ),
        (
            _space(folders).replace("{name: demo}", file_task),
            f"s.yaml: task.train_file: expected an absolute path {rule}, got '/etc/passwd'",
        ),
        (
            _space(folders).replace("{name: demo}", "{name: hub, dataset: x}"),
            "s.yaml: task.name: 'hub' downloads a data set, which the service never does",
        ),
        (_space(folders, trials=50), f"s.yaml: {limit}, got 50"),
    ]


def _body_cases(folders: dict[str, Path]) -> list[tuple[dict[str, Any], int, str]]:
    """(POST /api/searches body, status, expected message start)."""
    space = _space(folders)
    name_rule = "name: expected 1-100 letters, digits, '.', '_' or '-' starting with a letter or digit"
    return [
        (
            {"name": "s", "space": space, "trials": MAX_TRIALS + 1},
            400,
            f"trials: this server runs at most {MAX_TRIALS} trials per search (--max-trials), got 6",
        ),
        ({"name": "../evil", "space": space}, 400, f"{name_rule}, got '../evil'"),
        ({"name": ".serve", "space": space}, 400, f"{name_rule}, got '.serve'"),
        ({"name": "s", "space": space, "backend": "ray"}, 400, "backend: 'ray' needs a server started with"),
        ({"name": "s", "space": space, "trials": "many"}, 422, "body.trials: "),
        ({"name": "s"}, 422, "body.space: required key is missing"),
        ({"name": "s", "space": "x: 1", "owner": "me"}, 422, "body.owner: unknown key; remove it"),
        (
            {"name": "s", "space": "x" * (300 * 1024)},
            413,
            "request body: expected at most 262144 bytes (256 KiB), got ",
        ),
    ]


ROUTE_CASES = [
    ("GET", "/api/searches/nope", None, 404, "study 'nope': no run directory"),
    ("POST", "/api/searches/nope/stop", None, 404, "study 'nope': no run directory"),
    ("POST", "/api/searches/nope/resume", None, 404, "study 'nope': no run directory"),
    ("DELETE", "/api/searches/nope", None, 404, "study 'nope': no run directory"),
    ("DELETE", "/api/searches/..%2Froot", None, 404, "no route DELETE /api/searches/../root"),
    ("POST", "/api/searches/nope/audits", {"trial": 0}, 404, "study 'nope': no run directory"),
    ("POST", "/api/searches/nope/audits", {"trial": -1}, 422, "body.trial: "),
    ("GET", "/api/jobs/424242", None, 404, "job 424242: no such job"),
    ("GET", "/api/jobs/424242/log", None, 404, "job 424242: no such job"),
    ("POST", "/api/jobs/424242/stop", None, 404, "job 424242: no such job"),
    ("GET", "/api/jobs?state=sleeping", None, 400, "state: expected one of"),
    ("GET", "/api/nothing", None, 404, "no route GET /api/nothing"),
]


def _cases(folders: dict[str, Path]) -> list[tuple[str, str, Any, int, str]]:
    """(method, path, JSON body, status, expected message start) for every bad request."""
    spaces = [("POST", "/api/searches", {"name": "s", "space": t}, 400, m) for t, m in _space_cases(folders)]
    bodies = [("POST", "/api/searches", b, status, m) for b, status, m in _body_cases(folders)]
    return [*spaces, *bodies, *ROUTE_CASES]


CASE_COUNT = 29


@pytest.mark.parametrize("index", range(CASE_COUNT))
def test_a_bad_request_gets_its_status_and_message_and_changes_nothing(
    server: ServiceProcess, folders: dict[str, Path], index: int
) -> None:
    method, path, body, status, message = _cases(folders)[index]
    before = _snapshot(server.root)
    with server.client() as client:
        jobs_before = client.get("/api/jobs").json()
        response = client.request(method, path, json=body)
        jobs_after = client.get("/api/jobs").json()
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert list(response.json()) == ["message"]
    assert response.json()["message"].startswith(message)
    assert _snapshot(server.root) == before and jobs_after == jobs_before == []


def test_the_catalogue_is_complete(folders: dict[str, Path]) -> None:
    assert len(_cases(folders)) == CASE_COUNT


def test_a_malformed_json_body_gets_one_message(server: ServiceProcess) -> None:
    with server.client() as client:
        response = client.post(
            "/api/searches", content=b"{not json", headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 422
    assert response.json() == {
        "message": "body: expected a JSON object (Expecting property name enclosed in double quotes at position 1)"
    }
