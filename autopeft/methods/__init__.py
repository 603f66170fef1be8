"""The method registry: the only place a PEFT method is declared (STYLE.md, "A registry for methods").

The key is the YAML key, the `PeftPlan.methods` key and the name the dashboards show. Adding a method is one
file under `autopeft/methods/` plus one line in `METHODS`.
"""

from __future__ import annotations

from autopeft.errors import UnknownMethodError
from autopeft.methods.controller import MethodController, TrainingContext

METHODS: dict[str, type[MethodController]] = {}


def controller_class(key: str, source: str = "plan") -> type[MethodController]:
    """The controller registered under `key`; an unknown key is an error listing the known ones."""
    if key not in METHODS:
        raise UnknownMethodError(f"{source}: unknown method '{key}'; expected one of {sorted(METHODS) or '[]'}")
    return METHODS[key]


__all__ = ["METHODS", "MethodController", "TrainingContext", "controller_class"]
