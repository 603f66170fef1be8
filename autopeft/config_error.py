"""Turn pydantic validation errors into one-line `ConfigError` messages that name file, key and value."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from autopeft.errors import ConfigError


def key_path(location: tuple[Any, ...]) -> str:
    """`('dimensions', 'rank', 'choices', 2)` -> `dimensions.rank.choices[2]`."""
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(top level)"


def config_error_from(error: ValidationError, source: str) -> ConfigError:
    """The first problem of `error` as `source: key.path: expected ..., got ...`.

    Only the first problem is shown: one clear message beats a dump of every follow-on complaint.
    """
    first = error.errors(include_url=False)[0]
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown key; remove it or check its spelling"
    elif first["type"] == "missing":
        message = "required key is missing"
    elif "input" in first and first["type"] not in ("value_error", "assertion_error"):
        message = f"{message}, got {first['input']!r}"
    if not first["loc"]:
        return ConfigError(f"{source}: {message}")
    return ConfigError(f"{source}: {key_path(tuple(first['loc']))}: {message}")
