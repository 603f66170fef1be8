"""Table: a built table as the replay sees it (rows, the sub-grid they cover, probe facts, hypervolume scale).

Shared by every strategy of `benchmarks/search_quality.py`. Everything a replay looks up more than once (the
probe's facts of each configuration, the scaled hypervolume point of each row) is computed once here, before
the replays start, so that parallel workers receive it with the table instead of recomputing it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from tabular.grid import TableGrid, config_key

from autopeft.pareto.hypervolume import hypervolume
from autopeft.search.plan_probe import CandidateFacts, PlanProbe
from autopeft.search_space import SearchSpace

Row = dict[str, Any]
PERFECT_METRIC = 1.0
"""The best value of every GLUE metric the tables use (accuracy, F1, Matthews correlation)."""


class Table:
    """The rows, the sub-grid they fully cover (a partly built table fixes its outermost dimensions), the
    space restricted to it, and the normalisation of the hypervolume.

    The hypervolume's metric axis runs from `metric_reference` (a task metric that is worth nothing: a coin's
    accuracy 0.5, Matthews correlation 0.0, the majority class's F1) to a perfect 1.0, so that a table's figures
    mean the same share of the possible whatever its metric; the parameter axis runs from 0 to 1.1 x the
    table's largest parameter count. 1.0 would be a perfect classifier at zero parameters.
    """

    def __init__(self, grid: TableGrid, rows: dict[str, Row], metric_reference: float = 0.5) -> None:
        if not metric_reference < PERFECT_METRIC:
            raise SystemExit(
                f"--metric-reference: expected a value below {PERFECT_METRIC}, got {metric_reference}"
            )
        self.rows = rows
        self.metric_reference = metric_reference
        self.dimensions = _covered_dimensions(grid, rows)
        self.fixed = {n: c[0] for n, c in grid.dimensions.items() if n not in self.dimensions}
        self.grid = TableGrid(_restricted(grid.space, self.fixed), grid.layout, self.dimensions)
        self._probe = PlanProbe(self.grid.space, self.grid.layout)
        configurations = list(self.grid.configurations())
        self._facts = {config_key(params): self._probe(params) for params in configurations}
        complete = [r for r in map(self.row, configurations) if r["state"] == "complete"]
        if not complete:
            raise SystemExit("the table has no complete row yet: build some with build_table.py first")
        self.max_parameters = max(r["objectives"]["trainable_parameters"] for r in complete)
        self._scaled = {r["key"]: self._scale(r) for r in complete}
        self.best_hypervolume = hypervolume(list(self._scaled.values()), (1.0, 1.0))

    def row(self, params: dict[str, Any]) -> Row:
        return self.rows[config_key({**self.fixed, **params})]

    def probe(self, params: dict[str, Any]) -> CandidateFacts:
        """The facts a real search's probe gives (`PlanProbe` on the table's space), computed once per
        configuration (every one of the covered grid when the table is read)."""
        key = config_key(params)
        if key not in self._facts:
            self._facts[key] = self._probe(params)
        return self._facts[key]

    def hypervolume(self, keys: Sequence[str]) -> float:
        """2-D hypervolume of the complete rows `keys` (task metric max, parameters min) against the fixed
        reference, normalised to [0, 1]."""
        return hypervolume([self._scaled[key] for key in keys], (1.0, 1.0))

    def _scale(self, row: Row) -> tuple[float, float]:
        """A row's (parameters, 1 - metric) point, both minimised, with the reference at (1, 1)."""
        metric, parameters = row["objectives"]["task_metric"], row["objectives"]["trainable_parameters"]
        return parameters / (1.1 * self.max_parameters), (PERFECT_METRIC - metric) / (
            PERFECT_METRIC - self.metric_reference
        )


def _covered_dimensions(grid: TableGrid, rows: dict[str, Row]) -> dict[str, tuple[Any, ...]]:
    """The largest prefix of the build order the table covers completely: dimensions are dropped to their
    first choice, outermost first, until every combination of the rest has a row (a partial table stays
    usable)."""
    dimensions = dict(grid.dimensions)
    for name in grid.dimensions:
        if _covers(rows, dimensions):
            break
        dimensions[name] = dimensions[name][:1]
    return {n: c for n, c in dimensions.items() if len(c) > 1}


def _restricted(space: SearchSpace, fixed: dict[str, Any]) -> SearchSpace:
    """The space with each fixed method knob set to its one value (only method dimensions can be fixed)."""
    methods = {key: dict(block) for key, block in space.methods.items()}
    for name, value in fixed.items():
        key, knob = name.split(".", 1)
        if key not in methods:
            raise SystemExit(f"the table covers too little of the space: {name} would have to be fixed")
        methods[key][knob] = value
    return space.model_copy(update={"methods": methods})


def _covers(rows: dict[str, Row], dimensions: dict[str, tuple[Any, ...]]) -> bool:
    names = list(dimensions)
    return all(
        config_key(dict(zip(names, combo, strict=True))) in rows
        for combo in itertools.product(*dimensions.values())
    )
