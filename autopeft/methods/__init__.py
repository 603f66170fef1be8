"""The method registry: the only place a PEFT method is declared (STYLE.md, "A registry for methods").

The key is the YAML key, the `PeftPlan.methods` key and the name the dashboards show. Adding a method is one
file under `autopeft/methods/` plus one line in `METHODS`. The registry also holds the rules that involve
several methods (METHODS.md §7): each controller declares what it cannot be combined with, and `first_clash`
is the one place those declarations are read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from autopeft.errors import UnknownMethodError
from autopeft.methods.adalora import AdaloraController
from autopeft.methods.controller import (
    MethodConfig,
    MethodController,
    Preparation,
    TrainingContext,
    TrialServices,
)
from autopeft.methods.diffora import DifforaController
from autopeft.methods.ist import IstController
from autopeft.methods.light_peft import LightPeftController

METHODS: dict[str, type[MethodController]] = {
    "ist": IstController,
    "adalora": AdaloraController,
    "diffora": DifforaController,
    "light_peft": LightPeftController,
}


def controller_class(key: str, source: str = "plan") -> type[MethodController]:
    """The controller registered under `key`; an unknown key is an error listing the known ones."""
    if key not in METHODS:
        raise UnknownMethodError(f"{source}: unknown method '{key}'; expected one of {sorted(METHODS)}")
    return METHODS[key]


def first_clash(keys: Iterable[str], init: str | None = None) -> tuple[str, str] | None:
    """The first method of `keys` that METHODS.md §7 forbids beside another of `keys` (or the LoRA `init`),
    with the setting it clashes with; None when they combine."""
    chosen = list(keys)
    others = set(chosen) | ({init} if init is not None else set())
    for key in chosen:
        clash = controller_class(key, source=f"methods.{key}").incompatible_with & others
        if clash:
            return key, min(clash)
    return None


def signals_of(reports: Mapping[str, Mapping[str, Any]]) -> list[dict[str, float]]:
    """What each registered method of a trial learned about where adaptation matters, in its own scale, keyed
    by block (`L3`) or block and module (`L3.query`); methods that learned nothing are left out."""
    signals = (controller_class(key).signals(report) for key, report in reports.items() if key in METHODS)
    return [signal for signal in signals if signal]


__all__ = [
    "METHODS",
    "MethodConfig",
    "MethodController",
    "Preparation",
    "TrainingContext",
    "TrialServices",
    "controller_class",
    "first_clash",
    "signals_of",
]
