"""Decoder LLMs of the SmolLM2 shape: a GQA LlamaForCausalLM with tied embeddings, dense and LoRA (ANALYSIS.md §1).

The tiny model keeps what matters about SmolLM2-135M (LLaMA blocks, 3× fewer key/value heads than query heads, so
k_proj and v_proj are (out, in) = (16, 48), a gated MLP, and `lm_head` tied to `embed_tokens`) at 2 layers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from matrix_builders import write_checkpoint
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file
from transformers import LlamaConfig, LlamaForCausalLM, LlamaModel

from autopeft.analysis import AuditConfig, ShapeMismatchError, audit

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
SHAPES = {
    "self_attn.q_proj": (48, 48),
    "self_attn.k_proj": (16, 48),
    "self_attn.v_proj": (16, 48),
    "self_attn.o_proj": (48, 48),
    "mlp.gate_proj": (96, 48),
    "mlp.up_proj": (96, 48),
    "mlp.down_proj": (48, 96),
}
EMBEDDING = "model.embed_tokens.weight"
TIED_HEAD = {"lm_head.weight": EMBEDDING}
PLANTED = "layers.1.self_attn.v_proj"


def _decoder_config(**overrides: object) -> LlamaConfig:
    settings: dict[str, object] = {
        "hidden_size": 48,
        "intermediate_size": 96,
        "num_hidden_layers": 2,
        "num_attention_heads": 6,
        "num_key_value_heads": 2,
        "vocab_size": 128,
        "max_position_embeddings": 64,
        "tie_word_embeddings": True,
    }
    return LlamaConfig(**{**settings, **overrides})


def _decoder_folder(folder: Path, **overrides: object) -> Path:
    """A random LlamaForCausalLM saved by transformers: with tied embeddings, no `lm_head.weight` is stored."""
    torch.manual_seed(0)
    LlamaForCausalLM(_decoder_config(**overrides)).save_pretrained(folder)
    return folder


def _finetuned_folder(base: Path, folder: Path, tensors: dict[str, torch.Tensor] | None = None) -> Path:
    """A dense fine-tune of `base`: every matrix moved by 1e-5 noise, then `tensors` replacing stored ones."""
    generator = torch.Generator().manual_seed(3)
    stored = load_file(base / "model.safetensors")
    moved = {
        key: value + 1e-5 * torch.randn(value.shape, generator=generator) for key, value in stored.items()
    }
    config = json.loads((base / "config.json").read_text())
    return write_checkpoint(folder, {**moved, **(tensors or {})}, config)


def _planted_intruder(W0: torch.Tensor) -> torch.Tensor:
    """W0 plus a rank-1 update of 5·σ_1 along the output direction furthest from every base direction.

    v_proj has only 16 output rows, so its 16 base left vectors span the whole output space and any direction has
    cosine ≥ 1/4 with one of them; the equal mix of all of them is the direction that reaches only that 1/4.
    """
    U, S, _ = torch.linalg.svd(W0.double(), full_matrices=False)
    u = U @ torch.full((U.shape[1],), U.shape[1] ** -0.5, dtype=torch.float64)
    v = torch.nn.functional.normalize(
        torch.randn(W0.shape[1], generator=torch.Generator().manual_seed(9)), dim=0
    )
    return (W0.double() + 5 * S[0] * torch.outer(u, v.double())).float()


def _lora_adapter(base: Path, folder: Path) -> Path:
    """A CAUSAL_LM LoRA adapter written by peft on every projection, with random (non-zero) B factors."""
    config = LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8, target_modules=list(PROJECTIONS))
    peft_model = get_peft_model(LlamaForCausalLM.from_pretrained(base), config)
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(0.1 * torch.randn(parameter.shape, generator=generator))
    peft_model.save_pretrained(folder)
    return folder


def test_every_projection_of_a_gqa_decoder_gets_base_ft_and_delta_rows_in_out_in_shape(
    tmp_path: Path,
) -> None:
    base = _decoder_folder(tmp_path / "base")
    frame = audit(base, _finetuned_folder(base, tmp_path / "ft")).to_frame()
    expected = {f"layers.{layer}.{module}": shape for layer in (0, 1) for module, shape in SHAPES.items()}
    assert set(frame["matrix"]) == set(expected)
    for name, rows in frame.groupby("matrix"):
        assert sorted(rows["kind"]) == ["base", "delta", "ft"], name
        assert {(int(r), int(c)) for r, c in zip(rows["rows"], rows["cols"])} == {expected[str(name)]}, name


def test_tied_head_missing_from_the_files_is_excluded_and_reported_once_with_its_embedding(
    tmp_path: Path,
) -> None:
    base = _decoder_folder(tmp_path / "base")
    report = audit(base, _finetuned_folder(base, tmp_path / "ft"))
    assert not report.to_frame()["matrix"].str.contains("lm_head|embed|norm").any()
    assert report.meta["tied_weights"] == TIED_HEAD
    excluded = json.loads(report.to_json())["excluded"]
    assert [item["tensor"] for item in excluded] == ["lm_head.weight", EMBEDDING]
    assert excluded[0]["tied_to"] == EMBEDDING
    assert excluded[0]["reason"].startswith(f"tied to {EMBEDDING} (not stored: tie_word_embeddings)")


def test_tied_head_held_under_both_names_stays_out_even_when_embeddings_are_included() -> None:
    model = LlamaForCausalLM(_decoder_config())
    report = audit(model, model, config=AuditConfig(include_embeddings=True))
    frame = report.to_frame()
    embedding = frame[frame["matrix"] == "embed_tokens"]
    assert list(embedding["kind"]) == ["base", "ft", "delta"]
    assert (embedding["rows"] == 128).all() and (embedding["cols"] == 48).all()
    assert not frame["matrix"].str.contains("lm_head").any()
    assert report.meta["tied_weights"] == TIED_HEAD
    assert "stored again under this name" in report.excluded[0]["reason"]


def test_an_untied_head_or_a_model_without_a_head_reports_no_tied_weight(tmp_path: Path) -> None:
    untied = _decoder_folder(tmp_path / "untied", tie_word_embeddings=False)
    report = audit(untied, untied)
    assert report.meta["tied_weights"] == {}
    assert {item["tensor"]: item["reason"] for item in report.excluded}["lm_head.weight"].startswith(
        "outside the transformer blocks"
    )
    LlamaModel(_decoder_config()).save_pretrained(tmp_path / "headless")
    assert audit(tmp_path / "headless", tmp_path / "headless").meta["tied_weights"] == {}


def test_planted_rank_one_intruder_in_v_proj_is_found_in_that_matrix_only(tmp_path: Path) -> None:
    base = _decoder_folder(tmp_path / "base")
    key = f"model.{PLANTED}.weight"
    planted = _planted_intruder(load_file(base / "model.safetensors")[key])
    report = audit(base, _finetuned_folder(base, tmp_path / "ft", {key: planted}))
    ft = report.to_frame().query("kind == 'ft'").set_index("matrix")
    assert ft.loc[PLANTED, "n_intruders"] == 1
    assert ft.drop(index=PLANTED)["n_intruders"].eq(0).all()
    assert report.details[PLANTED]["intruders"]["scores"][0] < 0.3


def test_causal_lm_lora_adapter_takes_the_lora_path_and_matches_a_dense_audit_of_the_merged_model(
    tmp_path: Path,
) -> None:
    base = _decoder_folder(tmp_path / "base")
    adapter = _lora_adapter(base, tmp_path / "adapter")
    merged = PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(base), adapter).merge_and_unload()
    merged.save_pretrained(tmp_path / "merged")
    fast = audit(base, adapter=adapter)
    dense = audit(base, tmp_path / "merged")
    fast_frame, dense_frame = (report.to_frame().set_index(["matrix", "kind"]) for report in (fast, dense))
    assert len(fast_frame) == len(dense_frame) == 42
    assert set(fast_frame.xs("ft", level="kind")["source"]) == {"lora"}
    assert set(dense_frame.xs("ft", level="kind")["source"]) == {"dense"}
    columns = ["spectral_norm", "frobenius_norm", "stable_rank", "effective_rank"]
    paired = dense_frame.loc[fast_frame.index]
    assert np.allclose(fast_frame[columns].to_numpy(float), paired[columns].to_numpy(float), rtol=1e-4)
    ft_fast, ft_dense = fast_frame.xs("ft", level="kind"), paired.xs("ft", level="kind")
    assert ft_fast["n_intruders"].sum() > 0
    assert ft_fast["n_intruders"].equals(ft_dense["n_intruders"])
    for name in ft_fast.index:
        fast_scores, dense_scores = (report.details[name]["intruders"] for report in (fast, dense))
        separated = ~np.array(fast_scores["degenerate"])  # a near-tied pair's vectors may mix (flagged)
        assert fast_scores["degenerate"] == dense_scores["degenerate"], name
        assert np.allclose(
            np.array(fast_scores["scores"])[separated], np.array(dense_scores["scores"])[separated], atol=1e-4
        ), name
    assert fast.meta["tied_weights"] == dense.meta["tied_weights"] == TIED_HEAD


def test_adapter_on_the_tied_head_is_reported_and_the_rest_audited(tmp_path: Path) -> None:
    base = _decoder_folder(tmp_path / "base")
    config = LoraConfig(task_type="CAUSAL_LM", r=4, target_modules=["q_proj", "lm_head"])
    get_peft_model(LlamaForCausalLM.from_pretrained(base), config).save_pretrained(tmp_path / "adapter")
    report = audit(base, adapter=tmp_path / "adapter")
    reasons = {item["tensor"]: item["reason"] for item in report.excluded}
    assert (
        reasons["lm_head"]
        == f"adapted module is tied to {EMBEDDING}; the audit has no separate matrix for it"
    )
    frame = report.to_frame()
    assert set(frame.loc[frame["kind"] == "ft", "matrix"]) == {
        "layers.0.self_attn.q_proj",
        "layers.1.self_attn.q_proj",
    }
    assert report.meta["tied_weights"] == TIED_HEAD


def test_checkpoint_whose_k_proj_has_another_shape_is_one_error_line_naming_the_tensor(
    tmp_path: Path,
) -> None:
    base = _decoder_folder(tmp_path / "base")
    key = "model.layers.1.self_attn.k_proj.weight"
    finetuned = _finetuned_folder(base, tmp_path / "ft", {key: torch.randn(24, 48)})
    with pytest.raises(ShapeMismatchError) as error:
        audit(base, finetuned)
    assert str(error.value) == (
        f"{finetuned / 'model.safetensors'}: {key}: expected shape (16, 48) (out, in) to match "
        f"{base / 'model.safetensors'}: {key}, got (24, 48)"
    )
