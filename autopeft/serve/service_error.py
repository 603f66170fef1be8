"""ServiceError: a request the service refuses, with its HTTP status and one message that names the field
and what was expected. The app turns it into a JSON body `{"message": ...}` (or the form's error line)."""

from __future__ import annotations

from typing import Any

from autopeft.config_error import key_path


class ServiceError(Exception):
    """A refused request: `status` is the HTTP status (4xx), `message` the one line the caller sees."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bad_request(message: str) -> ServiceError:
    return ServiceError(400, message)


def not_found(message: str) -> ServiceError:
    return ServiceError(404, message)


def conflict(message: str) -> ServiceError:
    return ServiceError(409, message)


def validation_message(errors: Any) -> str:
    """The first problem of a request, as `body.trials: expected ..., got ...`."""
    first = next(iter(errors))
    where = key_path(tuple(first.get("loc", ())))
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    if first.get("type") == "extra_forbidden":
        message = "unknown key; remove it or check its spelling"
    elif first.get("type") == "missing":
        message = "required key is missing"
    elif first.get("type") == "json_invalid":
        position = first["loc"][-1] if first.get("loc") else "?"
        error = first.get("ctx", {}).get("error", "invalid JSON")
        return f"body: expected a JSON object ({error} at position {position})"
    elif "input" in first and first.get("type") != "value_error":
        message = f"{message}, got {first['input']!r}"[:300]
    return f"{where}: {message}"
