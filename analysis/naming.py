"""Matrix naming and layout: canonical names, scope, (out, in) orientation and fused-projection splitting.

Base and fine-tuned tensors are paired by canonical name (ANALYSIS.md §1): wrapper prefixes such as
`base_model.model.` and a leading architecture prefix (`bert.`, `model.`, …) are stripped on both sides, so
`bert.encoder.layer.0.attention.self.query.weight` pairs with `encoder.layer.0.attention.self.query.weight`.
Every matrix is analysed in the `nn.Linear` layout (out, in); GPT-2 `Conv1D` weights are transposed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from autopeft.analysis.checkpoint import Checkpoint
from autopeft.analysis.tied_weights import tied_weights

WRAPPER_PREFIXES = ("base_model.model.",)
ARCHITECTURE_PREFIXES = (
    "bert.",
    "roberta.",
    "model.",
    "transformer.",
    "gpt_neox.",
    "deberta.",
    "distilbert.",
    "electra.",
    "albert.",
    "xlm_roberta.",
    "encoder_model.",
)
CONV1D_MODEL_TYPES = frozenset({"gpt2", "openai-gpt", "imagegpt", "decision_transformer"})
CONV1D_MODULES = frozenset({"c_attn", "c_proj", "c_fc", "q_attn"})
LINEAR_MODEL_TYPES = frozenset(
    {
        "bert",
        "roberta",
        "xlm-roberta",
        "distilbert",
        "electra",
        "albert",
        "deberta",
        "deberta-v2",
        "llama",
        "mistral",
        "mixtral",
        "qwen2",
        "qwen3",
        "gemma",
        "gemma2",
        "gemma3",
        "phi",
        "phi3",
        "t5",
        "bart",
        "opt",
        "gpt_neox",
        "falcon",
        "gptj",
        "gpt_bigcode",
        "mpt",
        "olmo",
        "olmo2",
        "starcoder2",
        "stablelm",
    }
)
LAYER_INDEX = re.compile(r"(?:^|\.)(\d+)\.")
NORMALISATION = re.compile(r"(norm|(^|\.)ln_?\w*$)", re.IGNORECASE)
EMBEDDING = re.compile(r"(embed|(^|\.)wte$|(^|\.)wpe$)", re.IGNORECASE)
EQUAL_THIRDS = frozenset({"c_attn", "W_pack"})


class Skipped(NamedTuple):
    """A tensor the audit leaves out, the reason, and for a tied head the embedding whose matrix it is."""

    tensor: str
    reason: str
    tied_to: str = ""


@dataclass(frozen=True)
class MatrixEntry:
    """One analysable (out, in) matrix: its canonical name, where it is stored and how to orient it.

    `rows` selects the output-row block of a fused projection; `flag` records caveats (`fused_unsplit`).
    """

    name: str
    key: str
    shape: tuple[int, int]
    transpose: bool = False
    rows: tuple[int, int] | None = None
    orientation_assumed: bool = False
    flag: str = ""

    @property
    def module(self) -> str:
        """The canonical module name without the fused-part suffix."""
        return self.name.split("[", 1)[0]


def canonical_name(key: str) -> str:
    """Strip wrapper and architecture prefixes and a trailing `.weight`: the name used for pairing."""
    for prefix in WRAPPER_PREFIXES:
        key = key.removeprefix(prefix)
    for prefix in ARCHITECTURE_PREFIXES:
        if key.startswith(prefix):
            key = key[len(prefix) :]
            break
    return key.removesuffix(".weight")


def layer_index(name: str) -> int | None:
    """The transformer block index in a name (`encoder.layer.3.…` → 3), None outside blocks."""
    match = LAYER_INDEX.search(name)
    return int(match.group(1)) if match else None


def module_type(name: str) -> str:
    """The part of a name after the block index (`attention.self.query`), used to aggregate across layers."""
    match = LAYER_INDEX.search(name)
    return name[match.end() :] if match else name


def matrix_entries(
    checkpoint: Checkpoint, include_embeddings: bool, split_fused: bool
) -> tuple[dict[str, MatrixEntry], list[Skipped]]:
    """The in-scope matrices of a checkpoint by canonical name, and the 2-D weights left out with a reason.

    A tied output head is always left out (even with `include_embeddings`) and reported, stored or not.
    """
    entries: dict[str, MatrixEntry] = {}
    tied = {weight.head: weight for weight in tied_weights(checkpoint)}
    excluded = [Skipped(head, weight.reason, weight.embedding) for head, weight in tied.items()]
    for key in checkpoint.keys():  # noqa: SIM118 - a Checkpoint is not a dict
        shape = checkpoint.shape(key)
        if len(shape) != 2 or not key.endswith("weight") or key in tied:
            continue
        reason = _exclusion_reason(key, checkpoint.dtype(key), include_embeddings)
        if reason:
            excluded.append(Skipped(key, reason))
            continue
        for entry in _oriented_entries(checkpoint, key, (shape[0], shape[1]), split_fused):
            entries[entry.name] = entry
    return entries, excluded


def read_matrix(checkpoint: Checkpoint, entry: MatrixEntry) -> torch.Tensor:
    """The (out, in) matrix of an entry in its stored dtype."""
    W = checkpoint.tensor(entry.key)
    W = W.mT if entry.transpose else W
    return W[entry.rows[0] : entry.rows[1]] if entry.rows else W


def _exclusion_reason(key: str, dtype: torch.dtype | None, include_embeddings: bool) -> str:
    """Why a 2-D tensor is not analysed ("" when it is): ANALYSIS.md §1, scope."""
    name = canonical_name(key)
    if dtype is None:
        return "not a floating-point weight"
    if "modules_to_save" in key:
        return "modules_to_save copy (a full replacement head, not a LoRA update)"
    if NORMALISATION.search(name):
        return "normalisation weight"
    if include_embeddings:
        return ""
    if EMBEDDING.search(name):
        return "embedding (excluded by default; include_embeddings=True analyses it)"
    if layer_index(name) is None:
        return "outside the transformer blocks (heads are excluded by default; include_embeddings=True analyses them)"
    return ""


def _oriented_entries(
    checkpoint: Checkpoint, key: str, shape: tuple[int, int], split_fused: bool
) -> list[MatrixEntry]:
    name = canonical_name(key)
    transpose, assumed = _orientation(checkpoint, key)
    out_in = (shape[1], shape[0]) if transpose else shape
    entry = MatrixEntry(name, key, out_in, transpose, None, assumed)
    return _split_fused(entry, checkpoint.config) if split_fused else [entry]


def _orientation(checkpoint: Checkpoint, key: str) -> tuple[bool, bool]:
    """(transpose?, assumed?) from the module classes if known, else from the `model_type` table."""
    module = key.removesuffix(".weight")
    if checkpoint.conv1d_modules is not None:
        return module in checkpoint.conv1d_modules, False
    model_type = str(checkpoint.config.get("model_type", ""))
    if model_type in CONV1D_MODEL_TYPES:
        return module.rsplit(".", 1)[-1] in CONV1D_MODULES, False
    return False, model_type not in LINEAR_MODEL_TYPES


def _split_fused(entry: MatrixEntry, config: dict[str, Any]) -> list[MatrixEntry]:
    """q/k/v blocks of a fused projection along the output rows; the whole matrix, flagged, if underivable."""
    last = entry.module.rsplit(".", 1)[-1]
    if last in EQUAL_THIRDS and entry.shape[0] % 3 == 0:
        return _blocks(entry, [entry.shape[0] // 3] * 3)
    if last == "qkv_proj":
        sizes = _qkv_sizes(config)
        if sizes and sum(sizes) == entry.shape[0]:
            return _blocks(entry, sizes)
    if last in ("qkv_proj", "query_key_value", "Wqkv"):
        return [MatrixEntry(**{**entry.__dict__, "flag": "fused_unsplit"})]
    return [entry]


def _qkv_sizes(config: dict[str, Any]) -> list[int] | None:
    heads = config.get("num_attention_heads")
    hidden = config.get("hidden_size")
    if not heads or not hidden:
        return None
    head_dim = int(config.get("head_dim") or hidden // heads)
    kv_heads = int(config.get("num_key_value_heads") or heads)
    return [heads * head_dim, kv_heads * head_dim, kv_heads * head_dim]


def _blocks(entry: MatrixEntry, sizes: list[int]) -> list[MatrixEntry]:
    parts, start = [], 0
    for label, size in zip("qkv", sizes):
        parts.append(
            MatrixEntry(
                f"{entry.name}[{label}]",
                entry.key,
                (size, entry.shape[1]),
                entry.transpose,
                (start, start + size),
                entry.orientation_assumed,
            )
        )
        start += size
    return parts
