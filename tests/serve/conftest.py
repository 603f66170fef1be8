"""Fixtures for the service tests: a data root holding the tiny BERT, small space texts, and servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.serve.service_process import ServiceProcess
from tests.space_files import write_space


@pytest.fixture(scope="session")
def data_root(tiny_bert_dir: Path) -> Path:
    """The folder requests may name: the tiny BERT model folder itself."""
    return tiny_bert_dir


def space_text(folder: Path, model: Path | str, trials: int = 2, **overrides: str) -> str:
    """A small demo-task space for `model` as YAML text (what a client sends)."""
    folder.mkdir(parents=True, exist_ok=True)
    return write_space(folder, model, trials=trials, **overrides).read_text()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """Start servers on a root under `tmp_path`; every one is stopped after the test."""
    started: list[ServiceProcess] = []

    def start(
        *flags: str, root: Path | None = None, host: str = "127.0.0.1", **headers: str
    ) -> ServiceProcess:
        server = ServiceProcess(root or tmp_path / "root", list(flags), host, dict(headers))
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()
