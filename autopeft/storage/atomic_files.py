"""JSON files on disk: atomic writes (a temporary file, then `os.replace`, so a crash never leaves half a file)
and reads whose failures name the file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from autopeft.errors import ConfigError


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to a staging file beside `path`, then swap it in; a failed swap removes the staging file, so
    nothing is left behind (callers check `path` first: a folder in its place is bad input, not a bug)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.partial")
    try:
        staging.write_text(text, encoding="utf-8")
        os.replace(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: Any) -> None:
    """Write `data` as indented JSON (numbers that are numpy or torch scalars become floats)."""
    write_text_atomic(path, json.dumps(data, indent=2, default=float))


def read_json(path: Path) -> Any:
    """Read a JSON file; a missing or corrupt one is a `ConfigError` naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}: not valid JSON ({error.msg} at line {error.lineno})") from None
