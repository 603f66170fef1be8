"""Every registered method passes the same checks (Optuna's conformance-suite pattern): a new method is tested
before it has tests of its own."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from autopeft.budget import BudgetConfig
from autopeft.export import load_exported
from autopeft.methods import METHODS, MethodController
from autopeft.models import load_tokenizer
from autopeft.tasks.task import TaskConfig, load_task
from autopeft.tasks.tokenized_split import TokenizedSplit
from autopeft.trial import TrialSpec, evaluate, run_trial
from autopeft.trial.reporting import RecordingReporter
from tests.methods.hand_loop import plan_for

BUDGET = BudgetConfig(
    train_examples=64, dev_examples=32, steps=10, max_length=24, batch_size=8, evaluations=1
)


@pytest.mark.parametrize("key", sorted(METHODS))
def test_controller_declares_its_config_and_hooks(key: str) -> None:
    cls = METHODS[key]
    assert issubclass(cls, MethodController)
    assert cls.__name__ == "".join(part.capitalize() for part in key.split("_")) + "Controller"
    default = cls.config_class()
    assert default.is_enabled()
    assert set(cls.incompatible_with).isdisjoint({key})
    for other in cls.incompatible_with & set(METHODS):
        assert key in METHODS[other].incompatible_with, f"{key} and {other} disagree about their combination"
    with pytest.raises(ValueError):
        cls.config_class.model_validate({"no_such_option": 1})


@pytest.mark.parametrize("key", sorted(METHODS))
def test_method_trains_reports_and_exports_a_loadable_adapter(
    key: str, tiny_bert_dir: Path, tmp_path: Path
) -> None:
    plan = plan_for(2, {key: {}}, ("attention.self.query", "output.dense"))
    result = run_trial(
        plan, TrialSpec(str(tiny_bert_dir), TaskConfig(name="demo"), BUDGET), RecordingReporter(), tmp_path
    )
    assert result.state == "complete", result.reason
    json.dumps(result.method_reports)
    assert key in result.method_reports
    signals = METHODS[key].signals(result.method_reports[key])  # the sampler's warm start reads these
    assert all(re.fullmatch(r"L\d+(\.\w+)?", name) and isinstance(v, float) for name, v in signals.items())
    tokenizer = load_tokenizer(tiny_bert_dir)
    model = load_exported(tiny_bert_dir, tmp_path / "adapter")
    dev = TokenizedSplit.build(load_task(TaskConfig(name="demo"), Path(".")).dev[:32], tokenizer, 24)
    assert evaluate(model, dev, 16, torch.device("cpu")) == result.dev_predictions
