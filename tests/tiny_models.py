"""Tiny random BERT and LLaMA configs (2 layers, hidden size 32) and how a test saves one as a model folder.

The folders reuse MiniLM's tokenizer so that trials can tokenise real text offline.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoTokenizer, BertConfig, LlamaConfig

from autopeft.models import resolve_model_path

VOCAB = 30522  # MiniLM's tokenizer, shared by the tiny models


def tiny_bert_config() -> BertConfig:
    return BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=2,
    )


def tiny_llama_config() -> LlamaConfig:
    return LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=2,
        pad_token_id=0,
    )


def save_tiny(model: torch.nn.Module, folder: Path) -> Path:
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(resolve_model_path("minilm")).save_pretrained(folder)
    return folder
