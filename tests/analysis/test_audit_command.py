"""`autopeft audit`: bad inputs raise one-line AnalysisErrors (exit 2 in the CLI); RUN_DIR --trial N writes audit.json."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from matrix_builders import write_checkpoint
from peft import LoraConfig, get_peft_model
from threadpoolctl import threadpool_info, threadpool_limits
from transformers import BertForSequenceClassification

from autopeft.analysis import (
    AdapterMismatchError,
    AnalysisError,
    AuditConfigError,
    CheckpointError,
    ShapeMismatchError,
)
from autopeft.cli import audit as audit_command
from autopeft.cli import main
from autopeft.errors import CheckpointError as TrialCheckpointError
from autopeft.pruning.layout import PruningShape
from autopeft.pruning.pruning_plan import PruningPlan, apply_pruning


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    audit_command.add_parser(parser.add_subparsers())
    return parser.parse_args(["audit", *argv, "--quiet"])


def _trial_run_dir(tmp_path: Path, base_folder: Path) -> Path:
    """A run directory as a search writes it: trials/0/adapter from a sequence classifier with its head saved."""
    model = BertForSequenceClassification.from_pretrained(base_folder, num_labels=2)
    config = LoraConfig(r=2, lora_alpha=4, target_modules=["query", "value"], modules_to_save=["classifier"])
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_()
    trial = tmp_path / "run" / "trials" / "0"
    peft_model.save_pretrained(trial / "adapter")
    adapter_config = trial / "adapter" / "adapter_config.json"
    recorded = json.loads(adapter_config.read_text())
    adapter_config.write_text(json.dumps({**recorded, "base_model_name_or_path": str(base_folder)}))
    (trial / "plan.json").write_text("{}")
    return tmp_path / "run"


def _light_peft_run_dir(tmp_path: Path, base_folder: Path) -> Path:
    """A run directory whose trial 0 is a Light-PEFT trial: its adapter fits the base with head 1 of layer 0 and
    a third of layer 0's FFN neurons removed, and `pruning_plan.json` beside it says so."""
    shape = PruningShape("bert", num_layers=2, num_heads=2, num_kv_heads=2, head_dim=16, intermediate_size=64)
    plan = PruningPlan(shape, pruned_heads=((1,), ()), pruned_neurons=(tuple(range(0, 64, 3)), ()))
    model = apply_pruning(
        BertForSequenceClassification.from_pretrained(base_folder, num_labels=2), plan
    ).model
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=["query", "value", "dense"]))
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_()
    adapter = tmp_path / "run" / "trials" / "0" / "adapter"
    peft_model.save_pretrained(adapter)
    plan.save(adapter / "pruning_plan.json")
    recorded = json.loads((adapter / "adapter_config.json").read_text())
    (adapter / "adapter_config.json").write_text(
        json.dumps({**recorded, "base_model_name_or_path": str(base_folder)})
    )
    return tmp_path / "run"


