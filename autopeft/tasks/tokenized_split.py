"""TokenizedSplit: one split of a task tokenised once, served in dynamically padded batches.

Padding each batch only to its longest example (not to `max_length`) is what keeps short-text trials fast.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

Example = tuple[tuple[str, ...], int]
"""A classification example: its text (or text pair) and its label index."""


@dataclass(frozen=True)
class TokenizedSplit:
    """Token ids per example, labels, and the tokenizer that pads them."""

    features: tuple[dict[str, list[int]], ...]
    labels: tuple[int, ...]
    tokenizer: PreTrainedTokenizerBase

    @classmethod
    def build(
        cls, examples: Sequence[Example], tokenizer: PreTrainedTokenizerBase, max_length: int
    ) -> TokenizedSplit:
        """Tokenise single texts or text pairs, truncated to `max_length` tokens."""
        firsts = [texts[0] for texts, _ in examples]
        seconds = [texts[1] for texts, _ in examples] if examples and len(examples[0][0]) > 1 else None
        encoded = tokenizer(firsts, seconds, truncation=True, max_length=max_length)
        keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoded]
        features = tuple({k: encoded[k][i] for k in keys} for i in range(len(examples)))
        return cls(features, tuple(label for _, label in examples), tokenizer)

    def split(self, fraction: float, seed: int) -> tuple[TokenizedSplit, TokenizedSplit]:
        """A seeded random `fraction` of the examples, and the rest (disjoint)."""
        order = list(range(len(self)))
        random.Random(seed).shuffle(order)
        cut = max(1, round(fraction * len(order)))
        return self._subset(order[:cut]), self._subset(order[cut:])

    def _subset(self, indices: Sequence[int]) -> TokenizedSplit:
        return TokenizedSplit(
            tuple(self.features[i] for i in indices), tuple(self.labels[i] for i in indices), self.tokenizer
        )

    def __len__(self) -> int:
        return len(self.labels)

    def fingerprint(self) -> str:
        """A hash of the first 64 tokenised examples (enough to tell two data sets apart)."""
        return hashlib.sha256(repr(self.features[:64]).encode()).hexdigest()

    @property
    def data_metrics(self) -> Mapping[str, float]:
        """Nothing is measured: the tokenizer truncates classification texts (pairs longest first) uncounted."""
        return {}

    def batch(self, indices: Sequence[int], device: torch.device) -> dict[str, torch.Tensor]:
        """The examples at `indices`, padded to their longest one, with labels, on `device`."""
        padded = self.tokenizer.pad([self.features[i] for i in indices], return_tensors="pt")
        padded["labels"] = torch.tensor([self.labels[i] for i in indices])
        return {key: value.to(device) for key, value in padded.items()}

    def in_order(self, batch_size: int, device: torch.device) -> Iterator[dict[str, torch.Tensor]]:
        """All examples in their order (for evaluation)."""
        for start in range(0, len(self), batch_size):
            yield self.batch(range(start, min(start + batch_size, len(self))), device)

    def shuffled_forever(
        self, batch_size: int, device: torch.device, seed: int
    ) -> Iterator[dict[str, torch.Tensor]]:
        """Endless batches, reshuffled each epoch by a seeded generator, so a trial is reproducible."""
        rng = random.Random(seed)
        order = list(range(len(self)))
        while True:
            rng.shuffle(order)
            for start in range(0, len(order) - batch_size + 1 if len(order) >= batch_size else 1, batch_size):
                yield self.batch(order[start : start + batch_size], device)
