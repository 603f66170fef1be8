"""Build the tabular benchmark: run every configuration of `space.yaml` through the real `run_trial`.

Each configuration is trained once (seed 0) on the space's low-cost budget and stored as one JSON line in
`table.jsonl`: its key and parameters, the compact plan, the objectives, the learning curve (the intermediate
task metric at step 16 of 32 is what the replay's multi-fidelity stopping reads), the method signals and the
budget. Rows are appended and flushed one by one, so a killed build loses at most the trial in progress, and
the same command resumes it, skipping the rows already stored.

    OMP_NUM_THREADS=1 nohup python benchmarks/tabular/build_table.py > /tmp/table_build.log 2>&1 &

Two builds with `--shard 0/2` and `--shard 1/2` share the work (each row is one append of one line).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from grid import SPACE_FILE, TABLE_FILE, Params, TableGrid, compact_plan, config_key, read_rows

from autopeft.search.method_signals import method_signals
from autopeft.trial import TrialResult, TrialSpec, run_trial
from autopeft.trial.reporting import RecordingReporter

logger = logging.getLogger("build_table")
ROUND = 5  # significant digits kept for measured floats: enough for the replay, small on disk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", type=Path, default=SPACE_FILE)
    parser.add_argument("--table", type=Path, default=TABLE_FILE)
    parser.add_argument("--limit", type=int, default=None, help="Stop after this many new rows.")
    parser.add_argument(
        "--shard",
        default="0/1",
        help="i/n: run every n-th missing configuration from the i-th (parallel builds).",
    )
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "autopeft_table_cache")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    grid = TableGrid.load(args.space)
    _drop_partial_line(args.table)
    done = set(read_rows(args.table))
    index, shards = map(int, args.shard.split("/"))
    todo = [p for p in grid.configurations() if config_key(p) not in done][index::shards]
    logger.info("%d stored, %d to run in shard %s", len(done), len(todo), args.shard)
    spec = TrialSpec(
        grid.space.model,
        grid.space.task,
        grid.space.budget,
        str(args.space.parent),
        grid.space.seed,
        cache_dir=str(args.cache),
    )
    for count, params in enumerate(todo[: args.limit] if args.limit else todo, start=1):
        row = measure(grid, spec, params)
        _append(args.table, row)
        logger.info("%d/%d %s %s %.1fs", count, len(todo), row["state"], row["key"], row["seconds"])


def measure(grid: TableGrid, spec: TrialSpec, params: Params) -> dict[str, Any]:
    """Train one configuration and turn its result into a table row."""
    plan = grid.plan(params)
    started = time.perf_counter()
    out_dir = Path(tempfile.mkdtemp(prefix="table_trial_"))
    try:
        result = run_trial(plan, spec, RecordingReporter(), out_dir)
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    return {
        "key": config_key(params),
        "params": params,
        "plan": compact_plan(plan),
        "cost": grid.cost(params) if plan.adapted else None,
        "state": result.state,
        "reason": result.reason,
        "objectives": _objectives(result),
        "curve": [[int(p["step"]), _round(p["task_metric"]), _round(p["train_loss"])] for p in result.curve],
        "signals": _signals(result),
        "seed": spec.seed,
        "budget": grid.space.budget.model_dump(exclude_none=True),
        "seconds": round(time.perf_counter() - started, 2),
        "threads": os.environ.get("OMP_NUM_THREADS", ""),
    }


def _objectives(result: TrialResult) -> dict[str, float]:
    names = (
        "task_metric",
        "trainable_parameters",
        "train_tokens_per_second",
        "peak_memory_mb",
        "wall_seconds",
    )
    return {name: _round(result.metrics[name]) for name in names if name in result.metrics}


def _signals(result: TrialResult) -> dict[str, float]:
    """The method signals as a real search stores them (`method_signals`): IST block and Light-PEFT module
    importances as percentile ranks (AdaLoRA and DiffoRA are not in this space)."""
    return {key: _round(value) for key, value in method_signals(result.method_reports).items()}


def _round(value: float) -> float:
    return float(f"{value:.{ROUND}g}")


def _append(table: Path, row: dict[str, Any]) -> None:
    """One line per row, flushed to disk before the next trial starts."""
    with table.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(row, separators=(",", ":")) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _drop_partial_line(table: Path) -> None:
    """A build killed mid-write leaves a last line without its newline: cut it off so appends stay whole."""
    if not table.exists():
        return
    text = table.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        kept = text[: text.rfind("\n") + 1]
        table.write_text(kept, encoding="utf-8")
        logger.warning("dropped a partial last line of %s", table)


if __name__ == "__main__":
    main()
