"""InstructionSplit: encoded conversations served as causal-LM training batches, padded or packed.

Padded batches hold one conversation per row, right-padded to the longest, with an attention mask. Packed
batches (`task.packing: true`) concatenate conversations into rows of at most `max_length` tokens; each
conversation keeps its own position ids (0, 1, ...) and the batch carries no attention mask, which is how
transformers 5 is told to keep attention within each conversation (LLaMA-family models and others built on
its masking utilities). Whatever the model, labels never cross a boundary: a conversation's first token is
never a target, so no loss term predicts one conversation from the one before it.

Truncation is counted, never silent: `data_metrics` reports how many conversations `max_length` cut, and how
many were dropped because no reply token was left.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch

from autopeft.errors import ConfigError
from autopeft.tasks.chat_format import IGNORED, ChatFormat, EncodedExample
from autopeft.tasks.instruction_data import InstructionExample
from autopeft.tasks.task_kind import Batch

logger = logging.getLogger(__name__)

Row = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]
"""One training row: input ids, labels and position ids."""


def encode_all(
    examples: Sequence[InstructionExample], chat: ChatFormat, max_length: int, split_name: str
) -> tuple[list[EncodedExample], dict[str, float]]:
    """The encoded conversations that kept a reply token, and the counts of truncated and dropped ones (also
    logged as a warning, since a cut reply changes what is learnt or scored)."""
    encoded = [chat.encode(example, max_length) for example in examples]
    kept = [e for e in encoded if e.has_reply]
    truncated = sum(e.truncated for e in encoded)
    if truncated:
        logger.warning(
            "%s: %d of %d conversations cut at max_length %d (%d dropped: no reply token left)",
            split_name,
            truncated,
            len(encoded),
            max_length,
            len(encoded) - len(kept),
        )
    return kept, {"truncated_examples": float(truncated), "dropped_examples": float(len(encoded) - len(kept))}


def pack(examples: Sequence[EncodedExample], max_length: int) -> list[Row]:
    """Conversations concatenated in order into rows of at most `max_length` tokens (a conversation is never
    split); each keeps its position ids from 0, and its first token is never a target."""
    rows: list[Row] = []
    ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []
    for example in examples:
        if ids and len(ids) + len(example.input_ids) > max_length:
            rows.append((tuple(ids), tuple(labels), tuple(positions)))
            ids, labels, positions = [], [], []
        ids += example.input_ids
        labels += [IGNORED, *example.labels[1:]]
        positions += range(len(example.input_ids))
    if ids:
        rows.append((tuple(ids), tuple(labels), tuple(positions)))
    return rows


def padded_batch(
    rows: Sequence[tuple[Sequence[int], Sequence[int]]], pad_id: int, device: torch.device
) -> Batch:
    """Rows of (ids, labels) right-padded to the longest, with an attention mask and labels -100 on padding."""
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORED, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for index, (ids, row_labels) in enumerate(rows):
        input_ids[index, : len(ids)] = torch.tensor(ids)
        labels[index, : len(ids)] = torch.tensor(row_labels)
        mask[index, : len(ids)] = 1
    return {"input_ids": input_ids.to(device), "attention_mask": mask.to(device), "labels": labels.to(device)}


def packed_batch(rows: Sequence[Row], pad_id: int, device: torch.device) -> Batch:
    """Packed rows padded to the longest, with position ids and no attention mask (see the module). Padding
    comes last in a row and continues its last positions, so under the causal mask no real token sees it."""
    width = max(len(ids) for ids, _, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORED, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    for index, (ids, row_labels, row_positions) in enumerate(rows):
        input_ids[index, : len(ids)] = torch.tensor(ids)
        labels[index, : len(ids)] = torch.tensor(row_labels)
        tail = row_positions[-1] + 1
        positions[index] = torch.tensor([*row_positions, *range(tail, tail + width - len(ids))])
    return {
        "input_ids": input_ids.to(device),
        "labels": labels.to(device),
        "position_ids": positions.to(device),
    }


@dataclass(frozen=True)
class InstructionSplit:
    """Encoded training conversations, served padded or packed (`packing`) in seeded shuffled batches."""

    examples: tuple[EncodedExample, ...]
    pad_id: int
    max_length: int
    packing: bool
    measured: Mapping[str, float]

    @classmethod
    def build(
        cls,
        examples: Sequence[InstructionExample],
        chat: ChatFormat,
        max_length: int,
        packing: bool,
    ) -> InstructionSplit:
        kept, measured = encode_all(examples, chat, max_length, "training split")
        if not kept:
            raise ConfigError(
                f"budget.max_length: {max_length} tokens leave no reply token in any training conversation; "
                "expected a larger max_length"
            )
        pad_id = chat.tokenizer.pad_token_id
        return cls(tuple(kept), int(pad_id if pad_id is not None else 0), max_length, packing, measured)

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def data_metrics(self) -> Mapping[str, float]:
        return self.measured

    def fingerprint(self) -> str:
        """A hash of the first 64 encoded conversations."""
        head = [(e.input_ids, e.labels) for e in self.examples[:64]]
        return hashlib.sha256(repr((head, self.packing)).encode()).hexdigest()

    def split(self, fraction: float, seed: int) -> tuple[InstructionSplit, InstructionSplit]:
        """A seeded random `fraction` of the conversations, and the rest (disjoint)."""
        order = list(range(len(self)))
        random.Random(seed).shuffle(order)
        cut = max(1, round(fraction * len(order)))
        return self._subset(order[:cut]), self._subset(order[cut:])

    def _subset(self, indices: Sequence[int]) -> InstructionSplit:
        examples = tuple(self.examples[i] for i in indices)
        return InstructionSplit(examples, self.pad_id, self.max_length, self.packing, self.measured)

    def rows(self, order: Sequence[int]) -> list[Row]:
        """Training rows of the conversations in `order`: packed, or one conversation per row."""
        chosen = [self.examples[i] for i in order]
        if self.packing:
            return pack(chosen, self.max_length)
        return [(e.input_ids, e.labels, tuple(range(len(e.input_ids)))) for e in chosen]

    def shuffled_forever(self, batch_size: int, device: torch.device, seed: int) -> Iterator[Batch]:
        """Endless batches: each epoch the conversations are reshuffled by a seeded generator (and packed
        anew when packing), so a trial is reproducible."""
        rng = random.Random(seed)
        order = list(range(len(self)))
        while True:
            rng.shuffle(order)
            rows = self.rows(order)
            last = len(rows) - batch_size + 1 if len(rows) >= batch_size else 1
            for start in range(0, last, batch_size):
                chunk = rows[start : start + batch_size]
                if self.packing:
                    yield packed_batch(chunk, self.pad_id, device)
                else:
                    yield padded_batch([(ids, labels) for ids, labels, _ in chunk], self.pad_id, device)
