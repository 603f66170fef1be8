"""A real Ray cluster for the Ray driver tests: `ray start --head` on 127.0.0.1 with 2 CPUs and token auth, and
no dashboard (the driver needs none)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.search.ray_cluster import RayCluster, start_head, stop_head


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    pytest.importorskip("ray")
    cluster = start_head(tmp_path_factory.mktemp("ray_cluster"), "--include-dashboard", "false")
    try:
        yield cluster
    finally:
        stop_head(cluster)
