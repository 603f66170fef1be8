"""InstructionTask: causal-LM fine-tuning on instruction data, the second task kind (`tasks.task_kind`).

The model keeps its own LM head (no classifier, so no `modules_to_save`), adapters are peft `CAUSAL_LM`
adapters, the loss falls on reply tokens only (`tasks.chat_format`), training batches are padded or packed
(`tasks.instruction_split`), and the dev split is scored by the metric the user picked (`tasks.instruction_dev`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from torch import nn

from autopeft.errors import ConfigError
from autopeft.models import load_causal_lm
from autopeft.tasks.answer_extractor import AnswerExtractor
from autopeft.tasks.chat_format import ChatFormat
from autopeft.tasks.demo_sft import DEMO_SFT_SIZES, demo_sft_examples
from autopeft.tasks.existing_path import existing_path
from autopeft.tasks.instruction_data import InstructionExample, read_instruction_file, require_choices
from autopeft.tasks.instruction_dev import DevScoring, InstructionDev
from autopeft.tasks.instruction_split import InstructionSplit
from autopeft.tasks.task_config import TaskConfig

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from autopeft.budget import BudgetConfig


@dataclass(frozen=True)
class InstructionTask:
    """Training and dev conversations, how the dev split is scored, and whether training rows are packed."""

    name: str
    train: tuple[InstructionExample, ...]
    dev: tuple[InstructionExample, ...]
    scoring: DevScoring
    packing: bool = False
    peft_task_type: ClassVar[str] = "CAUSAL_LM"

    @property
    def metric(self) -> str:
        return self.scoring.metric

    def load_model(self, folder: Path, tokenizer: PreTrainedTokenizerBase) -> nn.Module:
        return load_causal_lm(folder, tokenizer.pad_token_id)

    def splits(
        self, tokenizer: PreTrainedTokenizerBase, budget: BudgetConfig, seed: int
    ) -> tuple[InstructionSplit, InstructionDev]:
        """A seeded training subset and the first `dev_examples` dev conversations, encoded with the
        tokenizer's chat template (or the plain format)."""
        order = list(range(len(self.train)))
        random.Random(seed).shuffle(order)
        chat = ChatFormat(tokenizer)
        train = [self.train[i] for i in order[: budget.train_examples]]
        dev = list(self.dev[: budget.dev_examples])
        return (
            InstructionSplit.build(train, chat, budget.max_length, self.packing),
            InstructionDev.build(dev, chat, budget.max_length, self.scoring),
        )


def load_instruction_task(config: TaskConfig, base_dir: Path, seed: int = 0) -> InstructionTask:
    """Read (or generate) the conversations and check the dev split fits the metric: multiple-choice items for
    a choice metric, a reference answer the extractor finds for exact match."""
    metric = str(config.resolved_metric)
    scoring = DevScoring(metric, AnswerExtractor(config.answer_pattern), config.max_new_tokens)
    if config.name == "demo_sft":
        train = demo_sft_examples(DEMO_SFT_SIZES["train"], seed=1000 + seed)
        dev = demo_sft_examples(DEMO_SFT_SIZES["dev"], seed=2000)
    else:
        train_path = existing_path(base_dir, config.train_file, "task.train_file", "a JSONL training file")
        train = read_instruction_file(train_path)
        dev_path = existing_path(base_dir, config.dev_file, "task.dev_file", "a JSONL dev file")
        dev = read_instruction_file(dev_path)
    if metric.startswith("choice_"):
        require_choices(dev, metric)
    if metric == "exact_match":
        _require_answers(dev, scoring.answers)
    name = config.name if config.name == "demo_sft" else Path(str(config.train_file)).stem
    return InstructionTask(name, train, dev, scoring, config.packing)


def _require_answers(examples: tuple[InstructionExample, ...], answers: AnswerExtractor) -> None:
    """Every reference reply must hold an answer, or exact match could never be scored on it."""
    for example in examples:
        if answers(example.reference) is None:
            raise ConfigError(
                f"{example.source}: the reply {example.reference[:60]!r} holds no answer by "
                f"{answers.describe()}; expected one (or set task.answer_pattern)"
            )
