"""Search quality on the tabular benchmark: every strategy replayed on a built table (`benchmarks/tabular/`).

Each sampler sees the table's space exactly as a real search does (`SearchSpace.sample` on an Optuna trial)
and gets each configuration's stored row instead of training it (`tabular/replay.py`; the strategies are in
`tabular/strategies.py`). Objectives: maximise the task metric, minimise trainable parameters. Hypervolume is
computed on normalised objectives, ((1 - metric) / (1 - metric reference), parameters / (1.1 x the table's
largest)), with the fixed reference point (1, 1): the metric reference is a task metric worth nothing (0.5, a
coin's accuracy, for the first table; 0.0 for Matthews correlation) and 1.0 would be a perfect classifier at
zero parameters.

Budgets count full-trial equivalents: a trial stopped at its intermediate evaluation (step 16 of 32) costs
0.5; a failed or repeated configuration costs a whole trial, as it would in a real search. The (strategy, seed)
replays run on two worker processes with one torch thread each; `--workers 1` gives the same numbers serially.

    python benchmarks/search_quality.py --seeds 10 --budget 80
    python benchmarks/search_quality.py --space benchmarks/tabular/space_cola.yaml --metric-reference 0.0
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
from tabular.grid import SPACE_FILE, TableGrid, read_rows
from tabular.plot_tables import plot_tables
from tabular.strategies import STRATEGIES, run_task, setup_process
from tabular.table import Table

logger = logging.getLogger("search_quality")
BUDGETS = (10, 20, 25, 40, 80)
STOPPING = (
    "random",
    "asha_eta3",
    "asha_eta2",
    "random_pareto_stopping",
    "autopeft_no_stopping",
    "autopeft_asha_eta3",
    "autopeft",
)
"""The strategies of the stopping comparison: random search without stopping, with ASHA and with the default's
rule; the default sampler without stopping, with ASHA and with its own stopping."""
PAIRED = (
    ("autopeft", "asha_eta3"),
    ("autopeft", "asha_eta2"),
    ("random_pareto_stopping", "asha_eta3"),
    ("random_pareto_stopping", "asha_eta2"),
    ("autopeft", "autopeft_asha_eta3"),
)
"""The stopping comparisons read seed by seed: the default against what Ray Tune users get, the two stopping
rules on the same random proposals, and the two on the default sampler."""
Results = dict[str, Any]


def main() -> None:
    args = _parser().parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(1)  # as in the workers, which on Linux are forked from this process
    suffix = args.space.stem.removeprefix("space")
    table_file = args.table or args.space.with_name(f"table{suffix}.jsonl")
    rows = read_rows(table_file)
    if not rows:
        raise SystemExit(
            f"{table_file}: no rows yet; build them with tabular/build_table.py --space {args.space}"
        )
    table = Table(TableGrid.load(args.space), rows, args.metric_reference)
    names = [name for name in STRATEGIES if not args.only or name in args.only]
    started = time.perf_counter()
    replays = run_all(table, names, args.seeds, args.budget, args.workers)
    logger.info("replays: %.0f s on %d worker(s)", time.perf_counter() - started, args.workers)
    budgets = [b for b in BUDGETS if b <= args.budget]
    results = summarise(table, replays, budgets)
    results.update(space_file=args.space.name, table_file=table_file.name)
    args.out.mkdir(exist_ok=True)
    (args.out / f"search_quality{suffix}.json").write_text(json.dumps(results, indent=1))
    print(markdown(results, budgets))
    print(stopping_markdown(results, budgets))
    print(paired_markdown(results, budgets))
    others = [json.loads(path.read_text(encoding="utf-8")) for path in args.plot_with]
    logger.info("plot: %s", plot_tables([results, *others], args.out / f"search_quality{suffix}.png"))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget", type=int, default=80)
    parser.add_argument("--only", nargs="*", default=None, help="Strategies to run (default: all).")
    parser.add_argument(
        "--space", type=Path, default=SPACE_FILE, help="The table's space (default: table one)."
    )
    parser.add_argument(
        "--table",
        type=Path,
        default=None,
        help="The rows (default: table<suffix>.jsonl beside space<suffix>).",
    )
    parser.add_argument(
        "--metric-reference",
        type=float,
        default=0.5,
        help="Task metric at the hypervolume's reference point, one worth nothing: 0.5 for accuracy (a coin), "
        "0.0 for Matthews correlation, the majority class's F1 for F1.",
    )
    parser.add_argument("--workers", type=int, default=2, help="Worker processes (1: serial, same numbers).")
    parser.add_argument("--plot-with", type=Path, nargs="*", default=[], help="Other tables' result JSONs.")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "tabular")
    return parser


def run_all(
    table: Table, names: list[str], seeds: int, budget: int, workers: int
) -> dict[str, list[Results]]:
    """Every (strategy, seed) replay, by strategy in seed order. With several workers the slowest strategies
    are handed out first; each replay depends only on its strategy and seed, so the order does not change a
    number."""
    tasks = sorted(
        ((name, seed) for name in names for seed in range(seeds)),
        key=lambda task: -STRATEGIES[task[0]].seconds,
    )
    if workers == 1:
        setup_process(table)
        done = {task: run_task(*task, budget) for task in tasks}
    else:
        with ProcessPoolExecutor(max_workers=workers, initializer=setup_process, initargs=(table,)) as pool:
            futures = {task: pool.submit(run_task, *task, budget) for task in tasks}
            done = {task: future.result() for task, future in futures.items()}
    return {name: [done[(name, seed)] for seed in range(seeds)] for name in names}


def summarise(table: Table, replays: dict[str, list[Results]], budgets: list[int]) -> Results:
    """The result JSON: the table's facts and, per strategy, the hypervolume of each seed at the reported
    budgets, the mean curve, and the mean trials started and stopped."""
    results: Results = {
        "table_rows": len(table.rows),
        "task": table.grid.space.task.name,
        "metric_reference": table.metric_reference,
        "space": {n: list(map(str, c)) for n, c in table.dimensions.items()},
        "fixed": {n: str(v) for n, v in table.fixed.items()},
        "best_hypervolume": table.best_hypervolume,
        "strategies": {},
    }
    for name, runs in replays.items():
        curves = np.array([run["curve"] for run in runs])
        results["strategies"][name] = {
            "hypervolume": {str(b): [float(v) for v in curves[:, b - 1]] for b in budgets},
            "curve_mean": curves.mean(axis=0).tolist(),
            "pruned_mean": float(np.mean([run["pruned"] for run in runs])),
            "started_mean": float(np.mean([run["started"] for run in runs])),
        }
        logger.info("%s: %s", name, {b: round(float(curves[:, b - 1].mean()), 4) for b in budgets})
    return results


def markdown(results: Results, budgets: list[int]) -> str:
    """The hypervolume table (mean ± standard deviation over seeds) and the trials the default needs to reach
    random search's hypervolume at the largest budget."""
    lines = [
        "| strategy | " + " | ".join(f"HV@{b}" for b in budgets) + " | stopped trials |",
        "|---|" + "---|" * (len(budgets) + 1),
    ]
    for name, data in results["strategies"].items():
        cells = [_mean_std(data["hypervolume"][str(b)]) for b in budgets]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {data['pruned_mean']:.1f} |")
    strategies_run = results["strategies"]
    if "random" in strategies_run and "autopeft" in strategies_run:
        target = np.mean(strategies_run["random"]["hypervolume"][str(budgets[-1])])
        reached = _reached(strategies_run["autopeft"]["curve_mean"], target)
        lines.append(
            f"\nrandom search's HV@{budgets[-1]} (mean) = {target:.4f}; the default's mean HV reaches it "
            f"after {reached or 'more than ' + str(budgets[-1])} trials."
        )
    lines.append(f"Best hypervolume of the whole table: {results['best_hypervolume']:.4f}.")
    lines.append(f"Metric reference (hypervolume 0 on the metric axis): {results['metric_reference']}.")
    return "\n".join(lines)


