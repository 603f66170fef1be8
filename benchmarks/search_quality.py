"""Search quality on the tabular benchmark: every sampler replayed on `benchmarks/tabular/table.jsonl`.

Each sampler sees the table's space exactly as a real search does (`SearchSpace.sample` on an Optuna trial)
and gets each configuration's stored row instead of training it. Objectives: maximise the task metric,
minimise trainable parameters. Hypervolume is computed on normalised objectives, ((1 - metric) / 0.5,
parameters / (1.1 x the table's largest)), with the fixed reference point (1, 1), i.e. task metric 0.5 and 1.1
x the largest parameter count; 1.0 would be a perfect classifier at zero parameters.

Budgets count full-trial equivalents: a trial stopped at its intermediate evaluation (step 16 of 32) costs
0.5; a failed or repeated configuration costs a whole trial, as it would in a real search.

    python benchmarks/search_quality.py --seeds 10 --budget 80
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from tabular.autopeft_protocol import run_protocol
from tabular.grid import TABLE_FILE, TableGrid, config_key, read_rows

from autopeft.pareto.hypervolume import hypervolume
from autopeft.search.budgeted_sampler import BudgetedParetoSampler
from autopeft.search.method_signals import SIGNALS_KEY
from autopeft.search.plan_probe import CandidateFacts, PlanProbe
from autopeft.search_space import SearchSpace

logger = logging.getLogger("search_quality")
OUT = Path(__file__).resolve().parent / "tabular"  # search_quality.json and the plot land beside the table
BUDGETS = (10, 20, 25, 40, 80)
Row = dict[str, Any]


@dataclass
class Replay:
    """One run of one sampler: the (spent budget, metric, parameters) of each complete trial, in order."""

    points: list[tuple[float, float, float]] = field(default_factory=list)
    spent: float = 0.0
    pruned: int = 0


class Table:
    """The rows, the sub-grid they fully cover (a partly built table fixes its outermost dimensions), the
    space restricted to it, and the normalisation of the hypervolume."""

    def __init__(self, grid: TableGrid, rows: dict[str, Row]) -> None:
        self.rows = rows
        self._facts: dict[str, CandidateFacts] = {}
        self.dimensions = _covered_dimensions(grid, rows)
        self.fixed = {n: c[0] for n, c in grid.dimensions.items() if n not in self.dimensions}
        self.grid = TableGrid(_restricted(grid.space, self.fixed), grid.layout, self.dimensions)
        self._probe = PlanProbe(self.grid.space, self.grid.layout)
        complete = [r for r in map(self.row, self.grid.configurations()) if r["state"] == "complete"]
        self.max_parameters = max(r["objectives"]["trainable_parameters"] for r in complete)
        self.best_hypervolume = self.hypervolume(
            [(r["objectives"]["task_metric"], r["objectives"]["trainable_parameters"]) for r in complete]
        )

    def row(self, params: dict[str, Any]) -> Row:
        return self.rows[config_key({**self.fixed, **params})]

    def hypervolume(self, points: list[tuple[float, float]]) -> float:
        """2-D hypervolume of (metric, parameters) points against the fixed reference, normalised to [0,
        1]."""
        scaled = [(p / (1.1 * self.max_parameters), (1.0 - m) / 0.5) for m, p in points]
        return hypervolume(scaled, (1.0, 1.0))

    def probe(self, params: dict[str, Any]) -> CandidateFacts:
        """The facts a real search's probe gives (`PlanProbe` on the table's space), computed once."""
        key = config_key(params)
        if key not in self._facts:
            self._facts[key] = self._probe(params)
        return self._facts[key]


def replay_optuna(table: Table, sampler: optuna.samplers.BaseSampler, budget: float, stop: bool) -> Replay:
    """Ask, look the row up, tell: the loop of `run_search` without training. With `stop`, the sampler's
    `should_stop_trial` sees the intermediate metric first and a stopped trial is told PRUNED."""
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["task_metric", "trainable_parameters"])
    replay = Replay()
    while replay.spent < budget:
        trial = study.ask()
        table.grid.space.sample(trial, table.grid.layout)
        row = table.row(trial.params)
        if row["state"] != "complete":
            replay.spent += 1.0
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        trial.set_user_attr(SIGNALS_KEY, row["signals"])
        curve = [{"task_metric": point[1]} for point in row["curve"]]
        if (
            stop
            and isinstance(sampler, BudgetedParetoSampler)
            and sampler.should_stop_trial(study, trial, 0, curve[0]["task_metric"])
        ):
            replay.spent += row["curve"][0][0] / row["curve"][-1][0]
            replay.pruned += 1
            trial.set_user_attr("curve", curve[:1])
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        trial.set_user_attr("curve", curve)
        objectives = row["objectives"]
        study.tell(trial, [objectives["task_metric"], objectives["trainable_parameters"]])
        replay.spent += 1.0
        replay.points.append((replay.spent, objectives["task_metric"], objectives["trainable_parameters"]))
    return replay


def replay_protocol(table: Table, budget: float, seed: int) -> Replay:
    """The AutoPEFT protocol (random initial design, then qNEHVI over GPs of both objectives)."""
    replay = Replay()

    def evaluate(params: dict[str, Any]) -> tuple[float, float] | None:
        row = table.row(params)
        replay.spent += 1.0
        if row["state"] != "complete":
            return None
        metric, parameters = row["objectives"]["task_metric"], row["objectives"]["trainable_parameters"]
        replay.points.append((replay.spent, metric, parameters))
        return metric, parameters / (1.1 * table.max_parameters)

    run_protocol(table.dimensions, evaluate, int(budget), seed)
    return replay


def strategies(table: Table) -> dict[str, Callable[[int, float], Replay]]:
    """Name -> run(seed, budget). `autopeft` is the default sampler of `autopeft search`; the two ablations
    switch off its early stopping and its method signals."""

    def ours(stop: bool, signal_prior: float) -> Callable[[int, float], Replay]:
        return lambda seed, budget: replay_optuna(
            table, BudgetedParetoSampler(table.probe, seed=seed, signal_prior=signal_prior), budget, stop
        )

    samplers = optuna.samplers
    return {
        "random": lambda s, b: replay_optuna(table, samplers.RandomSampler(seed=s), b, False),
        "nsga2": lambda s, b: replay_optuna(
            table, samplers.NSGAIISampler(population_size=8, seed=s), b, False
        ),
        "tpe": lambda s, b: replay_optuna(
            table, samplers.TPESampler(n_startup_trials=10, multivariate=True, seed=s), b, False
        ),
        "gp": lambda s, b: replay_optuna(table, samplers.GPSampler(n_startup_trials=10, seed=s), b, False),
        "autopeft_protocol": lambda s, b: replay_protocol(table, b, s),
        "autopeft": ours(True, 0.5),
        "autopeft_no_stopping": ours(False, 0.5),
        "autopeft_no_signals": ours(True, 0.0),
    }


def hypervolume_at(table: Table, replay: Replay, budget: float) -> float:
    return table.hypervolume([(m, p) for spent, m, p in replay.points if spent <= budget + 1e-9])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget", type=int, default=80)
    parser.add_argument("--only", nargs="*", default=None, help="Strategies to run (default: all).")
    parser.add_argument("--table", type=Path, default=TABLE_FILE)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    table = Table(TableGrid.load(), read_rows(args.table))
    budgets = [b for b in BUDGETS if b <= args.budget]
    results: dict[str, Any] = {
        "table_rows": len(table.rows),
        "space": {n: list(map(str, c)) for n, c in table.dimensions.items()},
        "fixed": {n: str(v) for n, v in table.fixed.items()},
        "best_hypervolume": table.best_hypervolume,
        "strategies": {},
    }
    for name, run in strategies(table).items():
        if args.only and name not in args.only:
            continue
        replays = [run(seed, args.budget) for seed in range(args.seeds)]
        curves = np.array([[hypervolume_at(table, r, b) for b in range(1, args.budget + 1)] for r in replays])
        results["strategies"][name] = {
            "hypervolume": {str(b): [float(v) for v in curves[:, b - 1]] for b in budgets},
            "curve_mean": curves.mean(axis=0).tolist(),
            "pruned_mean": float(np.mean([r.pruned for r in replays])),
        }
        logger.info("%s: %s", name, {b: round(float(curves[:, b - 1].mean()), 4) for b in budgets})
    args.out.mkdir(exist_ok=True)
    (args.out / "search_quality.json").write_text(json.dumps(results, indent=1))
    print(markdown(results, budgets))
    logger.info("plot: %s", plot(results, args.out))


def markdown(results: dict[str, Any], budgets: list[int]) -> str:
    """The hypervolume table (mean ± standard deviation over seeds) and the trials the default needs to reach
    random search's hypervolume at the largest budget."""
    lines = [
        "| strategy | " + " | ".join(f"HV@{b}" for b in budgets) + " | stopped trials |",
        "|---|" + "---|" * (len(budgets) + 1),
    ]
    for name, data in results["strategies"].items():
        cells = [
            f"{np.mean(data['hypervolume'][str(b)]):.4f} ± {np.std(data['hypervolume'][str(b)]):.4f}"
            for b in budgets
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {data['pruned_mean']:.1f} |")
    strategies_run = results["strategies"]
    if "random" in strategies_run and "autopeft" in strategies_run:
        target = np.mean(strategies_run["random"]["hypervolume"][str(budgets[-1])])
        reached = [i + 1 for i, v in enumerate(strategies_run["autopeft"]["curve_mean"]) if v >= target]
        lines.append(
            f"\nrandom search's HV@{budgets[-1]} (mean) = {target:.4f}; the default's mean HV reaches it "
            f"after {reached[0] if reached else 'more than ' + str(budgets[-1])} trials."
        )
    lines.append(f"Best hypervolume of the whole table: {results['best_hypervolume']:.4f}.")
    return "\n".join(lines)


def plot(results: dict[str, Any], folder: Path) -> Path:
    """Mean hypervolume against trials, one line per strategy: a PNG with matplotlib, else plotly HTML."""
    curves = {name: data["curve_mean"] for name, data in results["strategies"].items()}
    try:
        import matplotlib
    except ImportError:
        return _plot_html(curves, results["best_hypervolume"], folder / "search_quality.html")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for name, curve in curves.items():
        axes.plot(range(1, len(curve) + 1), curve, label=name)
    axes.axhline(results["best_hypervolume"], color="grey", linestyle=":", label="whole table")
    axes.set_xlabel("trials (full-trial equivalents)")
    axes.set_ylabel("hypervolume (normalised, mean over seeds)")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(folder / "search_quality.png", dpi=120)
    return folder / "search_quality.png"


def _plot_html(curves: dict[str, list[float]], best: float, path: Path) -> Path:
    import plotly.graph_objects as go

    figure = go.Figure(
        [go.Scatter(y=curve, x=list(range(1, len(curve) + 1)), name=n) for n, curve in curves.items()]
    )
    figure.add_hline(y=best, line_dash="dot", annotation_text="whole table")
    figure.update_layout(
        xaxis_title="trials (full-trial equivalents)", yaxis_title="hypervolume (mean over seeds)"
    )
    figure.write_html(path, include_plotlyjs=True)
    return path


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
            raise SystemExit(f"table.jsonl covers too little of the space: {name} would have to be fixed")
        methods[key][knob] = value
    return space.model_copy(update={"methods": methods})


def _covers(rows: dict[str, Row], dimensions: dict[str, tuple[Any, ...]]) -> bool:
    names = list(dimensions)
    return all(
        config_key(dict(zip(names, combo, strict=True))) in rows
        for combo in itertools.product(*dimensions.values())
    )


if __name__ == "__main__":
    main()
