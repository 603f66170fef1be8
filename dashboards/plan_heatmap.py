"""A trial's plan as a layer x module heatmap: the rank of every adapter, its method, and whether it was pruned.

The planned ranks come from the plan (plan.json or the `plan` user attribute). What training actually kept
comes from the saved adapter's `adapter_config.json` (`target_modules`, `rank_pattern`, `r`): a module the plan
adapted but the adapter lacks, or holds at a lower rank, was pruned during training (Light-PEFT, AdaLoRA).
Reading the adapter rather than a method's own report keeps this true for every method, present or future.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go

from autopeft.model_layout import short_module_name

Grid = tuple[tuple[int | None, ...], ...]


@dataclass(frozen=True)
class PlanHeatmapInfo:
    """Ranks per (module type, layer): planned, and kept by training when the adapter is on disk."""

    title: str
    layers: tuple[int, ...]
    modules: tuple[str, ...]
    planned: Grid
    kept: Grid | None
    alphas: tuple[tuple[float | None, ...], ...]
    methods: tuple[str, ...]

    def status(self, row: int, column: int) -> str:
        """`not adapted`, `adapted`, `pruned` or `rank reduced` for one cell."""
        planned = self.planned[row][column] or 0
        kept = planned if self.kept is None else self.kept[row][column] or 0
        if planned == 0:
            return "not adapted"
        if kept == 0:
            return "pruned"
        return "rank reduced" if kept < planned else "adapted"

    def count(self, status: str) -> int:
        """How many cells have `status`."""
        return sum(
            self.status(i, j) == status for i in range(len(self.modules)) for j in range(len(self.layers))
        )


def plan_heatmap_info(
    plan: Mapping[str, Any], adapter_config: Mapping[str, Any] | None, title: str = "plan"
) -> PlanHeatmapInfo:
    """Lay the plan's adapters on a grid; `adapter_config` (or None when no adapter was saved) gives kept ranks."""
    adapters = list(plan.get("adapters", []))
    layers = tuple(sorted({int(a["layer"]) for a in adapters}))
    modules = tuple(dict.fromkeys(str(a["module"]) for a in adapters))
    by_cell = {(str(a["module"]), int(a["layer"])): a for a in adapters}
    planned = tuple(tuple(_rank(by_cell.get((m, layer))) for layer in layers) for m in modules)
    alphas = tuple(tuple(_alpha(by_cell.get((m, layer))) for layer in layers) for m in modules)
    kept = (
        None
        if adapter_config is None
        else tuple(tuple(_kept_rank(adapter_config, layer, m) for layer in layers) for m in modules)
    )
    methods = ("lora", *plan.get("methods", {}))
    return PlanHeatmapInfo(title, layers, modules, planned, kept, alphas, methods)


def _rank(adapter: Mapping[str, Any] | None) -> int | None:
    return None if adapter is None else int(adapter["rank"])


def _alpha(adapter: Mapping[str, Any] | None) -> float | None:
    return None if adapter is None or int(adapter["rank"]) == 0 else float(adapter["alpha"])


def _kept_rank(config: Mapping[str, Any], layer: int, module: str) -> int | None:
    """The rank the saved adapter holds for (layer, module); 0 when the adapter left it out.

    `target_modules` as a regex string cannot be resolved without the model, so the answer is None (unknown).
    """
    targets = config.get("target_modules") or []
    if isinstance(targets, str):
        return None
    suffix = re.compile(rf"(^|\.){layer}\.{re.escape(module)}$")
    names = [name for name in targets if suffix.search(name)]
    if not names:
        return 0
    return int(config.get("rank_pattern", {}).get(re.escape(names[0]), config.get("r", 0)))


def plan_heatmap_figure(info: PlanHeatmapInfo) -> go.Figure:
    """Heatmap of the kept rank (planned rank when no adapter was saved); pruned cells are marked ✕."""
    ranks = info.kept if info.kept is not None else info.planned
    text = [[_cell_text(info, i, j) for j in range(len(info.layers))] for i in range(len(info.modules))]
    hover = [[_cell_hover(info, i, j) for j in range(len(info.layers))] for i in range(len(info.modules))]
    figure = go.Figure(
        go.Heatmap(
            z=[list(row) for row in ranks],
            x=[f"L{layer}" for layer in info.layers],
            y=[short_module_name(m) for m in info.modules],
            text=text,
            texttemplate="%{text}",
            customdata=hover,
            hovertemplate="%{customdata}<extra></extra>",
            xgap=2,
            ygap=2,
            colorscale=[[0, "#f0f0f0"], [0.001, "#c6dbef"], [1, "#08306b"]],
            zmin=0,
            zmax=max([1, *(r or 0 for row in ranks for r in row)]),
            colorbar={"title": "rank"},
        )
    )
    counts = ", ".join(f"{info.count(s)} {s}" for s in ("adapted", "rank reduced", "pruned") if info.count(s))
    figure.update_layout(
        title=f"{info.title}: {'+'.join(info.methods)}; {counts or 'nothing adapted'}",
        xaxis_title="layer",
        yaxis_title="module",
        yaxis={"autorange": "reversed"},
        margin={"t": 50},
    )
    return figure


def _cell_text(info: PlanHeatmapInfo, row: int, column: int) -> str:
    planned = info.planned[row][column]
    status = info.status(row, column)
    if planned is None:
        return ""
    if status == "pruned":
        return f"✕ {planned}"
    if status == "rank reduced" and info.kept is not None:
        return f"{planned}→{info.kept[row][column]}"
    return str(planned) if planned else "·"


def _cell_hover(info: PlanHeatmapInfo, row: int, column: int) -> str:
    status = info.status(row, column)
    where = f"layer {info.layers[column]} {info.modules[row]}"
    if status == "not adapted":
        return f"{where}<br>not adapted"
    kept = "" if info.kept is None else f", kept rank {info.kept[row][column]}"
    return (
        f"{where}<br>{status}: planned rank {info.planned[row][column]}{kept}, "
        f"alpha {info.alphas[row][column]:g}<br>methods: {'+'.join(info.methods)}"
    )
