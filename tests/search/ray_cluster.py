"""A running Ray head node as the tests see it, and a free port on 127.0.0.1 to start one on."""

from __future__ import annotations

import socket
import sys
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
