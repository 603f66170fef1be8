"""existing_path: a file or folder a task names, checked before it is read."""

from __future__ import annotations

from pathlib import Path

from autopeft.errors import ConfigError


def existing_path(base_dir: Path, relative: str | None, key: str, expected: str) -> Path:
    """The path `key` names, taken from `base_dir`; it must exist and be a folder (when `expected` says
    "a ... folder") or else a file."""
    path = (base_dir / str(relative)).expanduser()
    if not path.exists():
        raise ConfigError(f"{key}: {path} does not exist; expected {expected}")
    if path.is_dir() != expected.endswith("folder"):
        kind = "a folder" if path.is_dir() else "a file"
        raise ConfigError(f"{key}: {path} is {kind}; expected {expected}")
    return path
