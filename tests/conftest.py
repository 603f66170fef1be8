"""Shared fixtures: tiny random BERT and LLaMA models (as modules and as folders) and MiniLM.

Tiny models are built from a `transformers` config with random weights (2 layers, hidden size 32); their
folders reuse MiniLM's tokenizer so that trials can tokenise real text offline.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import BertForSequenceClassification, LlamaForSequenceClassification

from autopeft.models import load_classifier, load_tokenizer, resolve_model_path
from tests.tiny_models import save_tiny, tiny_bert_config, tiny_llama_config

pytest_plugins = ["tests.browser"]  # the session's one headless chromium


@pytest.fixture
def tiny_bert() -> BertForSequenceClassification:
    torch.manual_seed(0)
    return BertForSequenceClassification(tiny_bert_config())


@pytest.fixture
def tiny_llama() -> LlamaForSequenceClassification:
    torch.manual_seed(0)
    return LlamaForSequenceClassification(tiny_llama_config())


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny random BERT classifier folder (read-only for tests)."""
    torch.manual_seed(0)
    return save_tiny(BertForSequenceClassification(tiny_bert_config()), tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny random LLaMA classifier folder (read-only for tests)."""
    torch.manual_seed(0)
    return save_tiny(
        LlamaForSequenceClassification(tiny_llama_config()), tmp_path_factory.mktemp("tiny_llama")
    )


@pytest.fixture(scope="session")
def minilm() -> torch.nn.Module:
    """Pretrained MiniLM-L6 as a 2-label classifier, loaded once per run; do not modify it."""
    folder = resolve_model_path("minilm")
    return load_classifier(folder, 2, load_tokenizer(folder).pad_token_id)
