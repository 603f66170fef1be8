"""A GLUE folder read as a decoder task through a verbalizer: every example becomes a prompt with the label's
word as the reply, scored by the likelihood of each word; a trial trains a causal LM on it, and a verbalizer
that does not fit the task is one message with exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from autopeft.budget import BudgetConfig
from autopeft.cli import main
from autopeft.errors import ConfigError
from autopeft.plan import ModuleSetting, PeftPlan
from autopeft.search_space import SearchSpace
from autopeft.tasks.instruction_task import InstructionTask
from autopeft.tasks.task import TaskConfig, load_task
from autopeft.trial import TrialSpec, run_trial
from autopeft.trial.reporting import RecordingReporter
from tests.tasks.tiny_chat import save_tiny_causal_lm


def _sst2_folder(folder: Path) -> Path:
    """An SST-2-shaped folder (sentence, label) with a few examples a side."""
    folder.mkdir()
    rows = [(f"a {'great' if i % 2 else 'dull'} film number {i}", i % 2) for i in range(24)]
    body = "".join(f"{text}\t{label}\n" for text, label in rows)
    (folder / "train.tsv").write_text("sentence\tlabel\n" + body)
    (folder / "dev.tsv").write_text("sentence\tlabel\n" + body[: body.index("\n", 200) + 1])
    return folder


def test_each_example_becomes_a_prompt_and_its_label_word_as_reply(tmp_path: Path) -> None:
    folder = _sst2_folder(tmp_path / "SST-2")
    config = TaskConfig(name="sst2", path=str(folder), verbalizer=("negative", "positive"))
    task = load_task(config, tmp_path)
    assert isinstance(task, InstructionTask) and task.metric == "choice_accuracy"
    first = task.train[0]
    assert first.messages == (
        ("user", "Text: a dull film number 0\nAnswer with one word: negative or positive."),
        ("assistant", "negative"),
    )
    assert (first.options, first.answer) == (("negative", "positive"), 0)
    assert task.train[1].reference == "positive" and len(task.train) == 24
    assert config.is_instruction and config.metric_direction == "maximize"


def test_a_pair_task_names_both_texts(tmp_path: Path) -> None:
    folder = tmp_path / "RTE"
    folder.mkdir()
    lines = (
        "index\tsentence1\tsentence2\tlabel\n0\tit rains\tit is wet\tentailment\n1\ta\tb\tnot_entailment\n"
    )
    (folder / "train.tsv").write_text(lines)
    (folder / "dev.tsv").write_text(lines)
    task = load_task(TaskConfig(name="rte", path=str(folder), verbalizer=("yes", "no")), tmp_path)
    assert (
        task.dev[0].messages[0][1] == "Text 1: it rains\nText 2: it is wet\nAnswer with one word: yes or no."
    )


def test_a_verbalizer_with_the_wrong_word_count_names_the_key(tmp_path: Path) -> None:
    folder = _sst2_folder(tmp_path / "SST-2")
    with pytest.raises(ConfigError, match=r"task.verbalizer: expected 2 words, one per label \['0', '1'\]"):
        load_task(TaskConfig(name="sst2", path=str(folder), verbalizer=("bad", "good", "ok")), tmp_path)
    with pytest.raises(ValueError, match="task 'demo_sft' is an instruction task already"):
        TaskConfig(name="demo_sft", verbalizer=("a", "b"))
    text = "model: minilm\ntask: {name: sst2, path: p, verbalizer: [good, good]}\ndimensions: {modules: [query]}\n"
    with pytest.raises(ValueError, match=r"expected distinct non-empty words"):
        SearchSpace.from_yaml(text, "space.yaml")


def test_a_trial_tunes_a_causal_lm_on_the_verbalized_task(tmp_path: Path) -> None:
    folder = _sst2_folder(tmp_path / "SST-2")
    model = save_tiny_causal_lm(tmp_path / "tiny_lm")
    config = TaskConfig(
        name="sst2", path=str(folder), verbalizer=("plus", "minus")
    )  # words of the tiny vocab
    budget = BudgetConfig(
        train_examples=24,
        dev_examples=8,
        steps=4,
        max_length=32,
        batch_size=4,
        learning_rate=1e-2,
        evaluations=1,
    )
    adapters = tuple(ModuleSetting(layer=i, module="self_attn.q_proj", rank=2, alpha=4) for i in range(2))
    result = run_trial(
        PeftPlan(adapters=adapters), TrialSpec(model, config, budget), RecordingReporter(), tmp_path
    )
    assert result.state == "complete", result.reason
    assert len(result.dev_predictions) == 8 and set(result.dev_predictions) <= {0, 1}
    correct = [chosen == index % 2 for index, chosen in enumerate(result.dev_predictions)]  # labels alternate
    assert result.metrics["task_metric"] == sum(correct) / 8


def test_the_cli_refuses_a_verbalizer_that_does_not_fit_before_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _sst2_folder(tmp_path / "SST-2")
    space = tmp_path / "space.yaml"
    space.write_text(
        f"model: {save_tiny_causal_lm(tmp_path / 'tiny_lm')}\n"
        "task: {name: sst2, path: SST-2, verbalizer: [plus, minus, is]}\n"
        "objectives: [{name: task_metric}, {name: trainable_parameters}]\n"
        "dimensions: {modules: [self_attn.q_proj], rank: {choices: [2]}}\nsampler: {name: random}\n"
    )
    run = tmp_path / "run"
    assert main(["search", str(space), "--trials", "1", "--out", str(run), "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.endswith("task.verbalizer: expected 2 words, one per label ['0', '1'] of task 'sst2', got 3")
    assert not run.exists()
