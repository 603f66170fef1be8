"""Instruction tasks: JSONL records in three shapes with one-line messages for bad lines, the task config's
rules (metric per kind, the direction of task_metric), and the generated demo_sft task."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from autopeft.errors import ConfigError
from autopeft.search_space import SearchSpace
from autopeft.tasks.answer_extractor import AnswerExtractor
from autopeft.tasks.instruction_data import read_instruction_file
from autopeft.tasks.instruction_task import InstructionTask
from autopeft.tasks.task import TaskConfig, load_task


def _jsonl(path: Path, *records: object) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def test_the_three_record_shapes_become_conversations(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "data.jsonl",
        {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
                      {"role": "assistant", "content": "hello"}]},
        {"prompt": "what is 2 plus 3 ?", "response": "5"},
        {"question": "colour of the sky ?", "options": ["green", "blue"], "answer": 1},
    )  # fmt: skip
    chat, pair, choice = read_instruction_file(path)
    assert chat.messages == (("system", "be brief"), ("user", "hi"), ("assistant", "hello"))
    assert pair.messages == (("user", "what is 2 plus 3 ?"), ("assistant", "5"))
    assert choice.messages == (("user", "colour of the sky ?"), ("assistant", "blue"))
    assert (choice.options, choice.answer, choice.reference) == (("green", "blue"), 1, "blue")
    assert pair.source == f"{path}: line 2"


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"prompt": "hi"}, "line 2: missing key 'response'"),
        ({"question": "q", "options": ["a", "b"]}, "line 2: missing key 'answer'"),
        (
            {"question": "q", "options": ["a", "b"], "answer": 2},
            "line 2: answer: expected an option index 0..1, got 2",
        ),
        (
            {"text": "hi"},
            "line 2: expected keys 'messages', 'prompt' and 'response', or 'question', 'options'",
        ),
        ({"messages": [{"role": "user"}]}, "line 2: messages[0]: missing key 'content'"),
        ({"messages": [{"role": "bot", "content": "x"}]}, "line 2: messages[0].role: expected one of"),
        (
            {"messages": [{"role": "user", "content": "x"}]},
            "line 2: messages[0]: expected the last turn from the",
        ),
        ("[1, 2]", "line 2: expected a JSON object, got list"),
        ("{oops", "line 2: expected one JSON object per line"),
    ],
)
def test_a_bad_line_is_named_with_its_file_line_and_key(tmp_path: Path, record: object, message: str) -> None:
    path = _jsonl(tmp_path / "bad.jsonl", {"prompt": "hi", "response": "hello"}, record)
    with pytest.raises(ConfigError, match=re.escape(f"{path}: {message}")) as raised:
        read_instruction_file(path)
    assert "\n" not in str(raised.value)


def test_sft_reads_its_files_and_checks_the_dev_split_fits_the_metric(tmp_path: Path) -> None:
    _jsonl(tmp_path / "train.jsonl", {"prompt": "hi", "response": "hello"})
    _jsonl(tmp_path / "dev.jsonl", {"prompt": "what is 2 plus 3 ?", "response": "it is five"})
    config = {"name": "sft", "train_file": "train.jsonl", "dev_file": "dev.jsonl"}
    task = load_task(TaskConfig(**config), tmp_path)
    assert isinstance(task, InstructionTask) and task.metric == "loss" and task.name == "train"
    assert task.peft_task_type == "CAUSAL_LM"
    with pytest.raises(
        ConfigError, match=re.escape(f"{tmp_path / 'dev.jsonl'}: line 1: missing key 'options'")
    ):
        load_task(TaskConfig(**config, metric="choice_accuracy"), tmp_path)
    with pytest.raises(
        ConfigError, match="line 1: the reply 'it is five' holds no answer by the last number"
    ):
        load_task(TaskConfig(**config, metric="exact_match"), tmp_path)
    spelled = load_task(TaskConfig(**config, metric="exact_match", answer_pattern=r"is (\w+)"), tmp_path)
    assert isinstance(spelled, InstructionTask) and spelled.scoring.answers == AnswerExtractor(r"is (\w+)")


def _space(task: str, objectives: str = "[{name: task_metric}]", sampler: str = "random") -> str:
    return (
        f"model: minilm\ntask: {task}\nobjectives: {objectives}\nsampler: {{name: {sampler}}}\n"
        "dimensions: {modules: [query], rank: {choices: [2]}}\n"
    )


@pytest.mark.parametrize(
    ("task", "direction"),
    [
        ("{name: demo}", "maximize"),
        ("{name: sft, train_file: t.jsonl, dev_file: d.jsonl}", "minimize"),
        ("{name: sft, train_file: t.jsonl, dev_file: d.jsonl, metric: perplexity}", "minimize"),
        ("{name: demo_sft}", "maximize"),
        ("{name: demo_sft, metric: choice_accuracy}", "maximize"),
    ],
)
def test_task_metric_goes_the_way_its_metric_does(task: str, direction: str) -> None:
    assert SearchSpace.from_yaml(_space(task), "space.yaml").directions == [direction]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            _space("{name: demo_sft, metric: loss}", "[{name: task_metric, direction: maximize}]"),
            "objectives[0].direction: the task metric 'loss' is minimized; got maximize",
        ),
        (
            _space("{name: demo}", "[{name: task_metric}, {name: forgetting}]"),
            "objectives[1].name: 'forgetting' is measured on instruction tasks (sft, demo_sft)",
        ),
        (_space("{name: demo, metric: loss}"), "task.metric: 'loss' does not score a classification task"),
        (_space("{name: demo_sft, metric: f1}"), "task.metric: 'f1' does not score an instruction task"),
        (
            _space("{name: demo, packing: true}"),
            "task.packing: only instruction tasks (sft, demo_sft, or a task with a verbalizer) use it",
        ),
        (
            _space("{name: demo_sft, metric: loss, answer_pattern: x}"),
            "task.answer_pattern: only metric exact_match",
        ),
        (_space("{name: demo_sft, answer_pattern: '('}"), "task.answer_pattern: not a regular expression"),
        (_space("{name: sft, train_file: t.jsonl}"), "task: task 'sft' needs 'train_file' and 'dev_file'"),
    ],
)
def test_task_settings_of_the_wrong_kind_are_refused_with_their_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"space.yaml: {message}")):
        SearchSpace.from_yaml(text, "space.yaml")


def test_demo_sft_is_deterministic_and_its_answers_are_not_in_the_prompt() -> None:
    first = load_task(TaskConfig(name="demo_sft"), Path("."))
    second = load_task(TaskConfig(name="demo_sft"), Path("."))
    assert isinstance(first, InstructionTask) and first.metric == "exact_match"
    assert first.train == second.train and first.dev == second.dev and len(first.train) == 2000
    answers = AnswerExtractor()
    arithmetic = [e for e in first.dev if "plus" in e.messages[0][1] or "minus" in e.messages[0][1]]
    assert len(arithmetic) > 60
    for example in first.dev:
        assert answers(example.reference) == example.reference  # the reply is a number and nothing else
    copied = sum(example.reference in example.messages[0][1].split() for example in arithmetic)
    assert copied < 0.1 * len(arithmetic)
    assert {e.reference for e in first.dev} & {e.reference for e in first.train}  # the same kind of answers


@pytest.mark.parametrize(
    "task", ["{name: demo}", "{name: demo_sft, metric: exact_match, answer_pattern: '(\\d+)', packing: true}"]
)
def test_a_stored_space_with_every_key_written_out_reads_back(task: str) -> None:
    space = SearchSpace.from_yaml(_space(task), "space.yaml")
    stored = yaml.safe_dump(space.model_dump(mode="json"))
    assert SearchSpace.from_yaml(stored, "stored.yaml").model_dump() == space.model_dump()
