"""A classification task read as an instruction task through a verbalizer: each label is a word.

`task: {name: sst2, path: ..., verbalizer: [negative, positive]}` turns every example into one user turn (its
texts and the words to answer with) and the label's word as the reply; the reply is what a causal LM is trained
on, and the dev split is scored by the log-likelihood of each word (`choice_accuracy`, the default), the way
decoder papers score GLUE zero- and few-shot. The model keeps its LM head: no classifier is added.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from autopeft.errors import ConfigError
from autopeft.tasks.answer_extractor import AnswerExtractor
from autopeft.tasks.instruction_data import InstructionExample
from autopeft.tasks.instruction_dev import DevScoring
from autopeft.tasks.instruction_task import InstructionTask
from autopeft.tasks.task_config import TaskConfig

if TYPE_CHECKING:
    from autopeft.tasks.tokenized_split import Example


def verbalized_task(
    name: str, labels: Sequence[str], train: Sequence[Example], dev: Sequence[Example], config: TaskConfig
) -> InstructionTask:
    """The instruction task of a classification task's examples (`labels` are its label names, in index
    order), with `config.verbalizer[i]` as the reply for label i."""
    words = tuple(config.verbalizer or ())
    if len(words) != len(labels):
        raise ConfigError(
            f"task.verbalizer: expected {len(labels)} words, one per label {list(labels)} of task "
            f"'{name}', got {len(words)}"
        )
    scoring = DevScoring(
        str(config.resolved_metric), AnswerExtractor(config.answer_pattern), config.max_new_tokens
    )
    return InstructionTask(
        name,
        tuple(_conversation(example, words, f"{name} train example {i}") for i, example in enumerate(train)),
        tuple(_conversation(example, words, f"{name} dev example {i}") for i, example in enumerate(dev)),
        scoring,
        config.packing,
    )


def _conversation(example: Example, words: tuple[str, ...], source: str) -> InstructionExample:
    """One user turn with the example's texts and the choice of words, the label's word as the reply."""
    texts, label = example
    if len(texts) == 1:
        body = f"Text: {texts[0]}"
    else:
        body = "\n".join(f"Text {i}: {text}" for i, text in enumerate(texts, start=1))
    prompt = f"{body}\nAnswer with one word: {' or '.join(words)}."
    return InstructionExample(
        (("user", prompt), ("assistant", words[label])), options=words, answer=label, source=source
    )