def test_light_peft_trial_audit_records_its_base_folder_and_pruning_plan_relative_to_the_run(
    tmp_path: Path, tiny_bert_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = _light_peft_run_dir(tmp_path, tiny_bert_folder)
    monkeypatch.chdir(run_dir / "trials")
    assert audit_command.run(_parse("..", "--trial", "0")) == 0
    written = json.loads((run_dir / "trials" / "0" / "audit.json").read_text())
    assert {key: written["meta"][key] for key in ("base", "base_pruned_by", "adapter")} == {
        "base": str(tiny_bert_folder),
        "base_pruned_by": "trials/0/adapter/pruning_plan.json",
        "adapter": "trials/0/adapter",
    }
    query = next(
        r for r in written["rows"] if r["kind"] == "base" and r["matrix"].endswith("0.attention.self.query")
    )
    assert (query["rows"], query["cols"]) == (16, 32)  # compared with the pruned base, not the full one


@pytest.mark.parametrize("flag", ["--adapter", "--finetuned"])
def test_adapter_or_finetuned_with_a_run_dir_is_refused_naming_the_flag(
    tmp_path: Path, tiny_bert_folder: Path, flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = _trial_run_dir(tmp_path, tiny_bert_folder)
    other = str(run_dir / "trials" / "0" / "adapter")
    with pytest.raises(AuditConfigError, match=f"audit: {flag} cannot be combined with RUN_DIR --trial N"):
        audit_command.run(_parse(str(run_dir), "--trial", "0", "--base", str(tiny_bert_folder), flag, other))
    capsys.readouterr()  # what building the run printed
    assert main(["audit", str(run_dir), "--trial", "0", flag, other, "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and f"{flag} cannot be combined with RUN_DIR --trial N" in error
    assert not (run_dir / "trials" / "0" / "audit.json").exists()


def test_trial_audit_writes_audit_json_and_excludes_the_head(tmp_path: Path, tiny_bert_folder: Path) -> None:
    run_dir = _trial_run_dir(tmp_path, tiny_bert_folder)
    assert audit_command.run(_parse(str(run_dir), "--trial", "0")) == 0
    written = json.loads((run_dir / "trials" / "0" / "audit.json").read_text())
    deltas = [row for row in written["rows"] if row["kind"] == "delta"]
    assert len(deltas) == 4 and {row["source"] for row in deltas} == {"lora"}
    excluded = {item["tensor"]: item["reason"] for item in written["excluded"]}
    assert any("classifier" in key and "not a LoRA factor" in reason for key, reason in excluded.items())


def test_json_and_html_outputs_are_written(tmp_path: Path, tiny_bert_folder: Path) -> None:
    run_dir = _trial_run_dir(tmp_path, tiny_bert_folder)
    adapter = run_dir / "trials" / "0" / "adapter"
    args = _parse(
        "--base",
        str(tiny_bert_folder),
        "--adapter",
        str(adapter),
        "--json",
        str(tmp_path / "a.json"),
        "--html",
        str(tmp_path / "a.html"),
        "--k",
        "5",
        "--epsilon",
        "0.3",
    )
    assert audit_command.run(args) == 0
    assert json.loads((tmp_path / "a.json").read_text())["meta"]["config"]["k"] == 5
    page = (tmp_path / "a.html").read_text()
    assert "<table" in page and "<script" not in page and "by_module" in page


def test_threads_option_limits_torch_and_openblas(tmp_path: Path, tiny_bert_folder: Path) -> None:
    adapter = _trial_run_dir(tmp_path, tiny_bert_folder) / "trials" / "0" / "adapter"
    before = torch.get_num_threads()
    threadpool_limits(limits=2, user_api="blas")  # what OpenBLAS starts with on a 2-core machine
    try:
        args = _parse(
            "--base", str(tiny_bert_folder), "--adapter", str(adapter), "--threads", "1", "--no-cache"
        )
        assert audit_command.run(args) == 0
        pools = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
        assert torch.get_num_threads() == 1 and pools
        assert all(pool["num_threads"] == 1 for pool in pools)
    finally:
        torch.set_num_threads(before)
        threadpool_limits(limits=before, user_api="blas")


def test_missing_file_is_a_checkpoint_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="absent: no such file or folder"):
        audit_command.run(_parse("--base", str(tmp_path / "absent"), "--finetuned", str(tmp_path)))


def test_corrupt_safetensors_is_a_checkpoint_error(tmp_path: Path) -> None:
    good = write_checkpoint(tmp_path / "good", {"encoder.layer.0.output.dense.weight": torch.randn(8, 8)})
    bad = write_checkpoint(tmp_path / "bad", {"encoder.layer.0.output.dense.weight": torch.randn(8, 8)})
    (bad / "model.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError, match=f"{bad / 'model.safetensors'}: not a valid safetensors file"):
        audit_command.run(_parse("--base", str(good), "--finetuned", str(bad)))


def test_mismatched_shapes_are_a_shape_error(tmp_path: Path) -> None:
    key = "encoder.layer.0.output.dense.weight"
    base = write_checkpoint(tmp_path / "base", {key: torch.randn(8, 8)})
    finetuned = write_checkpoint(tmp_path / "ft", {key: torch.randn(8, 4)})
    with pytest.raises(ShapeMismatchError, match=r"expected shape \(8, 8\) \(out, in\)"):
        audit_command.run(_parse("--base", str(base), "--finetuned", str(finetuned)))


def test_base_that_does_not_fit_the_adapter_is_an_adapter_error(
    tmp_path: Path, tiny_bert_folder: Path
) -> None:
    run_dir = _trial_run_dir(tmp_path, tiny_bert_folder)
    other = write_checkpoint(tmp_path / "other", {"encoder.layer.0.output.dense.weight": torch.randn(8, 8)})
    with pytest.raises(AdapterMismatchError, match="targets this module but the base has no such matrix"):
        audit_command.run(_parse(str(run_dir), "--trial", "0", "--base", str(other)))


def test_trial_without_an_adapter_is_a_checkpoint_error(tmp_path: Path) -> None:
    with pytest.raises(TrialCheckpointError, match=r"trials/3/adapter: adapter_config.json: no such file"):
        audit_command.run(_parse(str(tmp_path), "--trial", "3"))


def test_missing_side_is_a_usage_error() -> None:
    with pytest.raises(AnalysisError, match="expected --base B and one of --finetuned F or --adapter A"):
        audit_command.run(_parse("--base", "x"))


def test_cli_exits_2_with_one_line_for_a_missing_file(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "autopeft",
            "audit",
            "--base",
            str(tmp_path / "absent"),
            "--finetuned",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "no such file or folder" in result.stderr
