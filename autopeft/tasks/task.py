"""Task: a text-classification dataset with its splits and metric, built from a `TaskConfig`.

Sources: the generated demo task (offline), GLUE-style TSV folders (sst2, cola, mrpc, rte), CSV/JSONL files
with a column mapping, and Hugging Face `datasets` names when online.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from autopeft.errors import ConfigError
from autopeft.tasks.demo import demo_examples
from autopeft.tasks.metrics import METRICS

Example = tuple[tuple[str, ...], int]


@dataclass(frozen=True)
class GlueFormat:
    """Where a GLUE TSV keeps its texts and label, and how it is scored."""

    text_columns: tuple[int, ...]
    label_column: int
    labels: tuple[str, ...]
    metric: str
    header: bool = True
    encoding: str = "utf-8"


GLUE_FORMATS = {
    "sst2": GlueFormat((0,), 1, ("0", "1"), "accuracy"),
    "cola": GlueFormat((3,), 1, ("0", "1"), "matthews", header=False),
    "mrpc": GlueFormat((3, 4), 0, ("0", "1"), "f1", encoding="utf-8-sig"),
    "rte": GlueFormat((1, 2), 3, ("entailment", "not_entailment"), "accuracy"),
}
DEMO_SIZES = {"train": 4000, "dev": 600}


class TaskConfig(BaseModel):
    """The `task:` block of a search space."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Literal["demo", "sst2", "cola", "mrpc", "rte", "file", "hub"] = Field(
        description="demo (generated), a GLUE task read from `path`, `file` (CSV/JSONL) or `hub` (datasets)."
    )
    path: str | None = Field(default=None, description="GLUE folder holding train.tsv and dev.tsv.")
    train_file: str | None = Field(default=None, description="CSV or JSONL training file (name: file).")
    dev_file: str | None = Field(default=None, description="CSV or JSONL dev file (name: file).")
    text_columns: tuple[str, ...] = Field(default=("text",), min_length=1, max_length=2)
    label_column: str = Field(default="label")
    metric: Literal["accuracy", "matthews", "f1"] | None = Field(
        default=None, description="Overrides the default."
    )
    dataset: str | None = Field(default=None, description="Hub dataset as name or name/config (name: hub).")

    @model_validator(mode="after")
    def _source_is_complete(self) -> TaskConfig:
        if self.name in GLUE_FORMATS and self.path is None:
            raise ValueError(f"task '{self.name}' needs 'path', a folder with train.tsv and dev.tsv")
        if self.name == "file" and (self.train_file is None or self.dev_file is None):
            raise ValueError("task 'file' needs 'train_file' and 'dev_file'")
        if self.name == "hub" and self.dataset is None:
            raise ValueError("task 'hub' needs 'dataset', e.g. glue/sst2")
        return self


@dataclass(frozen=True)
class Task:
    """Train and dev examples, label names and the metric that scores predictions."""

    name: str
    labels: tuple[str, ...]
    metric: str
    train: tuple[Example, ...]
    dev: tuple[Example, ...]

    def score(self, labels: Sequence[int], predictions: Sequence[int]) -> float:
        """The task metric of `predictions` against `labels`."""
        return METRICS[self.metric](labels, predictions)


def load_task(config: TaskConfig, base_dir: Path, seed: int = 0) -> Task:
    """Build the task; relative paths are taken from `base_dir` (the search space's folder)."""
    if config.name == "demo":
        train = tuple(
            ((text,), label) for text, label in demo_examples(DEMO_SIZES["train"], seed=1000 + seed)
        )
        dev = tuple(((text,), label) for text, label in demo_examples(DEMO_SIZES["dev"], seed=2000))
        return Task("demo", ("negative", "positive"), config.metric or "accuracy", train, dev)
    if config.name in GLUE_FORMATS:
        return _glue_task(config, _existing(base_dir, config.path, "task.path"))
    if config.name == "file":
        return _file_task(config, base_dir)
    return _hub_task(config)


