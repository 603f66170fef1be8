"""audit() end to end on constructed checkpoints: known answers, pairing, errors, cache, JSON (ANALYSIS.md §1–3)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from matrix_builders import decaying_matrix, write_checkpoint

from autopeft.analysis import AuditConfig, AuditConfigError, CheckpointError, ShapeMismatchError, audit
from autopeft.analysis.cache import SvdCache

QUERY = "encoder.layer.0.attention.self.query.weight"
VALUE = "encoder.layer.0.attention.self.value.weight"


def _base() -> dict[str, torch.Tensor]:
    return {
        QUERY: decaying_matrix(128, 128, seed=0),
        VALUE: decaying_matrix(128, 128, seed=1),
        "encoder.layer.0.attention.self.query.bias": torch.zeros(128),
    }


def test_identical_checkpoints_give_zero_for_every_update_metric() -> None:
    base = _base()
    frame = audit(base, {key: value.clone() for key, value in base.items()}).to_frame()
    delta = frame[frame["kind"] == "delta"]
    assert len(delta) == 2
    assert (delta["spectral_norm"] == 0).all() and (delta["frobenius_norm"] == 0).all()
    assert (delta["relative_update"] == 0).all()
    assert delta["effective_rank"].isna().all() and delta["entanglement_max"].isna().all()
    assert delta["reason"].str.contains("zero matrix").all()
    assert (frame.loc[frame["kind"] == "ft", "n_intruders"] == 0).all()


def test_planted_intruder_appears_in_its_matrix_only() -> None:
    base = _base()
    generator = torch.Generator().manual_seed(5)
    u = torch.nn.functional.normalize(torch.randn(128, generator=generator), dim=0)
    v = torch.nn.functional.normalize(torch.randn(128, generator=generator), dim=0)
    finetuned = {
        key: value + 1e-4 * torch.randn(value.shape, generator=generator) for key, value in base.items()
    }
    finetuned[QUERY] = finetuned[QUERY] + 40.0 * torch.outer(u, v)
    report = audit(base, finetuned)
    ft = report.to_frame().query("kind == 'ft'").set_index("matrix")
    assert ft.loc["encoder.layer.0.attention.self.query", "n_intruders"] == 1
    assert ft.loc["encoder.layer.0.attention.self.value", "n_intruders"] == 0
    assert report.intruder_count() == 1
    assert report.summary()["by_module"].loc["attention.self.query", "intruders"] == 1


def test_prefixed_and_unprefixed_names_pair_and_one_sided_matrices_are_reported() -> None:
    base = _base()
    finetuned = {f"bert.{key}": value.clone() for key, value in base.items() if key != VALUE}
    finetuned["bert.encoder.layer.1.output.dense.weight"] = torch.randn(16, 8)
    frame = audit(base, finetuned).to_frame()
    unmatched = frame[frame["kind"] == "unmatched"].set_index("matrix")
    assert (
        unmatched.loc["encoder.layer.0.attention.self.value", "reason"]
        == "present in the base checkpoint only"
    )
    assert (
        unmatched.loc["encoder.layer.1.output.dense", "reason"] == "present in the fine-tuned checkpoint only"
    )
    assert set(frame.loc[frame["kind"] == "delta", "matrix"]) == {"encoder.layer.0.attention.self.query"}


def test_shape_mismatch_is_an_error_naming_file_key_and_shapes(tmp_path: Path) -> None:
    base = write_checkpoint(tmp_path / "base", _base())
    finetuned = write_checkpoint(tmp_path / "ft", {**_base(), VALUE: torch.randn(128, 64)})
    with pytest.raises(ShapeMismatchError) as error:
        audit(base, finetuned)
    assert str(error.value) == (
        f"{finetuned / 'model.safetensors'}: {VALUE}: expected shape (128, 128) (out, in) to match "
        f"{base / 'model.safetensors'}: {VALUE}, got (128, 64)"
    )


def test_shape_mismatch_can_be_reported_as_an_unmatched_row(tmp_path: Path) -> None:
    finetuned = {**_base(), VALUE: torch.randn(128, 64)}
    frame = audit(_base(), finetuned, config=AuditConfig(report_mismatches=True)).to_frame()
    assert frame.query("kind == 'unmatched'")["reason"].str.startswith("shape mismatch").all()


def test_sharded_checkpoint_is_read_through_its_index(tmp_path: Path) -> None:
    base = _base()
    folder = tmp_path / "sharded"
    write_checkpoint(folder, {QUERY: base[QUERY]})
    (folder / "model.safetensors").rename(folder / "model-00001-of-00002.safetensors")
    write_checkpoint(tmp_path / "second", {VALUE: base[VALUE]})
    (tmp_path / "second" / "model.safetensors").rename(folder / "model-00002-of-00002.safetensors")
    index = {
        "weight_map": {QUERY: "model-00001-of-00002.safetensors", VALUE: "model-00002-of-00002.safetensors"}
    }
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    frame = audit(folder, base).to_frame()
    assert set(frame["kind"]) == {"base", "ft", "delta"} and len(frame) == 6


def test_corrupt_safetensors_file_is_refused_with_its_path(tmp_path: Path) -> None:
    folder = write_checkpoint(tmp_path / "bad", _base())
    (folder / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}")
    with pytest.raises(CheckpointError, match=r"model\.safetensors: not a valid safetensors file"):
        audit(folder, _base())


def test_pickle_checkpoint_is_refused_unless_allowed(tmp_path: Path) -> None:
    folder = tmp_path / "pickled"
    folder.mkdir()
    torch.save(_base(), folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="pickle checkpoint refused"):
        audit(folder, _base())
    frame = audit(folder, _base(), config=AuditConfig(allow_pickle=True)).to_frame()
    assert (frame.loc[frame["kind"] == "delta", "frobenius_norm"] == 0).all()


def test_missing_folder_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such file or folder"):
        audit(tmp_path / "absent", _base())


def test_base_svd_is_cached_once_and_reused(svd_cache_dir: Path) -> None:
    base = _base()
    first = audit(base, base)
    second = audit(base, base)
    assert first.meta["cache"]["misses"] == 2 and second.meta["cache"]["hits"] == 2
    assert second.meta["cache"]["misses"] == 0
    assert SvdCache(svd_cache_dir).disk_usage() > 0


def test_base_row_metrics_are_cached_beside_the_svd_and_a_stale_or_corrupt_file_is_recomputed(
    svd_cache_dir: Path,
) -> None:
    base = _base()
    first = audit(base, base).to_frame()
    stored = sorted(svd_cache_dir.rglob("*.metrics.json"))
    assert len(stored) == 2
    stored[0].write_text('{"version": "v0", "values": {"alpha": 99.0}, "reasons": []}')
    stored[1].write_text("{not json")
    again = audit(base, base).to_frame()
    rows = (first["kind"] == "base").to_numpy()
    assert np.allclose(first.loc[rows, "alpha"].to_numpy(float), again.loc[rows, "alpha"].to_numpy(float))
    assert all('"v1:' in path.read_text() for path in stored)


def test_conv1d_weights_are_transposed_to_out_in() -> None:
    W0 = decaying_matrix(24, 16)
    config_checkpoint = {"h.0.mlp.c_fc.weight": W0.T.contiguous()}
    report = audit(config_checkpoint, config_checkpoint)
    assert report.to_frame().iloc[0]["orientation_assumed"]
    from transformers import GPT2Config, GPT2Model

    model = GPT2Model(GPT2Config(n_embd=16, n_layer=1, n_head=2, vocab_size=32, n_positions=16))
    frame = audit(model, model).to_frame()
    fc = frame[(frame["matrix"] == "h.0.mlp.c_fc") & (frame["kind"] == "base")].iloc[0]
    assert (fc["rows"], fc["cols"]) == (64, 16) and not fc["orientation_assumed"]
    assert {"h.0.attn.c_attn[q]", "h.0.attn.c_attn[k]", "h.0.attn.c_attn[v]"} <= set(frame["matrix"])


def test_report_json_round_trips_with_nan_as_null(tmp_path: Path) -> None:
    base = _base()
    report = audit(base, {key: value * 1.01 for key, value in base.items()}, config=AuditConfig(sweep=True))
    path = tmp_path / "audit.json"
    report.to_json(path)
    loaded = json.loads(path.read_text())
    assert len(loaded["rows"]) == 6
    assert "intruders_eps_0.50" in loaded["rows"][1]
    details = loaded["details"]["encoder.layer.0.attention.self.query"]
    assert len(details["intruders"]["scores"]) == 10
    assert len(details["entanglement"]["entropies"]) == 13
    assert loaded["summary"]["model"][0]["matrices"] == 2
    assert not math.isnan(report.to_frame()["alpha"].dropna().iloc[0])


def test_progress_callback_sees_every_matrix() -> None:
    calls: list[tuple[int, int]] = []
    audit(_base(), _base(), on_progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 2), (2, 2)]


def test_unknown_spectrum_option_is_refused_with_the_choices() -> None:
    with pytest.raises(AuditConfigError, match=r"spectrum: expected one of \('full', 'top'\), got 'half'"):
        AuditConfig(spectrum="half")


def test_meta_records_the_compared_folders_as_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_checkpoint(tmp_path / "base", _base())
    write_checkpoint(tmp_path / "ft", _base())
    monkeypatch.chdir(tmp_path)
    meta = audit("base", "ft").meta
    assert (meta["base"], meta["finetuned"]) == (str(tmp_path / "base"), str(tmp_path / "ft"))
