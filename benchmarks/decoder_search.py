"""SmolLM2-135M-Instruct: a search of `search_spaces/smollm2_sft.yaml` against the LoRA set-ups people pick by
hand, and IST against RST and all-block LoRA at equal steps.

Parts (each a separate process per trial, so that peak memory is per configuration):

- `search`: the shipped space with the budget lowered to what this machine affords (`--steps`, `--max-length`,
  `--train`, `--dev`), `--trials` trials through the real `autopeft search`; on the generated task
  (`--task demo_sft`, exact match) or on SST-2 read as a decoder task through a verbalizer (`--task sst2`, the
  likelihood of "negative"/"positive", from ../shared/data/glue).
- `references`: the same budget, data and seed for LoRA r = 8 on q/v of every block (peft's examples) and r = 16
  on every linear layer of every block (which is also full-block LoRA at the space's largest rank, 16).
- `ist`: LoRA r = 8 on q/v of every block, IST and RST at active ratio 0.5, `--seeds` seeds: dev quality, peak
  memory and training tokens/s as ratios to LoRA, and where the step time goes (forward, backward, update,
  method hooks).

    OMP_NUM_THREADS=1 python benchmarks/decoder_search.py --part search --task demo_sft --trials 12
    OMP_NUM_THREADS=1 python benchmarks/decoder_search.py --part references --task demo_sft
    OMP_NUM_THREADS=1 python benchmarks/decoder_search.py --part ist --seeds 3 --metric loss
    python benchmarks/decoder_search.py --part report --task demo_sft --metric loss   # tables and figure

`--lora-only` searches the same space without its method mix (layer selection, ranks, alpha and dropout only),
into `runs/decoder_bench/<task>_lora_only/`. Results go to `runs/decoder_bench/<task>/` (the run directory, JSON
rows), the figure to `benchmarks/decoder_search_<run>.png`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
GLUE = REPO.parent / "shared" / "data" / "glue" / "SST-2"
SPACE = REPO / "search_spaces" / "smollm2_sft.yaml"
ATTENTION = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj")
LINEAR = (*ATTENTION, "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
QV = ("self_attn.q_proj", "self_attn.v_proj")
REFERENCES: dict[str, tuple[tuple[str, ...], int, dict[str, Any]]] = {
    "lora_r8_qv": (QV, 8, {}),
    "lora_r16_all_linear": (LINEAR, 16, {}),
}
IST_VARIANTS: dict[str, tuple[tuple[str, ...], int, dict[str, Any]]] = {
    "lora_r8_qv": (QV, 8, {}),
    "ist_0.5": (QV, 8, {"ist": {"mode": "ist", "active_layer_ratio": 0.5}}),
    "rst_0.5": (QV, 8, {"ist": {"mode": "rst", "active_layer_ratio": 0.5}}),
}
PHASES = ("hooks", "forward", "backward", "update")


def space_for(args: argparse.Namespace) -> dict[str, Any]:
    """The shipped SmolLM2 space with this run's task and budget."""
    space = yaml.safe_load(SPACE.read_text())
    if args.task == "sst2":
        space["task"] = {"name": "sst2", "path": str(GLUE), "verbalizer": ["negative", "positive"]}
    if args.metric:
        space["task"]["metric"] = args.metric
    if args.lora_only:
        space.pop("methods", None)
    space["budget"].update(
        train_examples=args.train,
        dev_examples=args.dev,
        steps=args.steps,
        max_length=args.max_length,
        evaluations=2,
    )
    space["trials"] = args.trials
    space["seed"] = args.seed
    return space


