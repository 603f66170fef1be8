"""Adapters written by peft itself: the audit's merged matrices equal peft's merge_and_unload (ANALYSIS.md §1, §6.5)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from matrix_builders import write_checkpoint
from peft import AdaLoraConfig, LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import BertModel, LlamaConfig, LlamaModel

from autopeft.analysis import AdapterMismatchError, AuditConfig, audit, full_svd, read_adapter
from autopeft.analysis.adapter import pattern_value, update_factors


def _randomise(model: torch.nn.Module, names: tuple[str, ...]) -> None:
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if any(part in name for part in names):
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)


def _tiny_llama(folder: Path) -> Path:
    config = LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=64,
        max_position_embeddings=32,
    )
    torch.manual_seed(0)
    LlamaModel(config).save_pretrained(folder)
    return folder


def _lora_adapter(
    base_folder: Path, model_class: type, targets: list[str], adapter_folder: Path
) -> torch.nn.Module:
    """LoRA with rsLoRA, a rank_pattern whose first key wins over a later one, and an alpha_pattern."""
    layer = "layer.1.attention.self" if model_class is BertModel else "layers.1.self_attn"
    config = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=targets,
        use_rslora=True,
        rank_pattern={f"{layer}.{targets[1]}": 2, targets[0]: 3},
        alpha_pattern={targets[1]: 5},
    )
    peft_model = get_peft_model(model_class.from_pretrained(base_folder), config)
    _randomise(peft_model, ("lora_B",))
    peft_model.save_pretrained(adapter_folder)
    return PeftModel.from_pretrained(
        model_class.from_pretrained(base_folder), adapter_folder
    ).merge_and_unload()


@pytest.mark.parametrize(
    ("model_class", "targets"),
    [(BertModel, ["query", "value"]), (LlamaModel, ["q_proj", "v_proj", "down_proj"])],
)
def test_lora_adapter_merges_exactly_like_peft(
    tmp_path: Path, tiny_bert_folder: Path, model_class: type, targets: list[str]
) -> None:
    base_folder = tiny_bert_folder if model_class is BertModel else _tiny_llama(tmp_path / "llama")
    merged = _lora_adapter(base_folder, model_class, targets, tmp_path / "adapter").state_dict()
    base = model_class.from_pretrained(base_folder).state_dict()
    adapter = read_adapter(tmp_path / "adapter")
    assert {update.rank for update in adapter.updates} >= {2, 3}
    for update in adapter.updates:
        key = update.name + ".weight"
        B, A = update_factors(adapter, update)
        assert torch.allclose(base[key] + B @ A, merged[key], atol=1e-5), key
    frame = audit(base_folder, adapter=tmp_path / "adapter").to_frame()
    ft = frame[frame["kind"] == "ft"].set_index("matrix")
    assert len(ft) == len(adapter.updates)
    for name, row in ft.iterrows():
        reference = full_svd(merged[f"{name}.weight"]).S
        assert math.isclose(row["spectral_norm"], float(reference[0]), rel_tol=1e-5)
        assert math.isclose(row["frobenius_norm"], float(torch.linalg.vector_norm(reference)), rel_tol=1e-5)


def test_top_spectrum_keeps_norms_and_intruders_and_leaves_alpha_out(
    tmp_path: Path, tiny_bert_folder: Path
) -> None:
    _lora_adapter(tiny_bert_folder, BertModel, ["query", "value"], tmp_path / "adapter")
    full = audit(tiny_bert_folder, adapter=tmp_path / "adapter").to_frame()
    top = audit(tiny_bert_folder, adapter=tmp_path / "adapter", config=AuditConfig(spectrum="top")).to_frame()
    assert full[["matrix", "kind"]].equals(top[["matrix", "kind"]])
    ft, ft_top = full["kind"] == "ft", top["kind"] == "ft"
    exact = ["spectral_norm", "frobenius_norm", "stable_rank", "n_intruders", "min_intruder_score"]
    assert np.allclose(full.loc[ft, exact].to_numpy(float), top.loc[ft_top, exact].to_numpy(float), rtol=1e-5)
    assert top.loc[ft_top, ["alpha", "effective_rank"]].isna().all().all()
    assert top.loc[ft_top, "reason"].str.contains("spectrum='top'").all()
    others = ~ft
    assert np.allclose(
        full.loc[others, "effective_rank"].to_numpy(float),
        top.loc[others, "effective_rank"].to_numpy(float),
        equal_nan=True,
    )


def test_a_known_base_is_not_read_again_and_a_rewritten_one_is(
    tmp_path: Path, tiny_bert_folder: Path
) -> None:
    _lora_adapter(tiny_bert_folder, BertModel, ["query", "value"], tmp_path / "adapter")
    first = audit(tiny_bert_folder, adapter=tmp_path / "adapter")
    second = audit(tiny_bert_folder, adapter=tmp_path / "adapter")
    matrices = int((first.to_frame()["kind"] == "base").sum())
    assert first.meta["cache"]["base_matrices_read"] == matrices > 0
    assert second.meta["cache"]["base_matrices_read"] == 0
    assert first.to_frame().equals(second.to_frame())
    weights_file = tiny_bert_folder / "model.safetensors"
    before = weights_file.stat()
    save_file(
        {key: value * 2 for key, value in load_file(weights_file).items()}, weights_file, {"format": "pt"}
    )
    os.utime(weights_file, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
    third = audit(tiny_bert_folder, adapter=tmp_path / "adapter")
    assert third.meta["cache"]["base_matrices_read"] == matrices
    norms = [
        frame.loc[frame["kind"] == "base", "spectral_norm"].to_numpy()
        for frame in (first.to_frame(), third.to_frame())
    ]
    assert np.allclose(norms[1], 2 * norms[0], rtol=1e-5)


def test_adalora_adapter_round_trips_against_merge_and_unload(tmp_path: Path, tiny_bert_folder: Path) -> None:
    config = AdaLoraConfig(
        init_r=6, target_r=2, lora_alpha=8, target_modules=["query", "value"], total_step=10
    )
    peft_model = get_peft_model(BertModel.from_pretrained(tiny_bert_folder), config)
    _randomise(peft_model, ("lora_B", "lora_E"))
    peft_model.save_pretrained(tmp_path / "adalora")
    reloaded = PeftModel.from_pretrained(BertModel.from_pretrained(tiny_bert_folder), tmp_path / "adalora")
    merged = reloaded.merge_and_unload().state_dict()
    base = BertModel.from_pretrained(tiny_bert_folder).state_dict()
    adapter = read_adapter(tmp_path / "adalora")
    assert adapter.method == "adalora" and len(adapter.updates) == 4
    for update in adapter.updates:
        B, A = update_factors(adapter, update)
        key = update.name + ".weight"
        assert torch.allclose(base[key] + B @ A, merged[key], atol=1e-5), key
    frame = audit(tiny_bert_folder, adapter=tmp_path / "adalora").to_frame()
    assert set(frame.loc[frame["kind"] == "delta", "source"]) == {"adalora"}


def test_pattern_matching_follows_peft_first_match_rule() -> None:
    pattern = {"query": 3, "layer.1.attention.self.query": 2}
    assert pattern_value(pattern, "bert.encoder.layer.1.attention.self.query", 8) == 3
    assert (
        pattern_value({"layer.1.attention.self.query": 2}, "bert.encoder.layer.1.attention.self.query", 8)
        == 2
    )
    assert pattern_value(pattern, "bert.encoder.layer.1.attention.self.key", 8) == 8
    assert pattern_value({"uery": 1}, "encoder.layer.0.attention.self.query", 8) == 8


def test_base_that_does_not_fit_the_adapter_is_refused_with_file_key_and_shapes(
    tmp_path: Path, tiny_bert_folder: Path
) -> None:
    _lora_adapter(tiny_bert_folder, BertModel, ["query", "value"], tmp_path / "adapter")
    base = BertModel.from_pretrained(tiny_bert_folder).state_dict()
    key = "encoder.layer.0.attention.self.query.weight"
    wrong = write_checkpoint(tmp_path / "wrong", {**base, key: torch.randn(32, 64)})
    with pytest.raises(AdapterMismatchError) as error:
        audit(wrong, adapter=tmp_path / "adapter")
    assert str(error.value) == (
        f"{wrong / 'model.safetensors'}: {key}: expected shape (32, 32) to match the adapter's (out, in), got (32, 64)"
    )
    del base[key]
    missing = write_checkpoint(tmp_path / "missing", base)
    with pytest.raises(AdapterMismatchError, match="targets this module but the base has no such matrix"):
        audit(missing, adapter=tmp_path / "adapter")
