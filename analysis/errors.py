"""The error types the audit raises for bad input.

`autopeft/cli/main.py` catches `AnalysisError`, prints its one-line message and exits with code 2. Each type that
stands for a built-in error also subclasses it, so `except ValueError` in caller code keeps working.
"""

from __future__ import annotations


class AnalysisError(Exception):
    """Base of every audit error caused by the input rather than by a bug."""


class CheckpointError(AnalysisError, ValueError):
    """A checkpoint or adapter file is missing, unreadable, corrupt, or refused (pickle without permission)."""


class ShapeMismatchError(AnalysisError, ValueError):
    """Two matrices that are paired by name have different shapes."""


class AdapterMismatchError(ShapeMismatchError):
    """A base model does not fit an adapter: a targeted module is missing or has another shape."""


class DeviceError(AnalysisError, RuntimeError):
    """The requested compute device is not available."""


class AuditConfigError(AnalysisError, ValueError):
    """An audit option has an invalid value."""
