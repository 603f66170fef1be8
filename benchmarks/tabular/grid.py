"""TableGrid: the discrete space of the tabular benchmark, enumerated, and the rows measured on it.

The space is an ordinary autopeft search space (`space.yaml`), so the plan of a configuration is exactly the
plan `SearchSpace.sample` builds in a real search, and the replay presents the same dimensions to every
sampler. Shared by `build_table.py` (which fills `table.jsonl`) and `benchmarks/search_quality.py` (which
replays it).
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from autopeft.methods.resolved_plan import ResolvedPlan
from autopeft.model_layout import ModelLayout, short_module_name
from autopeft.models import load_classifier, load_tokenizer, resolve_model_path
from autopeft.plan import PeftPlan
from autopeft.search_space import SearchSpace
from autopeft.tasks.task import load_task

logger = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
SPACE_FILE = HERE / "space.yaml"
TABLE_FILE = HERE / "table.jsonl"
Params = dict[str, Any]


def config_key(params: Params) -> str:
    """The row key of a configuration: its parameters sorted by name, `name=value` joined by `|`."""
    return "|".join(f"{name}={params[name]}" for name in sorted(params))


def compact_plan(plan: PeftPlan) -> dict[str, Any]:
    """The plan in short: adapted modules as `layer.module:rank`, the methods that run and the summary line
    (the full plan is rebuilt from the params and space.yaml with `TableGrid.plan`)."""
    return {
        "adapters": [f"{a.layer}.{short_module_name(a.module)}:{a.rank}" for a in plan.adapted],
        "methods": sorted(plan.methods),
        "summary": plan.summary(),
    }


@dataclass(frozen=True)
class TableGrid:
    """The space, the model layout it is sampled against, and its dimensions with their choices in build order
    (method dimensions outermost, so a partly built table holds whole sub-grids)."""

    space: SearchSpace
    layout: ModelLayout
    dimensions: dict[str, tuple[Any, ...]]

    @classmethod
    def load(cls, space_file: Path = SPACE_FILE) -> TableGrid:
        space = SearchSpace.load(space_file)
        task = load_task(space.task, space_file.parent, space.seed)
        folder = resolve_model_path(space.model)
        model = load_classifier(folder, len(task.labels), load_tokenizer(folder).pad_token_id)
        layout = ModelLayout.from_model(model, space.model)
        return cls(space, layout, _dimensions(space, layout))

    def configurations(self) -> Iterator[Params]:
        """Every combination of the choices, in build order."""
        names = list(self.dimensions)
        for values in itertools.product(*(self.dimensions[name] for name in names)):
            yield dict(zip(names, values, strict=True))

    def plan(self, params: Params) -> PeftPlan:
        """The plan a real search builds for these parameters."""
        return self.space.sample(optuna.trial.FixedTrial(params), self.layout)

    def cost(self, params: Params) -> int:
        """Trainable parameters counted against the budget before training (exact; an upper bound for
        Light-PEFT, whose pruning is decided during the trial)."""
        return ResolvedPlan.resolve(self.plan(params), self.layout).cost


def _dimensions(space: SearchSpace, layout: ModelLayout) -> dict[str, tuple[Any, ...]]:
    """Ask the space once through a real trial; every dimension is always asked, so one trial shows all."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    space.sample(trial, layout)
    choices = {
        name: tuple(distribution.choices)
        for name, distribution in trial.distributions.items()
        if isinstance(distribution, optuna.distributions.CategoricalDistribution)
    }
    methods = sorted(name for name in choices if "." in name and not name.startswith(("rank", "layer")))
    return {name: choices[name] for name in [*methods, *sorted(set(choices) - set(methods))]}


def read_rows(table_file: Path = TABLE_FILE) -> dict[str, dict[str, Any]]:
    """The rows stored so far, by key; a line cut short by a killed build is skipped (it is rebuilt)."""
    rows: dict[str, dict[str, Any]] = {}
    if not table_file.exists():
        return rows
    for line in table_file.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            logger.warning("%s: skipping a line cut short by a killed build", table_file)
            continue
        rows[row["key"]] = row
    return rows
