"""The job records in a real PostgreSQL (Debian's `postgresql` package; a throwaway cluster on a free port,
run by an unprivileged user): a search run through the service is recorded there and still listed by a
server started again on the same database."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.search.ray_cluster import free_port
from tests.serve.conftest import space_text
from tests.serve.service_process import ServiceProcess, wait_for_job


def _postgres_bin() -> Path | None:
    """The newest installed server's bin folder; installs Debian's package (as root) when none is."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "postgresql"], capture_output=True, check=False)
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


def _user() -> str:
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    pytest.skip("no unprivileged user (postgres or nobody) to run the PostgreSQL cluster as")


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    binaries = _postgres_bin()
    if binaries is None:
        pytest.skip("PostgreSQL is not installed and `apt-get install postgresql` did not work here")
    user = _user()
    folder = Path(tempfile.mkdtemp(prefix="autopeft-pg-"))
    shutil.chown(folder, user)
    port = free_port()

    def as_user(*command: str) -> None:
        subprocess.run(["runuser", "-u", user, "--", *command], check=True, capture_output=True, timeout=120)

    as_user(str(binaries / "initdb"), "-D", str(folder / "db"), "-U", "postgres", "--auth=trust")
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
    as_user(
        str(binaries / "pg_ctl"),
        "-D",
        str(folder / "db"),
        "-o",
        options,
        "-l",
        str(folder / "log"),
        "-w",
        "start",
    )
    try:
        as_user(str(binaries / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "autopeft")
        yield f"postgresql://postgres@127.0.0.1:{port}/autopeft"
    finally:
        as_user(str(binaries / "pg_ctl"), "-D", str(folder / "db"), "-m", "fast", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def test_jobs_are_recorded_in_postgresql_and_survive_a_restart(
    postgres_url: str, data_root: Path, tmp_path: Path
) -> None:
    flags = ["--database", postgres_url, "--data-root", str(data_root)]
    server = ServiceProcess(tmp_path / "root", flags).start()
    try:
        with server.client() as client:
            created = client.post(
                "/api/searches", json={"name": "pg", "space": space_text(tmp_path, data_root, 1)}
            )
            wait_for_job(client, created.json()["id"])
        server.stop()
        server.start()
        with server.client() as client:
            jobs = client.get("/api/jobs").json()
            study = client.get("/api/searches/pg").json()
    finally:
        server.stop()
    engine = create_engine(postgres_url.replace("postgresql:", "postgresql+psycopg2:"))
    with engine.connect() as connection:
        stored = connection.execute(text("select study, state, owner from autopeft_jobs")).all()
    engine.dispose()
    assert [tuple(row) for row in stored] == [("pg", "done", "local")]
    assert [(job["study"], job["state"]) for job in jobs] == [("pg", "done")]
    assert study["trials_done"] == 1
    assert not (tmp_path / "root" / ".serve" / "service.db").exists()


def test_an_unreachable_database_is_one_message_before_binding(tmp_path: Path) -> None:
    url = f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    command = [sys.executable, "-m", "autopeft", "serve", "--root", str(tmp_path / "root"), "--database", url]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.startswith(f"autopeft: error: --database {url}: cannot open it; expected a reachable")
