"""Small search-space files that tests write for a model: the demo task, a handful of steps."""

from __future__ import annotations

from pathlib import Path


def write_space(folder: Path, model: str | Path, trials: int = 4, **overrides: str) -> Path:
    """A small demo-task search space for `model`, trained for a handful of steps."""
    sections = {
        "budget": "budget: {train_examples: 64, dev_examples: 64, steps: 6, max_length: 24, batch_size: 8, "
        "learning_rate: 0.002, evaluations: 2}",
        "objectives": "objectives: [{name: task_metric}, {name: trainable_parameters}]",
        "dimensions": "dimensions:\n  layers: {mode: per_layer}\n  modules: [query, value]\n"
        "  rank: {choices: [0, 2, 4], share: module_type}",
        "sampler": "sampler: {name: random}",
    }
    sections.update(overrides)
    text = f"model: {model}\ntask: {{name: demo}}\ntrials: {trials}\nseed: 0\n" + "\n".join(sections.values())
    path = folder / "space.yaml"
    path.write_text(text + "\n")
    return path