def _existing(base_dir: Path, relative: str | None, key: str) -> Path:
    path = (base_dir / str(relative)).expanduser()
    if not path.exists():
        raise ConfigError(f"{key}: {path} does not exist")
    return path


def _glue_task(config: TaskConfig, folder: Path) -> Task:
    spec = GLUE_FORMATS[config.name]
    train, dev = (_read_glue(folder / f"{split}.tsv", spec) for split in ("train", "dev"))
    return Task(config.name, spec.labels, config.metric or spec.metric, train, dev)


def _read_glue(path: Path, spec: GlueFormat) -> tuple[Example, ...]:
    """Read a GLUE TSV with quoting off (MRPC holds bare `"` characters)."""
    if not path.is_file():
        raise ConfigError(f"task.path: expected {path} to exist")
    with path.open(encoding=spec.encoding, newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    examples = []
    for number, row in enumerate(rows[1:] if spec.header else rows, start=2 if spec.header else 1):
        label = row[spec.label_column] if len(row) > spec.label_column else None
        if label not in spec.labels:
            raise ConfigError(
                f"{path}: line {number}: expected a label in {list(spec.labels)}, got {label!r}"
            )
        texts = tuple(row[column].strip() for column in spec.text_columns)
        examples.append((texts, spec.labels.index(label)))
    return tuple(examples)


def _file_task(config: TaskConfig, base_dir: Path) -> Task:
    train_rows = _read_records(_existing(base_dir, config.train_file, "task.train_file"))
    dev_rows = _read_records(_existing(base_dir, config.dev_file, "task.dev_file"))
    labels = tuple(sorted({str(row.get(config.label_column)) for row in train_rows}))
    train = _records_to_examples(train_rows, config, labels, config.train_file or "")
    dev = _records_to_examples(dev_rows, config, labels, config.dev_file or "")
    return Task(Path(config.train_file or "file").stem, labels, config.metric or "accuracy", train, dev)


def _read_records(path: Path) -> list[dict[str, object]]:
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix == ".jsonl":
        try:
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path}: line {error.lineno}: expected one JSON object per line") from None
    return list(csv.DictReader(text.splitlines()))


def _records_to_examples(
    rows: list[dict[str, object]], config: TaskConfig, labels: tuple[str, ...], source: str
) -> tuple[Example, ...]:
    examples = []
    for number, row in enumerate(rows, start=1):
        missing = [c for c in (*config.text_columns, config.label_column) if c not in row]
        if missing:
            raise ConfigError(
                f"{source}: record {number}: expected column '{missing[0]}', found {sorted(row)}"
            )
        label = str(row[config.label_column])
        if label not in labels:
            raise ConfigError(
                f"{source}: record {number}: label {label!r} does not occur in the training file"
            )
        examples.append((tuple(str(row[c]) for c in config.text_columns), labels.index(label)))
    return tuple(examples)


def _hub_task(config: TaskConfig) -> Task:
    """A Hugging Face dataset (needs the network or a local datasets cache)."""
    try:
        import datasets
    except ImportError:
        raise ConfigError(
            "task.dataset: the 'datasets' package is not installed (pip install datasets)"
        ) from None
    name, _, subset = str(config.dataset).partition("/")
    try:
        loaded = datasets.load_dataset(name, subset or None)
    except Exception as error:  # noqa: BLE001 - datasets raises many unrelated types for a missing dataset
        raise ConfigError(f"task.dataset: cannot load '{config.dataset}' ({type(error).__name__})") from None
    dev_split = "validation" if "validation" in loaded else "test"
    rows = {split: [dict(row) for row in loaded[split]] for split in ("train", dev_split)}
    labels = tuple(sorted({str(row[config.label_column]) for row in rows["train"]}))
    train = _records_to_examples(rows["train"], config, labels, "task.dataset")
    dev = _records_to_examples(rows[dev_split], config, labels, "task.dataset")
    return Task(str(config.dataset), labels, config.metric or "accuracy", train, dev)
