"""Task: a text-classification dataset with its splits and metric, built from a `TaskConfig`; and `load_task`,
which builds either kind of task (`tasks.task_kind`): classification here, instruction tuning in
`tasks.instruction_task`.

Classification sources: the generated demo task (offline), GLUE-style TSV folders (sst2, cola, mrpc, rte),
CSV/JSONL files with a column mapping, and Hugging Face `datasets` names when online.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from torch import nn

from autopeft.errors import ConfigError
from autopeft.models import load_classifier
from autopeft.tasks.classification_dev import ClassificationDev
from autopeft.tasks.demo import demo_examples
from autopeft.tasks.existing_path import existing_path
from autopeft.tasks.instruction_task import InstructionTask, load_instruction_task
from autopeft.tasks.metrics import METRICS
from autopeft.tasks.task_config import TaskConfig
from autopeft.tasks.tokenized_split import Example, TokenizedSplit
from autopeft.tasks.verbalized_task import verbalized_task

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from autopeft.budget import BudgetConfig

__all__ = ["Example", "Task", "TaskConfig", "load_task"]


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


@dataclass(frozen=True)
class Task:
    """A classification task: train and dev examples, label names and the metric that scores predictions.

    As a `TaskKind` it loads a sequence classifier (a fresh head over the pretrained model) and scores the
    argmax predictions of its dev split."""

    name: str
    labels: tuple[str, ...]
    metric: str
    train: tuple[Example, ...]
    dev: tuple[Example, ...]
    peft_task_type: ClassVar[str] = "SEQ_CLS"

    def score(self, labels: Sequence[int], predictions: Sequence[int]) -> float:
        """The task metric of `predictions` against `labels`."""
        return METRICS[self.metric](labels, predictions)

    def load_model(self, folder: Path, tokenizer: PreTrainedTokenizerBase) -> nn.Module:
        return load_classifier(folder, len(self.labels), tokenizer.pad_token_id)

    def splits(
        self, tokenizer: PreTrainedTokenizerBase, budget: BudgetConfig, seed: int
    ) -> tuple[TokenizedSplit, ClassificationDev]:
        """A seeded training subset and the first `dev_examples` dev examples, both tokenised."""
        order = list(range(len(self.train)))
        random.Random(seed).shuffle(order)
        train_examples = [self.train[i] for i in order[: budget.train_examples]]
        dev_examples = list(self.dev[: budget.dev_examples])
        return (
            TokenizedSplit.build(train_examples, tokenizer, budget.max_length),
            ClassificationDev(TokenizedSplit.build(dev_examples, tokenizer, budget.max_length), self.metric),
        )


def load_task(config: TaskConfig, base_dir: Path, seed: int = 0) -> Task | InstructionTask:
    """Build the task; relative paths are taken from `base_dir` (the search space's folder).

    Every file is checked before it is used: a classification training file must hold examples of at least two
    classes (a one-class head would score a perfect, meaningless metric) and a dev file at least one example."""
    if config.verbalizer is not None:
        task = load_classification_task(
            config.model_copy(update={"verbalizer": None, "metric": None}), base_dir, seed
        )
        return verbalized_task(task.name, task.labels, task.train, task.dev, config)
    if config.is_instruction:
        return load_instruction_task(config, base_dir, seed)
    return load_classification_task(config, base_dir, seed)


def load_classification_task(config: TaskConfig, base_dir: Path, seed: int = 0) -> Task:
    """A classification task (`load_task` for demo, the GLUE tasks, file and hub)."""
    if config.name == "demo":
        train = tuple(
            ((text,), label) for text, label in demo_examples(DEMO_SIZES["train"], seed=1000 + seed)
        )
        dev = tuple(((text,), label) for text, label in demo_examples(DEMO_SIZES["dev"], seed=2000))
        return Task("demo", ("negative", "positive"), config.metric or "accuracy", train, dev)
    if config.name in GLUE_FORMATS:
        return _glue_task(config, existing_path(base_dir, config.path, "task.path", "a GLUE folder"))
    if config.name == "file":
        return _file_task(config, base_dir)
    return _hub_task(config)


def _glue_task(config: TaskConfig, folder: Path) -> Task:
    spec = GLUE_FORMATS[config.name]
    train_path, dev_path = folder / "train.tsv", folder / "dev.tsv"
    train = _read_glue(train_path, spec)
    _require_two_classes(
        {spec.labels[label] for _, label in train}, train_path, f"column {spec.label_column}"
    )
    return Task(config.name, spec.labels, config.metric or spec.metric, train, _read_glue(dev_path, spec))


def _read_glue(path: Path, spec: GlueFormat) -> tuple[Example, ...]:
    """Read a GLUE TSV with quoting off (MRPC holds bare `"` characters)."""
    if not path.is_file():
        raise ConfigError(f"task.path: expected {path} to exist")
    try:
        with path.open(encoding=spec.encoding, newline="") as handle:
            rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{path}: byte {error.start} is not {spec.encoding} text; expected a TSV file"
        ) from None
    examples = []
    for number, row in enumerate(rows[1:] if spec.header else rows, start=2 if spec.header else 1):
        label = row[spec.label_column] if len(row) > spec.label_column else None
        if label not in spec.labels:
            raise ConfigError(
                f"{path}: line {number}: expected a label in {list(spec.labels)}, got {label!r}"
            )
        if len(row) <= max(spec.text_columns):
            raise ConfigError(f"{path}: line {number}: expected {max(spec.text_columns) + 1} columns or more")
        texts = tuple(row[column].strip() for column in spec.text_columns)
        examples.append((texts, spec.labels.index(label)))
    if not examples:
        raise ConfigError(f"{path}: no examples; expected one or more lines of examples")
    return tuple(examples)


def _file_task(config: TaskConfig, base_dir: Path) -> Task:
    """A CSV/JSONL task. The training file is read and checked in full before the dev file, so a message
    always blames the file that is wrong."""
    train_path = existing_path(base_dir, config.train_file, "task.train_file", "a CSV or JSONL training file")
    train_pairs = _labelled_texts(_read_records(train_path, "task.train_file"), config, train_path)
    labels = _require_two_classes({label for _, label in train_pairs}, train_path, _label_key(config))
    dev_path = existing_path(base_dir, config.dev_file, "task.dev_file", "a CSV or JSONL dev file")
    train = _indexed(train_pairs, labels, train_path)
    dev = _indexed(
        _labelled_texts(_read_records(dev_path, "task.dev_file"), config, dev_path), labels, dev_path
    )
    return Task(Path(config.train_file or "file").stem, labels, config.metric or "accuracy", train, dev)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{path}: byte {error.start} is not UTF-8 text; expected a CSV or JSONL file"
        ) from None


def _read_records(path: Path, key: str) -> list[dict[str, object]]:
    """The records of a CSV (header row, then one record per row) or JSONL file (one object per line); `key`
    is the task key that names the file."""
    text = _read_text(path)
    if path.suffix == ".jsonl":
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise ConfigError(f"{path}: line {number}: expected one JSON object per line") from None
            if not isinstance(record, dict):
                raise ConfigError(
                    f"{path}: line {number}: expected a JSON object, got {type(record).__name__}"
                )
            records.append(record)
    else:
        records = list(csv.DictReader(text.splitlines()))
    if not records:
        layout = "one JSON object per line" if path.suffix == ".jsonl" else "a header row, then one per row"
        raise ConfigError(f"{path}: no records ({key}); expected one or more ({layout})")
    return records


def _labelled_texts(
    rows: list[dict[str, object]], config: TaskConfig, source: Path | str
) -> list[tuple[tuple[str, ...], str]]:
    """(texts, label) of each record; a record without a value for one of the columns names the column."""
    pairs = []
    for number, row in enumerate(rows, start=1):
        for column in (*config.text_columns, config.label_column):
            if column not in row:
                raise ConfigError(
                    f"{source}: record {number}: expected column '{column}', found {sorted(map(str, row))}"
                )
            if row[column] is None:
                raise ConfigError(f"{source}: record {number}: column '{column}' has no value")
        pairs.append((tuple(str(row[c]) for c in config.text_columns), str(row[config.label_column])))
    return pairs


def _indexed(
    pairs: list[tuple[tuple[str, ...], str]], labels: tuple[str, ...], source: Path | str
) -> tuple[Example, ...]:
    """Examples with each label replaced by its index in the training file's sorted classes."""
    examples = []
    for number, (texts, label) in enumerate(pairs, start=1):
        if label not in labels:
            raise ConfigError(
                f"{source}: record {number}: label {label!r} does not occur in the training file"
            )
        examples.append((texts, labels.index(label)))
    return tuple(examples)


def _require_two_classes(classes: set[str], source: Path | str, column: str) -> tuple[str, ...]:
    """The classes found in a training file, sorted; fewer than two cannot train a classifier."""
    if len(classes) < 2:
        raise ConfigError(
            f"{source}: {column}: found only the class {min(classes)!r}; a classification task needs "
            "at least two classes in the training file"
        )
    return tuple(sorted(classes))


def _label_key(config: TaskConfig) -> str:
    return f"label column '{config.label_column}' (task.label_column)"


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
    source = f"task.dataset '{config.dataset}'"
    train_pairs = _labelled_texts([dict(row) for row in loaded["train"]], config, f"{source} train")
    labels = _require_two_classes({label for _, label in train_pairs}, f"{source} train", _label_key(config))
    dev_pairs = _labelled_texts([dict(row) for row in loaded[dev_split]], config, f"{source} {dev_split}")
    train = _indexed(train_pairs, labels, f"{source} train")
    dev = _indexed(dev_pairs, labels, f"{source} {dev_split}")
    return Task(str(config.dataset), labels, config.metric or "accuracy", train, dev)
