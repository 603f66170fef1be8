"""Fixtures for the analysis tests: an isolated SVD cache, tiny models saved by transformers, matrix builders."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    """One torch thread: on a shared 2-core machine OpenMP spin-waiting makes small SVDs ~25× slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def svd_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own base-SVD cache, so no test reads another's entries or the user's."""
    directory = tmp_path / "svd-cache"
    monkeypatch.setenv("AUTOPEFT_CACHE_DIR", str(directory))
    return directory


def tiny_bert_config():  # type: ignore[no-untyped-def]
    from transformers import BertConfig

    return BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        vocab_size=64,
        max_position_embeddings=32,
    )


@pytest.fixture
def tiny_bert_folder(tmp_path: Path) -> Path:
    """A random BertModel (hidden 32, 2 layers) saved by transformers: keys without the `bert.` prefix."""
    from transformers import BertModel

    torch.manual_seed(0)
    folder = tmp_path / "tiny-bert"
    BertModel(tiny_bert_config()).save_pretrained(folder)
    return folder