def run_search(args: argparse.Namespace, out: Path) -> None:
    """`autopeft search` on the lowered space, resumable (the run directory is kept)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "space.yaml"
    path.write_text(yaml.safe_dump(space_for(args), sort_keys=False))
    command = [sys.executable, "-m", "autopeft", "search", str(path), "--out", str(out / "search")]
    subprocess.run(command, check=True, cwd=REPO)


def one_trial(args: argparse.Namespace, name: str, seed: int) -> dict[str, Any]:
    """Train one hand-made configuration of `REFERENCES`/`IST_VARIANTS` with the search's budget (this process)."""
    from autopeft.budget import BudgetConfig
    from autopeft.plan import ModuleSetting, PeftPlan
    from autopeft.tasks.task import TaskConfig
    from autopeft.trial import TrialSpec, run_trial
    from autopeft.trial.reporting import NullReporter

    modules, rank, methods = {**REFERENCES, **IST_VARIANTS}[name]
    space = space_for(args)
    adapters = tuple(
        ModuleSetting(layer=layer, module=module, rank=rank, alpha=2 * rank)
        for layer in range(30)
        for module in modules
    )
    spec = TrialSpec(
        "smollm2",
        TaskConfig(**space["task"]),
        BudgetConfig(**space["budget"]),
        task_base_dir=str(REPO),
        seed=seed,
    )
    with tempfile.TemporaryDirectory() as out:
        result = run_trial(PeftPlan(adapters=adapters, methods=methods), spec, NullReporter(), Path(out))
    assert result.state == "complete", result.reason
    return {"name": name, "seed": seed, "metrics": result.metrics, "curve": result.curve}


def run_hand_made(args: argparse.Namespace, names: list[str], seeds: list[int], out: Path) -> None:
    """Each (name, seed) in its own process, appended to `out` (already stored rows are skipped)."""
    done = {(row["name"], row["seed"]) for row in _rows(out)}
    for seed in seeds:
        for name in names:
            if (name, seed) in done:
                continue
            command = [sys.executable, __file__, "--one", name, "--seed", str(seed), *_budget_flags(args)]
            row = subprocess.run(command, check=True, capture_output=True, text=True, cwd=REPO).stdout
            with out.open("a") as handle:
                handle.write(row.strip().splitlines()[-1] + "\n")
            print(
                f"{name} seed {seed}: {json.loads(row.strip().splitlines()[-1])['metrics']['task_metric']:.4f}"
            )


def _budget_flags(args: argparse.Namespace) -> list[str]:
    return [
        f"--task={args.task}",
        f"--steps={args.steps}",
        f"--max-length={args.max_length}",
        f"--train={args.train}",
        f"--dev={args.dev}",
        f"--trials={args.trials}",
        *([f"--metric={args.metric}"] if args.metric else []),
    ]


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("search", "references", "ist", "report"))
    parser.add_argument("--one", choices=sorted({**REFERENCES, **IST_VARIANTS}), help=argparse.SUPPRESS)
    parser.add_argument("--task", choices=("demo_sft", "sst2"), default="demo_sft")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--max-length", type=int, default=96)
    parser.add_argument("--train", type=int, default=512)
    parser.add_argument("--dev", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--metric", help="the task metric instead of the task's default (e.g. loss)")
    parser.add_argument(
        "--lora-only", action="store_true", help="search without the method mix (layers and ranks only)"
    )
    args = parser.parse_args()
    out = REPO / "runs" / "decoder_bench" / (args.task + ("_lora_only" if args.lora_only else ""))
    if args.one:
        print(json.dumps(one_trial(args, args.one, args.seed)))
        return
    if args.part == "search":
        run_search(args, out)
    elif args.part == "references":
        out.mkdir(parents=True, exist_ok=True)
        run_hand_made(args, list(REFERENCES), [args.seed], out / "references.jsonl")
    elif args.part == "ist":
        out.mkdir(parents=True, exist_ok=True)
        run_hand_made(
            args, list(IST_VARIANTS), list(range(args.seeds)), out / f"ist_{args.metric or 'default'}.jsonl"
        )
    else:
        from decoder_report import report  # beside this script

        report(out, args.task, args.metric)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
