"""TiedWeight: an output head that shares its matrix with the input embedding, found from the stored tensors.

Decoder LLMs such as SmolLM2 tie `lm_head.weight` to `model.embed_tokens.weight` (`tie_word_embeddings`).
`save_pretrained` then stores the embedding only, while a module's state dict holds one tensor under both names.
Either way the head is not a matrix of its own: the audit leaves it out, even with `include_embeddings` (its rows
would repeat the embedding's), and reports it with the embedding it shares (ANALYSIS.md §1, scope).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch

from autopeft.analysis.checkpoint import Checkpoint

HEAD = re.compile(r"(?:^|\.)lm_head\.weight$")
INPUT_EMBEDDING = re.compile(r"(?:^|\.)(?:embed_tokens|wte|word_embeddings|embed_in)\.weight$")
HEAD_ARCHITECTURES = ("ForCausalLM", "LMHeadModel")
IMPLIED_HEAD = "lm_head.weight"


@dataclass(frozen=True)
class TiedWeight:
    """An output head tied to an input embedding: `stored` when the checkpoint holds an equal copy of it, False
    when `tie_word_embeddings` left it out of the files."""

    head: str
    embedding: str
    stored: bool

    @property
    def reason(self) -> str:
        """Why the head has no rows, for the report's `excluded` list."""
        how = "stored again under this name" if self.stored else "not stored: tie_word_embeddings"
        return f"tied to {self.embedding} ({how}); its matrix is the input embedding's, never a separate row"


def tied_weights(checkpoint: Checkpoint) -> list[TiedWeight]:
    """The output heads of a checkpoint that are its input embedding: absent but declared tied, or equal to it.

    An absent head counts only when `config.json` names a language-model architecture (`…ForCausalLM`,
    `…LMHeadModel`) and does not set `tie_word_embeddings` to false, so a bare `LlamaModel` reports nothing.
    A stored head is compared with the embedding exactly (the same storage, or equal values).
    """
    embedding = next((key for key in checkpoint.keys() if INPUT_EMBEDDING.search(key)), None)  # noqa: SIM118
    if embedding is None:
        return []
    heads = [key for key in checkpoint.keys() if HEAD.search(key)]  # noqa: SIM118 - a Checkpoint is not a dict
    if not heads:
        return [TiedWeight(IMPLIED_HEAD, embedding, False)] if _declares_tied_head(checkpoint.config) else []
    return [TiedWeight(head, embedding, True) for head in heads if _equal(checkpoint, head, embedding)]


def _declares_tied_head(config: dict[str, Any]) -> bool:
    """Whether `config.json` describes a language model whose head is the input embedding (the transformers
    default for `tie_word_embeddings` is true)."""
    architectures = config.get("architectures") or []
    is_language_model = any(str(name).endswith(HEAD_ARCHITECTURES) for name in architectures)
    return is_language_model and bool(config.get("tie_word_embeddings", True))


def _equal(checkpoint: Checkpoint, head: str, embedding: str) -> bool:
    """Whether two stored tensors are the same matrix; reads them only when shapes and dtypes agree."""
    if checkpoint.shape(head) != checkpoint.shape(embedding):
        return False
    if checkpoint.dtype(head) != checkpoint.dtype(embedding):
        return False
    first, second = checkpoint.tensor(head), checkpoint.tensor(embedding)
    same_storage = first.data_ptr() == second.data_ptr() and first.stride() == second.stride()
    return same_storage or torch.equal(first, second)
