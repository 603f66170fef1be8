"""The error types autopeft raises for bad input.

The CLI catches `AutopeftError` in one place, prints its message on one line and exits with code 2.
Each type that replaces a built-in error also subclasses it, so `except ValueError` keeps working.
"""

from __future__ import annotations


class AutopeftError(Exception):
    """Base of every error caused by the user's input rather than by a bug."""


class ConfigError(AutopeftError, ValueError):
    """A search space, a CLI flag or a run directory is malformed."""


class PlanError(AutopeftError, ValueError):
    """A PEFT plan does not fit its model or combines settings that cannot work together."""


class UnknownMethodError(PlanError, KeyError):
    """A plan or search space names a PEFT method that is not in the registry."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class CheckpointError(AutopeftError, FileNotFoundError):
    """A model, adapter or trial artifact is missing or cannot be read."""
