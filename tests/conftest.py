"""Shared fixtures: tiny random BERT and LLaMA models (as modules and as folders), MiniLM, and small spaces.

Tiny models are built from a `transformers` config with random weights (2 layers, hidden size 32); their
folders reuse MiniLM's tokenizer so that trials can tokenise real text offline.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    LlamaConfig,
    LlamaForSequenceClassification,
)

from autopeft.models import load_classifier, load_tokenizer, resolve_model_path

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


@pytest.fixture
def tiny_bert() -> BertForSequenceClassification:
    torch.manual_seed(0)
    return BertForSequenceClassification(tiny_bert_config())


@pytest.fixture
def tiny_llama() -> LlamaForSequenceClassification:
    torch.manual_seed(0)
    return LlamaForSequenceClassification(tiny_llama_config())


def _save_tiny(model: torch.nn.Module, folder: Path) -> Path:
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(resolve_model_path("minilm")).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny random BERT classifier folder (read-only for tests)."""
    torch.manual_seed(0)
    return _save_tiny(BertForSequenceClassification(tiny_bert_config()), tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny random LLaMA classifier folder (read-only for tests)."""
    torch.manual_seed(0)
    return _save_tiny(
        LlamaForSequenceClassification(tiny_llama_config()), tmp_path_factory.mktemp("tiny_llama")
    )


@pytest.fixture(scope="session")
def minilm() -> torch.nn.Module:
    """Pretrained MiniLM-L6 as a 2-label classifier, loaded once per run; do not modify it."""
    folder = resolve_model_path("minilm")
    return load_classifier(folder, 2, load_tokenizer(folder).pad_token_id)


def write_space(folder: Path, model: str | Path, trials: int = 4, **overrides: str) -> Path:
    """A small demo-task search space for `model`, trained for a handful of steps."""
    sections = {
        "budget": "budget: {train_examples: 64, dev_examples: 64, steps: 6, max_length: 24, batch_size: 8, "
        "learning_rate: 0.002, evaluations: 2}",
        "objectives": "objectives: [{name: task_metric}, {name: trainable_parameters}]",
        "dimensions": "dimensions:\n  layers: {mode: per_layer}\n  modules: [query, value]\n"
        "  rank: {choices: [0, 2, 4], share: module_type}",
        "sampler": "sampler: {name: random}",
    }
    sections.update(overrides)
    text = f"model: {model}\ntask: {{name: demo}}\ntrials: {trials}\nseed: 0\n" + "\n".join(sections.values())
    path = folder / "space.yaml"
    path.write_text(text + "\n")
    return path
