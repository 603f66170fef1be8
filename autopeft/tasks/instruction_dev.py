"""InstructionDev: an instruction task's dev conversations and the metric a decoder user picks for them.

- `loss`: mean negative log-likelihood of the reply tokens (every reply token of the split weighs the same);
  `perplexity` is its exponential. Both are minimised.
- `exact_match`: the share of conversations whose greedy reply (up to `max_new_tokens` tokens) holds the same
  answer as the reference reply, the answer found by an `AnswerExtractor` (the last number, or a regex).
- `choice_accuracy`: multiple-choice items scored by the log-likelihood of each option as the reply, the
  option with the largest sum chosen; `choice_accuracy_normalized` divides each sum by the option's token
  count first (longer options are not penalised for their length).

Forgetting (`final_metrics`) is the change of the LM loss on a fixed general-text sample
(`tasks.general_text`) between the base model (the adapter disabled) and the fine-tuned one: positive when
fine-tuning made ordinary prose less likely.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from peft import PeftModel
from torch import nn

from autopeft.errors import ConfigError
from autopeft.tasks.answer_extractor import AnswerExtractor, exact_match
from autopeft.tasks.chat_format import ChatFormat, EncodedExample
from autopeft.tasks.general_text import general_text_rows
from autopeft.tasks.instruction_data import InstructionExample
from autopeft.tasks.lm_scores import LabelledRow, forward_throughput, greedy_replies, label_log_likelihoods
from autopeft.tasks.task_config import MINIMISED_METRICS
from autopeft.tasks.task_kind import DevEvaluation

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DevScoring:
    """How the dev split is scored: the metric, the answer extractor and the generation length (exact match)."""

    metric: str
    answers: AnswerExtractor = field(default_factory=AnswerExtractor)
    max_new_tokens: int = 16


@dataclass(frozen=True)
class InstructionDev:
    """Encoded dev conversations (those whose last reply survived `max_length`), their sources, the option
    rows of multiple-choice items, and the general-text rows for forgetting."""

    chat: ChatFormat
    scoring: DevScoring
    encoded: tuple[EncodedExample, ...]
    sources: tuple[InstructionExample, ...]
    options: tuple[tuple[EncodedExample, ...], ...]
    general: tuple[LabelledRow, ...]
    measured: Mapping[str, float]

    @classmethod
    def build(
        cls, examples: Sequence[InstructionExample], chat: ChatFormat, max_length: int, scoring: DevScoring
    ) -> InstructionDev:
        """Encode the conversations (and each option of a multiple-choice item); count the truncated ones and
        drop those whose last reply was cut away entirely."""
        kept: list[tuple[EncodedExample, InstructionExample, tuple[EncodedExample, ...]]] = []
        truncated = 0
        for example in examples:
            encoded = chat.encode(example, max_length)
            options = tuple(chat.encode(example.with_reply(o), max_length) for o in example.options)
            truncated += encoded.truncated or any(o.truncated for o in options)
            if encoded.keeps_last_reply and all(o.keeps_last_reply for o in options):
                kept.append((encoded, example, options))
        if not kept:
            raise ConfigError(
                f"budget.max_length: {max_length} tokens leave no dev conversation with its last reply; "
                "expected a larger max_length"
            )
        measured = {
            "truncated_examples": float(truncated),
            "dropped_examples": float(len(examples) - len(kept)),
        }
        rows = tuple(general_text_rows(chat.tokenizer, max_length))
        return cls(
            chat,
            scoring,
            tuple(e for e, _, _ in kept),
            tuple(s for _, s, _ in kept),
            tuple(o for _, _, o in kept),
            rows,
            measured,
        )

    def __len__(self) -> int:
        return len(self.encoded)

    @property
    def data_metrics(self) -> Mapping[str, float]:
        return self.measured

    @property
    def pad_id(self) -> int:
        pad = self.chat.tokenizer.pad_token_id
        return int(pad if pad is not None else 0)

    def evaluate(self, model: nn.Module, batch_size: int, device: torch.device) -> DevEvaluation:
        metric = self.scoring.metric
        if metric in MINIMISED_METRICS:
            loss = self.reply_loss(model, batch_size, device)
            return DevEvaluation(loss if metric == "loss" else math.exp(min(loss, 700.0)))
        if metric == "exact_match":
            matches = self.matches(model, batch_size, device)
            return DevEvaluation(sum(matches) / max(len(matches), 1), matches)
        chosen = self.choices(model, batch_size, device, normalized=metric.endswith("_normalized"))
        answers = [source.answer for source in self.sources]
        correct = sum(int(c == a) for c, a in zip(chosen, answers, strict=True))
        return DevEvaluation(correct / max(len(chosen), 1), chosen)

    def reply_loss(self, model: nn.Module, batch_size: int, device: torch.device) -> float:
        """Mean negative log-likelihood per reply token over the whole split."""
        rows = [(e.input_ids, e.labels) for e in self.encoded]
        scores = label_log_likelihoods(model, rows, self.pad_id, batch_size, device)
        return -sum(total for total, _ in scores) / max(sum(count for _, count in scores), 1)

    def matches(self, model: nn.Module, batch_size: int, device: torch.device) -> list[int]:
        """1/0 per conversation: does the greedy reply hold the reference's answer?"""
        prompts = [e.prompt_ids for e in self.encoded]
        replies = greedy_replies(
            model, prompts, self.chat.tokenizer, self.scoring.max_new_tokens, batch_size, device
        )
        extract = self.scoring.answers
        return exact_match([extract(s.reference) for s in self.sources], [extract(r) for r in replies])

    def choices(self, model: nn.Module, batch_size: int, device: torch.device, normalized: bool) -> list[int]:
        """The index of the most likely option of each item (summed, or per token when `normalized`)."""
        rows = [(o.input_ids, o.labels) for item in self.options for o in item]
        scores = iter(label_log_likelihoods(model, rows, self.pad_id, batch_size, device))
        chosen = []
        for item in self.options:
            item_scores = [next(scores) for _ in item]
            values = [total / count if normalized else total for total, count in item_scores]
            chosen.append(max(range(len(values)), key=values.__getitem__))
        return chosen

    def inference_speed(self, model: nn.Module, batch_size: int, device: torch.device) -> float:
        rows = [(e.input_ids, e.labels) for e in self.encoded]
        return forward_throughput(model, rows, self.pad_id, batch_size, device)

    def final_metrics(self, model: nn.Module, batch_size: int, device: torch.device) -> dict[str, float]:
        """`forgetting`: general-text LM loss of the fine-tuned model minus that of its base (adapter off)."""
        if not isinstance(model, PeftModel) or not self.general:
            return {}
        after = self._general_loss(model, batch_size, device)
        with model.disable_adapter():
            before = self._general_loss(model, batch_size, device)
        return {"forgetting": after - before}

    def _general_loss(self, model: nn.Module, batch_size: int, device: torch.device) -> float:
        scores = label_log_likelihoods(model, self.general, self.pad_id, batch_size, device)
        return -sum(total for total, _ in scores) / max(sum(count for _, count in scores), 1)
