"""The report of `benchmarks/decoder_search.py`: the search's Pareto table (quality, trainable parameters, peak
memory, forgetting) beside the hand-made references, whether the front beats each reference, the IST/RST/LoRA
ratios over seeds, and one figure of the trials, the front and the references."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import optuna

from autopeft.pareto import dominates
from autopeft.plan import PeftPlan
from autopeft.storage.run_directory import RunDirectory

PHASES = ("hooks", "forward", "backward", "update")


def search_points(out: Path) -> list[dict[str, Any]]:
    """Every complete trial of the search: its number, plan summary and metrics (from its metrics.json)."""
    run = RunDirectory(out / "search")
    study = optuna.load_study(study_name="space", storage=run.storage("journal"))
    points = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        folder = run.root / trial.user_attrs["artifact_dir"]
        stored = json.loads((folder / "metrics.json").read_text())
        plan = PeftPlan.from_json((folder / "plan.json").read_text(), source=str(folder / "plan.json"))
        points.append({"name": f"trial {trial.number}", "plan": plan.summary(), "metrics": stored["metrics"]})
    return points


def front(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The points no other beats on (quality up, trainable parameters down)."""
    directions = ("maximize", "minimize")
    vectors = [(p["metrics"]["task_metric"], p["metrics"]["trainable_parameters"]) for p in points]
    kept = [
        p
        for p, v in zip(points, vectors, strict=True)
        if not any(dominates(o, v, directions) for o in vectors)
    ]
    return sorted(kept, key=_params)


def beats(point: dict[str, Any], reference: dict[str, Any]) -> bool:
    """At least as good on quality, with fewer trainable parameters or less peak memory."""
    m, r = point["metrics"], reference["metrics"]
    cheaper = (
        m["trainable_parameters"] < r["trainable_parameters"] or m["peak_memory_mb"] < r["peak_memory_mb"]
    )
    return m["task_metric"] >= r["task_metric"] and cheaper


def _params(point: dict[str, Any]) -> float:
    return float(point["metrics"]["trainable_parameters"])


def _row(point: dict[str, Any]) -> str:
    m = point["metrics"]
    return (
        f"| {point['name']} | {point.get('plan', '')[:60]} | {m['task_metric']:.4f} | "
        f"{m['trainable_parameters']:,.0f} | {m['peak_memory_mb']:,.0f} | {m.get('forgetting', float('nan')):+.4f} | "
        f"{m['train_tokens_per_second']:.0f} | {m['wall_seconds']:.0f} |"
    )


def pareto_table(points: list[dict[str, Any]], references: list[dict[str, Any]]) -> str:
    head = (
        "| point | plan | quality | trainable | peak MB | forgetting | train tok/s | s |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    rows = [_row(p) for p in front(points)] + [_row({**r, "plan": "reference"}) for r in references]
    verdicts = []
    for reference in references:
        winners = [p["name"] for p in front(points) if beats(p, reference)]
        verdicts.append(
            f"- {reference['name']}: {'beaten by ' + ', '.join(winners) if winners else 'not beaten'}"
        )
    return "\n".join([head, *rows, "", *verdicts])


def ist_table(rows: list[dict[str, Any]]) -> str:
    """Mean over seeds per variant, and ratios to all-block LoRA r = 8 on q/v."""
    by_name: dict[str, list[dict[str, float]]] = {}
    for row in rows:
        by_name.setdefault(row["name"], []).append(row["metrics"])
    base = by_name.get("lora_r8_qv")
    if not base:
        return "(no LoRA rows yet)"
    keys = ("task_metric", "peak_memory_mb", "train_tokens_per_second")
    mean = {name: {k: statistics.mean(m[k] for m in ms) for k in keys} for name, ms in by_name.items()}
    lines = [
        "| variant | seeds | quality (mean ± sd) | Δ quality | peak memory | tokens/s | "
        + " | ".join(f"{p} s/step" for p in PHASES)
        + " |",
        "|---|---|---|---|---|---|" + "---|" * len(PHASES),
    ]
    for name, metrics in by_name.items():
        quality = [m["task_metric"] for m in metrics]
        spread = statistics.stdev(quality) if len(quality) > 1 else 0.0
        phases = " | ".join(
            f"{statistics.mean(m[f'train_{p}_seconds'] / m['steps'] for m in metrics):.3f}" for p in PHASES
        )
        lines.append(
            f"| {name} | {len(metrics)} | {mean[name]['task_metric']:.4f} ± {spread:.4f} | "
            f"{mean[name]['task_metric'] - mean['lora_r8_qv']['task_metric']:+.4f} | "
            f"{mean[name]['peak_memory_mb'] / mean['lora_r8_qv']['peak_memory_mb']:.3f}x | "
            f"{mean[name]['train_tokens_per_second'] / mean['lora_r8_qv']['train_tokens_per_second']:.3f}x | "
            f"{phases} |"
        )
    return "\n".join(lines)


def plot(points: list[dict[str, Any]], references: list[dict[str, Any]], task: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    best = front(points)
    for axis, key, label in (
        (axes[0], "trainable_parameters", "trainable parameters"),
        (axes[1], "peak_memory_mb", "peak memory (MB)"),
    ):
        axis.scatter([p["metrics"][key] for p in points], [p["metrics"]["task_metric"] for p in points],
                     c="lightgray", label="search trials")  # fmt: skip
        axis.scatter([p["metrics"][key] for p in best], [p["metrics"]["task_metric"] for p in best],
                     c="tab:blue", label="front (quality, parameters)")  # fmt: skip
        for reference in references:
            m = reference["metrics"]
            axis.scatter([m[key]], [m["task_metric"]], marker="*", s=160, label=reference["name"])
        if key == "trainable_parameters":
            axis.set_xscale("log")
        axis.set_xlabel(label)
        axis.set_ylabel("dev quality")
    axes[0].legend(fontsize=8)
    figure.suptitle(f"SmolLM2-135M-Instruct, {task}: search front and hand-made LoRA")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def report(out: Path, task: str, metric: str | None) -> None:
    references = _rows(out.parent / task / "references.jsonl")  # shared by the searches of one task
    if (out / "search").is_dir():
        points = search_points(out)
        print(pareto_table(points, references))
        plot(points, references, out.name, Path(__file__).with_name(f"decoder_search_{out.name}.png"))
    ist = out / f"ist_{metric or 'default'}.jsonl"
    if ist.is_file():
        print(ist_table(_rows(ist)))


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
