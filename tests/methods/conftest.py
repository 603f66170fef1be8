"""Fixtures of the method tests: a deeper tiny BERT (8 blocks) for IST's block sampling."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, BertForSequenceClassification

from autopeft.models import resolve_model_path
from tests.tiny_models import tiny_bert_config


@pytest.fixture(scope="session")
def deep_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT with 8 blocks (IST needs several), saved with MiniLM's tokenizer."""
    torch.manual_seed(0)
    config = tiny_bert_config()
    config.num_hidden_layers = 8
    folder = tmp_path_factory.mktemp("deep_bert")
    BertForSequenceClassification(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(resolve_model_path("minilm")).save_pretrained(folder)
    return folder
