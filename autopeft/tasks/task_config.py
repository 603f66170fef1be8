"""TaskConfig: the `task:` block of a search space, validated once, and the direction of its metric.

Classification tasks (demo, the GLUE folders, `file`, `hub`) are scored by accuracy, Matthews correlation or
F1; instruction tasks (`sft` from JSONL files, the generated `demo_sft`) train a causal LM on replies and are
scored by one of `INSTRUCTION_METRICS` (`tasks.instruction_dev`).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from autopeft.objectives import Direction

CLASSIFICATION_METRICS = ("accuracy", "matthews", "f1")
INSTRUCTION_METRICS = ("loss", "perplexity", "exact_match", "choice_accuracy", "choice_accuracy_normalized")
MINIMISED_METRICS = ("loss", "perplexity")
INSTRUCTION_TASKS = ("sft", "demo_sft")
GLUE_TASKS = ("sst2", "cola", "mrpc", "rte")
_INSTRUCTION_DEFAULT_METRICS = {"sft": "loss", "demo_sft": "exact_match"}

TaskName = Literal["demo", "sst2", "cola", "mrpc", "rte", "file", "hub", "sft", "demo_sft"]
MetricName = Literal[
    "accuracy",
    "matthews",
    "f1",
    "loss",
    "perplexity",
    "exact_match",
    "choice_accuracy",
    "choice_accuracy_normalized",
]


class TaskConfig(BaseModel):
    """The `task:` block of a search space."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: TaskName = Field(
        description="demo (generated), a GLUE task read from `path`, `file` (CSV/JSONL) or `hub` (datasets) "
        "for classification; `sft` (JSONL instruction data) or `demo_sft` (generated) to tune a causal LM."
    )
    path: str | None = Field(default=None, description="GLUE folder holding train.tsv and dev.tsv.")
    train_file: str | None = Field(default=None, description="Training file: CSV/JSONL (file), JSONL (sft).")
    dev_file: str | None = Field(default=None, description="Dev file: CSV/JSONL (file), JSONL (sft).")
    text_columns: tuple[str, ...] = Field(default=("text",), min_length=1, max_length=2)
    label_column: str = Field(default="label")
    verbalizer: tuple[str, ...] | None = Field(
        default=None,
        min_length=2,
        description="Read a classification task (demo, GLUE, file, hub) as an instruction task for a causal "
        "LM: one word per label, in label order (sst2: [negative, positive]); the reply trained and the "
        "options scored by likelihood (metric choice_accuracy by default).",
    )
    metric: MetricName | None = Field(
        default=None,
        description="Overrides the default (accuracy or the GLUE task's; loss for sft, exact_match for "
        "demo_sft). Instruction tasks: loss, perplexity, exact_match, choice_accuracy, "
        "choice_accuracy_normalized.",
    )
    dataset: str | None = Field(default=None, description="Hub dataset as name or name/config (name: hub).")
    packing: bool = Field(
        default=False,
        description="Instruction tasks: concatenate conversations into rows of budget.max_length tokens.",
    )
    answer_pattern: str | None = Field(
        default=None,
        description="exact_match: a regex whose last match (its first group, if any) is the answer; default: "
        "the last number.",
    )
    max_new_tokens: int = Field(default=16, ge=1, le=1024, description="exact_match: tokens generated.")

    @model_validator(mode="after")
    def _source_is_complete(self) -> TaskConfig:
        if self.name in GLUE_TASKS and self.path is None:
            raise ValueError(f"task '{self.name}' needs 'path', a folder with train.tsv and dev.tsv")
        if self.name in ("file", "sft") and (self.train_file is None or self.dev_file is None):
            raise ValueError(f"task '{self.name}' needs 'train_file' and 'dev_file'")
        if self.name == "hub" and self.dataset is None:
            raise ValueError("task 'hub' needs 'dataset', e.g. glue/sst2")
        return self

    @field_validator("metric")
    @classmethod
    def _metric_fits_the_kind(cls, metric: str | None, info: ValidationInfo) -> str | None:
        """A metric of the other task kind is an error, not silently ignored."""
        instruction = _is_instruction(info.data)
        allowed = INSTRUCTION_METRICS if instruction else CLASSIFICATION_METRICS
        if metric is not None and metric not in allowed:
            kind = "an instruction" if instruction else "a classification"
            raise ValueError(f"'{metric}' does not score {kind} task; expected one of {list(allowed)}")
        return metric

    @field_validator("packing", "answer_pattern", "max_new_tokens")
    @classmethod
    def _instruction_setting(cls, value: object, info: ValidationInfo) -> object:
        """Settings of instruction tasks are refused elsewhere (they would be ignored); their defaults pass, so
        a stored space (every key written out) reads back."""
        default = cls.model_fields[str(info.field_name)].default
        if value != default and not _is_instruction(info.data):
            raise ValueError(
                f"only instruction tasks ({', '.join(INSTRUCTION_TASKS)}, or a task with a verbalizer) use it"
            )
        return value

    @field_validator("answer_pattern")
    @classmethod
    def _answer_pattern(cls, pattern: str | None, info: ValidationInfo) -> str | None:
        metric = info.data.get("metric")
        if pattern is None:
            return pattern
        if (metric or _default_metric(info.data)) != "exact_match":
            raise ValueError("only metric exact_match uses it")
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(f"not a regular expression ({error})") from None
        return pattern

    @field_validator("verbalizer")
    @classmethod
    def _verbalizer_fits(cls, words: tuple[str, ...] | None, info: ValidationInfo) -> tuple[str, ...] | None:
        if words is None:
            return words
        if info.data.get("name") in INSTRUCTION_TASKS:
            raise ValueError(f"task '{info.data.get('name')}' is an instruction task already; expected none")
        if any(not word.strip() for word in words) or len(set(words)) != len(words):
            raise ValueError(f"expected distinct non-empty words, one per label, got {list(words)}")
        return words

    @property
    def is_instruction(self) -> bool:
        """True for tasks that tune a causal LM on replies (sft, demo_sft, a task with a verbalizer)."""
        return _is_instruction({"name": self.name, "verbalizer": self.verbalizer})

    @property
    def resolved_metric(self) -> str | None:
        """The metric given, else the instruction task's default (None: the classification task's own)."""
        return self.metric or _default_metric({"name": self.name, "verbalizer": self.verbalizer})

    @property
    def metric_direction(self) -> Direction:
        """Losses are minimised, every other metric maximised: the default direction of `task_metric`."""
        return "minimize" if self.resolved_metric in MINIMISED_METRICS else "maximize"


def _default_metric(data: dict[str, object]) -> str | None:
    """An instruction task's own metric (a verbalized one is scored by the likelihood of each word); None for a
    classification task, whose metric is its data's (accuracy, or the GLUE task's)."""
    if data.get("verbalizer") is not None:
        return "choice_accuracy"
    return _INSTRUCTION_DEFAULT_METRICS.get(str(data.get("name")))


def _is_instruction(data: dict[str, object]) -> bool:
    """An instruction task by name, or a classification task read through a verbalizer."""
    return data.get("name") in INSTRUCTION_TASKS or data.get("verbalizer") is not None
