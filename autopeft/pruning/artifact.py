"""The Light-PEFT artifact: the pruning plan shipped beside the adapter it was trained with.

A Light-PEFT adapter fits only the pruned base. The trial writes the plan next to the adapter, and whoever loads
or audits the adapter (`autopeft.export.load_exported`, `autopeft audit RUN --trial N`) prunes the original
checkpoint the same way first. This module is the one place that knows the file's name and what to do with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from torch import nn

from autopeft.pruning.pruning_plan import PruningPlan, load_pruned

PRUNING_PLAN_FILE = "pruning_plan.json"

Base = TypeVar("Base", str, nn.Module)


def artifact_files(plan: PruningPlan) -> dict[str, Any]:
    """The JSON files a pruned trial saves next to its adapter (file name -> content)."""
    return {PRUNING_PLAN_FILE: plan.to_dict()}


def is_pruned_adapter(folder: Path) -> bool:
    """True when the adapter in `folder` was trained on a pruned base (it carries a pruning plan)."""
    return (Path(folder) / PRUNING_PLAN_FILE).is_file()


def base_for_adapter(base: Base, folder: Path) -> Base | nn.Module:
    """The base the adapter in `folder` fits: `base` itself, or, for a Light-PEFT adapter, the original
    checkpoint (a folder or a loaded model) pruned by the plan stored beside the adapter (files untouched)."""
    if not is_pruned_adapter(folder):
        return base
    return load_pruned(base, PruningPlan.load(Path(folder) / PRUNING_PLAN_FILE))