def stopping_markdown(results: Results, budgets: list[int]) -> str:
    """Early stopping at equal compute: hypervolume per full-trial equivalent of training (HV@B / B) at each
    budget, the trials started and stopped within the largest one, and the training each needs to reach random
    search's hypervolume at the largest budget (less is more hypervolume per unit of training)."""
    strategies_run = results["strategies"]
    names = [name for name in STOPPING if name in strategies_run]
    if "random" not in names or len(names) < 2:
        return ""
    target = np.mean(strategies_run["random"]["hypervolume"][str(budgets[-1])])
    lines = [
        "\n| strategy | " + " | ".join(f"HV@{b} / {b}" for b in budgets) + " | started | stopped | "
        f"training to random's HV@{budgets[-1]} |",
        "|---|" + "---|" * (len(budgets) + 3),
    ]
    for name in names:
        data = strategies_run[name]
        cells = [f"{np.mean(data['hypervolume'][str(b)]) / b:.5f}" for b in budgets]
        reached = _reached(data["curve_mean"], target)
        lines.append(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {data['started_mean']:.1f} | {data['pruned_mean']:.1f} | "
            f"{reached or '> ' + str(budgets[-1])} |"
        )
    return "\n".join(lines)


def paired_markdown(results: Results, budgets: list[int]) -> str:
    """Mean difference of hypervolume, seed by seed, between the strategies of each `PAIRED` pair at each
    budget, with the seeds where the first is higher and lower (a seed replays the same random proposals in
    every random-search strategy, so the pairs differ only in what they stop)."""
    strategies_run = results["strategies"]
    pairs = [(a, b) for a, b in PAIRED if a in strategies_run and b in strategies_run]
    if not pairs:
        return ""
    lines = [
        "\n| paired difference (higher/lower seeds) | " + " | ".join(f"HV@{b}" for b in budgets) + " |",
        "|---|" + "---|" * len(budgets),
    ]
    for first, second in pairs:
        cells = []
        for budget in budgets:
            difference = np.subtract(
                strategies_run[first]["hypervolume"][str(budget)],
                strategies_run[second]["hypervolume"][str(budget)],
            )
            cells.append(f"{difference.mean():+.4f} ({(difference > 0).sum()}/{(difference < 0).sum()})")
        lines.append(f"| {first} − {second} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _mean_std(values: list[float]) -> str:
    return f"{np.mean(values):.4f} ± {np.std(values):.4f}"


def _reached(curve: list[float], target: float) -> int | None:
    """The first whole budget at which a mean curve reaches `target`, or None."""
    return next((index + 1 for index, value in enumerate(curve) if value >= target), None)


if __name__ == "__main__":
    main()
