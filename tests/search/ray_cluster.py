"""A running Ray head node as the tests see it, how to start and stop one on 127.0.0.1, and a free port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))


@dataclass(frozen=True)
class RayCluster:
    """A running head node: its address and the environment a driver needs to join it."""

    address: str
    env: dict[str, str]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_head(folder: Path, *flags: str) -> RayCluster:
    """`ray start --head` on 127.0.0.1 with 2 CPUs and token auth, plus `flags`.

    The cluster's token lives in `folder` (RAY_AUTH_TOKEN_PATH), so the tests never read or write ~/.ray;
    `stop_head` ends every process it started."""
    token = folder / "auth_token"
    token.write_text(uuid.uuid4().hex)
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    port = free_port()
    command = [RAY, "start", "--head", "--port", str(port), "--node-ip-address", "127.0.0.1"]
    command += ["--num-cpus", "2", "--num-gpus", "0", "--disable-usage-stats", *flags]
    for agent_port in (
        "--dashboard-agent-listen-port",
        "--dashboard-agent-grpc-port",
        "--metrics-export-port",
    ):
        command += [
            agent_port,
            str(free_port()),
        ]  # fixed by default: a second head's job agent could not bind
    started = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert started.returncode == 0, started.stderr
    return RayCluster(f"127.0.0.1:{port}", env)


def stop_head(cluster: RayCluster) -> None:
    subprocess.run([RAY, "stop", "--force"], env=cluster.env, capture_output=True, timeout=120, check=False)
