"""Tokens on a real server: beyond loopback a token is required; viewer tokens read but never change; a wrong
or missing token gets 401, a cross-site write 403, each with one JSON message."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.serve.service_process import ServiceProcess

EDITOR, VIEWER = "editor-secret-1", "viewer-secret-1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    flags = ["--token", f"alice={EDITOR}", "--viewer-token", f"bob={VIEWER}"]
    server = ServiceProcess(
        tmp_path_factory.mktemp("access") / "root", flags, "0.0.0.0", {"X-Autopeft-Token": EDITOR}
    )
    yield server.start()
    server.stop()


def _serve(folder: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """`autopeft serve --root FOLDER/root FLAGS`, expected to refuse to start."""
    command = [sys.executable, "-m", "autopeft", "serve", "--root", str(folder / "root"), *flags]
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=300)


def test_binding_beyond_loopback_without_a_token_is_refused(tmp_path: Path) -> None:
    done = _serve(tmp_path, "--host", "0.0.0.0")
    assert done.returncode == 2
    assert done.stderr.strip().endswith(
        "--host 0.0.0.0: listening beyond this machine needs a token; pass --token (or set "
        "AUTOPEFT_SERVE_TOKEN), or keep the default --host 127.0.0.1"
    )
    assert not (tmp_path / "root").exists()


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "this server needs a token"),
        ({"X-Autopeft-Token": "wrong"}, "the token is not valid"),
        ({"Authorization": "Bearer wrong"}, "the token is not valid"),
    ],
)
def test_a_missing_or_wrong_token_gets_401(
    server: ServiceProcess, headers: dict[str, str], message: str
) -> None:
    for path in ("/api/searches", "/api/health", "/openapi.json", "/"):
        response = httpx.get(server.url + path, headers=headers)
        assert response.status_code == 401
        assert response.json()["message"].startswith(f"{message}: send the header X-Autopeft-Token")
        assert response.headers["www-authenticate"] == 'Bearer realm="autopeft"'


def test_a_viewer_token_reads_but_cannot_change(server: ServiceProcess) -> None:
    with server.client(**{"X-Autopeft-Token": VIEWER}) as viewer:
        listed = viewer.get("/api/searches")
        created = viewer.post("/api/searches", json={"name": "x", "space": "model: minilm"})
    assert listed.status_code == 200
    assert created.status_code == 403
    assert created.json() == {"message": "token 'bob' is a viewer token: it may read, not change"}


def test_an_editor_token_passes_as_a_bearer_header(server: ServiceProcess) -> None:
    with server.client(Authorization=f"Bearer {EDITOR}", **{"X-Autopeft-Token": ""}) as editor:
        response = editor.post("/api/searches", json={"name": "x"})
    assert response.status_code == 422  # past the guard: the body itself is checked


def test_a_cross_site_write_is_refused(server: ServiceProcess) -> None:
    with server.client(Origin="http://evil.example") as client:
        response = client.delete("/api/searches/anything")
    assert response.status_code == 403
    assert response.json()["message"].startswith("cross-site request refused")


def test_a_token_in_the_query_sets_a_cookie_for_the_pages(server: ServiceProcess) -> None:
    with httpx.Client(base_url=server.url) as browser:
        first = browser.get("/", params={"token": VIEWER})
        later = browser.get("/jobs")
    assert first.status_code == later.status_code == 200
    assert "httponly" in first.headers["set-cookie"].lower()


def test_on_loopback_a_configured_token_is_still_required(
    start_server: Callable[..., ServiceProcess],
) -> None:
    server = start_server("--token", EDITOR, **{"X-Autopeft-Token": EDITOR})
    assert httpx.get(server.url + "/api/searches").status_code == 401
    assert httpx.get(server.url + "/api/searches", headers={"X-Autopeft-Token": EDITOR}).status_code == 200


def test_a_ray_address_without_a_reachable_job_api_is_one_message(tmp_path: Path) -> None:
    address = "127.0.0.1:1"
    done = _serve(tmp_path, "--ray-address", address)
    assert done.returncode == 2
    assert done.stderr.startswith(
        f"autopeft: error: --ray-address {address}: cannot reach Ray's job API there"
    )


def test_a_second_server_on_the_same_root_is_refused(server: ServiceProcess) -> None:
    command = [sys.executable, "-m", "autopeft", "serve", "--root", str(server.root), "--port", "0"]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "already serves this --root; stop it first" in done.stderr
