"""ServiceLock: one server per root. Two servers on the same run directories would each start the other's
queued jobs; the second one is refused before it binds. The kernel releases the lock when the holder dies,
even by `kill -9`, so a restarted server never finds a stale lock."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from autopeft.errors import ConfigError


class ServiceLock:
    """An exclusive `flock` on `<service folder>/server.lock`, held for the server's lifetime."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(self._fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(self._fd)
            raise ConfigError(
                f"{path}: another autopeft serve (pid {holder}) already serves this --root; stop it first"
            ) from None
        os.ftruncate(self._fd, 0)
        os.write(self._fd, str(os.getpid()).encode())

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1
