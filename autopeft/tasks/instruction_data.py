"""Instruction data: JSONL records read into conversations, with a message for every malformed line.

A record is one of three shapes:

- `{"messages": [{"role": "user", "content": ...}, {"role": "assistant", "content": ...}, ...]}`: chat turns
  (roles system, user, assistant); every assistant turn is trained, the last one is the reference answer;
- `{"prompt": ..., "response": ...}`: one user turn and one assistant turn;
- `{"question": ..., "options": [...], "answer": i}`: a multiple-choice item, trained as the question and its
  correct option, and scored by the likelihood of each option (`task.metric: choice_accuracy`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from autopeft.errors import ConfigError

ROLES = ("system", "user", "assistant")
_SHAPES = "'messages', 'prompt' and 'response', or 'question', 'options' and 'answer'"


@dataclass(frozen=True)
class InstructionExample:
    """A conversation of (role, content) turns ending with an assistant turn, and for a multiple-choice
    item its options and the index of the correct one. `source` is `file: line n`, for messages."""

    messages: tuple[tuple[str, str], ...]
    options: tuple[str, ...] = ()
    answer: int | None = None
    source: str = ""

    @property
    def reference(self) -> str:
        """The last assistant turn: the answer a generation is compared with."""
        return self.messages[-1][1]

    def with_reply(self, reply: str) -> InstructionExample:
        """The same conversation with `reply` as its last assistant turn (an option to score)."""
        return InstructionExample((*self.messages[:-1], ("assistant", reply)), source=self.source)


def read_instruction_file(path: Path) -> tuple[InstructionExample, ...]:
    """Every record of the JSONL file at `path`; a bad line raises a `ConfigError` naming file, line and key."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: byte {error.start} is not UTF-8 text; expected a JSONL file") from None
    examples = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            examples.append(_example(_record(line, f"{path}: line {number}"), f"{path}: line {number}"))
    if not examples:
        raise ConfigError(f"{path}: no records; expected one JSON object per line with {_SHAPES}")
    return tuple(examples)


def require_choices(examples: tuple[InstructionExample, ...], metric: str) -> None:
    """Every example must be a multiple-choice item for `metric` to score it."""
    for example in examples:
        if not example.options:
            raise ConfigError(
                f"{example.source}: missing key 'options' (task.metric {metric} scores records with "
                "'question', 'options' and 'answer')"
            )


def _record(line: str, where: str) -> dict[str, object]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        raise ConfigError(f"{where}: expected one JSON object per line") from None
    if not isinstance(record, dict):
        raise ConfigError(f"{where}: expected a JSON object, got {type(record).__name__}")
    return record


def _example(record: dict[str, object], where: str) -> InstructionExample:
    if "messages" in record:
        return InstructionExample(_messages(record["messages"], where), source=where)
    if "prompt" in record or "response" in record:
        prompt, response = _text(record, "prompt", where), _text(record, "response", where)
        return InstructionExample((("user", prompt), ("assistant", response)), source=where)
    if "question" in record or "options" in record:
        return _choice(record, where)
    raise ConfigError(f"{where}: expected keys {_SHAPES}; found {sorted(record)}")


def _text(record: dict[str, object], key: str, where: str) -> str:
    if key not in record:
        raise ConfigError(f"{where}: missing key '{key}'")
    value = record[key]
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {key}: expected a string, got {type(value).__name__}")
    return value


def _messages(value: object, where: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: messages: expected a non-empty list of turns")
    turns = []
    for index, turn in enumerate(value):
        key = f"messages[{index}]"
        if not isinstance(turn, dict):
            raise ConfigError(f"{where}: {key}: expected an object with 'role' and 'content'")
        role, content = _text(turn, "role", f"{where}: {key}"), _text(turn, "content", f"{where}: {key}")
        if role not in ROLES:
            raise ConfigError(f"{where}: {key}.role: expected one of {list(ROLES)}, got {role!r}")
        turns.append((role, content))
    if turns[0][0] == "assistant":
        raise ConfigError(f"{where}: messages[0]: expected a system or user turn before the first reply")
    if turns[-1][0] != "assistant":
        raise ConfigError(f"{where}: messages[{len(turns) - 1}]: expected the last turn from the assistant")
    return tuple(turns)


def _choice(record: dict[str, object], where: str) -> InstructionExample:
    question = _text(record, "question", where)
    if "options" not in record:
        raise ConfigError(f"{where}: missing key 'options'")
    options = record["options"]
    if not isinstance(options, list) or len(options) < 2 or not all(isinstance(o, str) for o in options):
        raise ConfigError(f"{where}: options: expected a list of two or more strings")
    if "answer" not in record:
        raise ConfigError(f"{where}: missing key 'answer'")
    answer = record["answer"]
    if not isinstance(answer, int) or isinstance(answer, bool) or not 0 <= answer < len(options):
        raise ConfigError(f"{where}: answer: expected an option index 0..{len(options) - 1}, got {answer!r}")
    return InstructionExample(
        (("user", question), ("assistant", options[answer])), tuple(options), answer, where
    )
