"""A real Ray cluster for the Ray driver tests: `ray start --head` on 127.0.0.1 with 2 CPUs and token auth.

The cluster's token lives in the test's temporary folder (RAY_AUTH_TOKEN_PATH), so the tests never read or
write ~/.ray, and `ray stop --force` ends every process it started afterwards.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from tests.search.ray_cluster import RAY, RayCluster, free_port


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    pytest.importorskip("ray")
    folder = tmp_path_factory.mktemp("ray_cluster")
    token = folder / "auth_token"
    token.write_text(uuid.uuid4().hex)
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    port = free_port()
    started = subprocess.run(
        [
            RAY,
            "start",
            "--head",
            "--port",
            str(port),
            "--node-ip-address",
            "127.0.0.1",
            "--num-cpus",
            "2",
            "--num-gpus",
            "0",
            "--include-dashboard",
            "false",
            "--disable-usage-stats",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    try:
        yield RayCluster(f"127.0.0.1:{port}", env)
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=120, check=False)
