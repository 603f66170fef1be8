"""ServiceSettings: the `autopeft serve` flags, validated once before the server binds or writes anything."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from autopeft.errors import ConfigError
from autopeft.serve.auth import AccessTokens

SERVICE_FOLDER = ".serve"
DEFAULT_MAX_BODY_BYTES = 256 * 1024


@dataclass(frozen=True)
class ServiceSettings:
    """Everything the service needs to know; `root` holds the run directories and the service's own folder."""

    root: Path
    tokens: AccessTokens = field(default_factory=AccessTokens)
    database_url: str | None = None
    max_jobs: int = 2
    data_roots: tuple[Path, ...] = ()
    max_trials: int = 200
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    ray_address: str | None = None
    stop_grace_seconds: float = 30.0
    poll_seconds: float = 0.5
    worker_command: tuple[str, ...] = (sys.executable, "-m", "autopeft")

    def __post_init__(self) -> None:
        if self.max_jobs < 1:
            raise ConfigError(f"--max-jobs: expected an integer >= 1, got {self.max_jobs}")
        if self.max_trials < 1:
            raise ConfigError(f"--max-trials: expected an integer >= 1, got {self.max_trials}")
        if self.max_body_bytes < 1024:
            raise ConfigError(f"--max-upload-kib: expected at least 1 KiB, got {self.max_body_bytes} bytes")
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"--root {self.root}: expected a folder for the run directories")
        for data_root in self.data_roots:
            if not data_root.is_dir():
                raise ConfigError(f"--data-root {data_root}: expected an existing folder")

    @property
    def service_dir(self) -> Path:
        """The service's own folder inside the root: database file, job logs, submitted spaces, lock."""
        return self.root / SERVICE_FOLDER

    @property
    def database(self) -> str:
        """The SQLAlchemy URL of the job records: --database, else a SQLite file in the service folder."""
        return self.database_url or f"sqlite:///{(self.service_dir / 'service.db').resolve()}"
