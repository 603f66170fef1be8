"""Atomic writes: a temporary file next to the target, then `os.replace`, so a crash never leaves half a file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.partial")
    staging.write_text(text, encoding="utf-8")
    os.replace(staging, path)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write `data` as indented JSON (numbers that are numpy or torch scalars become floats)."""
    write_text_atomic(path, json.dumps(data, indent=2, default=float))
