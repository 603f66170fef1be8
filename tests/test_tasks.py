"""Tasks: the generated demo task, GLUE TSV readers, CSV/JSONL files, and the metrics."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from autopeft.errors import ConfigError
from autopeft.tasks.metrics import accuracy, f1, matthews_correlation
from autopeft.tasks.task import TaskConfig, load_task


def test_demo_task_is_deterministic_and_balanced() -> None:
    first = load_task(TaskConfig(name="demo"), Path("."))
    second = load_task(TaskConfig(name="demo"), Path("."))
    assert first.train == second.train and first.dev == second.dev
    counts = Counter(label for _, label in first.train)
    assert abs(counts[0] - counts[1]) < 0.1 * len(first.train)


def test_demo_task_defeats_a_bag_of_words() -> None:
    """The best per-word majority vote (a bag-of-words model) stays far from solving the dev split."""
    task = load_task(TaskConfig(name="demo"), Path("."))
    votes: dict[str, Counter[int]] = {}
    for (text,), label in task.train:
        for word in set(text.split()):
            votes.setdefault(word, Counter())[label] += 1

    def predict(text: str) -> int:
        score = sum(votes[w][1] - votes[w][0] for w in set(text.split()) if w in votes)
        return int(score > 0)

    bag_accuracy = accuracy([y for _, y in task.dev], [predict(t) for (t,), _ in task.dev])
    assert bag_accuracy < 0.75


def test_metrics_match_known_answers() -> None:
    labels, predictions = [1, 1, 0, 0, 1], [1, 0, 0, 1, 1]
    assert accuracy(labels, predictions) == pytest.approx(0.6)
    assert f1(labels, predictions) == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert matthews_correlation(labels, predictions) == pytest.approx(
        (2 * 1 - 1 * 1) / (3 * 3 * 2 * 2) ** 0.5
    )
    assert matthews_correlation([1, 0], [1, 1]) == 0.0


def _write(folder: Path, name: str, text: str, encoding: str = "utf-8") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding=encoding)


def test_glue_readers_follow_each_tasks_columns(tmp_path: Path) -> None:
    _write(
        tmp_path / "MRPC",
        "train.tsv",
        'Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\tHe said "hi"\tHi\n0\t3\t4\tA\tB\n',
        encoding="utf-8-sig",
    )
    _write(
        tmp_path / "MRPC",
        "dev.tsv",
        "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t5\t6\tC\tD\n",
        encoding="utf-8-sig",
    )
    mrpc = load_task(TaskConfig(name="mrpc", path="MRPC"), tmp_path)
    assert mrpc.train[0] == (('He said "hi"', "Hi"), 1) and mrpc.metric == "f1"
    _write(tmp_path / "CoLA", "train.tsv", "gj04\t1\t\tThe cat sat.\ngj04\t0\t*\tCat the sat.\n")
    _write(tmp_path / "CoLA", "dev.tsv", "gj04\t1\t\tIt rains.")
    cola = load_task(TaskConfig(name="cola", path="CoLA"), tmp_path)
    assert cola.train[1] == (("Cat the sat.",), 0) and cola.metric == "matthews" and len(cola.dev) == 1
    _write(
        tmp_path / "RTE",
        "train.tsv",
        "index\tsentence1\tsentence2\tlabel\n0\tA\tB\tnot_entailment\n1\tC\tD\tentailment\n",
    )
    _write(tmp_path / "RTE", "dev.tsv", "index\tsentence1\tsentence2\tlabel\n0\tA\tB\tentailment\n")
    assert load_task(TaskConfig(name="rte", path="RTE"), tmp_path).train[0] == (("A", "B"), 1)


def test_glue_file_with_an_unknown_label_names_file_and_line(tmp_path: Path) -> None:
    _write(tmp_path / "SST-2", "train.tsv", "sentence\tlabel\ngood \t1\nbad \t7\n")
    _write(tmp_path / "SST-2", "dev.tsv", "sentence\tlabel\nok \t1\n")
    with pytest.raises(
        ConfigError, match=r"SST-2/train.tsv: line 3: expected a label in \['0', '1'\], got '7'"
    ):
        load_task(TaskConfig(name="sst2", path="SST-2"), tmp_path)


def test_csv_and_jsonl_files_with_a_column_mapping(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("review,stars\ngreat,pos\nawful,neg\n")
    rows = [{"review": "fine", "stars": "pos"}]
    (tmp_path / "dev.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    config = TaskConfig(
        name="file",
        train_file="train.csv",
        dev_file="dev.jsonl",
        text_columns=("review",),
        label_column="stars",
    )
    task = load_task(config, tmp_path)
    assert task.labels == ("neg", "pos") and task.train == ((("great",), 1), (("awful",), 0))
    assert task.dev == ((("fine",), 1),)


def test_file_missing_a_column_names_the_column(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("text,label\na,1\nb,0\n")
    (tmp_path / "dev.csv").write_text("body,label\na,1\n")
    config = TaskConfig(name="file", train_file="train.csv", dev_file="dev.csv")
    with pytest.raises(
        ConfigError, match=r"dev.csv: record 1: expected column 'text', found \['body', 'label'\]"
    ):
        load_task(config, tmp_path)


def test_training_file_with_one_class_is_refused_naming_file_and_label_column(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("text,label\ngreat,pos\nfine,pos\n")
    (tmp_path / "dev.csv").write_text("text,label\nok,pos\n")
    config = TaskConfig(name="file", train_file="train.csv", dev_file="dev.csv")
    with pytest.raises(
        ConfigError,
        match=r"train.csv: label column 'label' \(task.label_column\): found only the class 'pos'",
    ):
        load_task(config, tmp_path)


def test_glue_training_file_with_one_class_is_refused(tmp_path: Path) -> None:
    _write(tmp_path / "SST-2", "train.tsv", "sentence\tlabel\ngood\t1\nfine\t1\n")
    _write(tmp_path / "SST-2", "dev.tsv", "sentence\tlabel\nok\t0\n")
    with pytest.raises(ConfigError, match=r"SST-2/train.tsv: column 1: found only the class '1'"):
        load_task(TaskConfig(name="sst2", path="SST-2"), tmp_path)


@pytest.mark.parametrize("content", ["", "text,label\n"])
def test_empty_training_file_is_blamed_even_when_the_dev_file_is_fine(tmp_path: Path, content: str) -> None:
    (tmp_path / "train.csv").write_text(content)
    (tmp_path / "dev.csv").write_text("text,label\nok,pos\n")
    config = TaskConfig(name="file", train_file="train.csv", dev_file="dev.csv")
    with pytest.raises(ConfigError, match=r"train.csv: no records \(task.train_file\)"):
        load_task(config, tmp_path)


def test_empty_dev_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("text,label\ngreat,pos\nawful,neg\n")
    (tmp_path / "dev.jsonl").write_text("\n")
    config = TaskConfig(name="file", train_file="train.csv", dev_file="dev.jsonl")
    with pytest.raises(ConfigError, match=r"dev.jsonl: no records \(task.dev_file\)"):
        load_task(config, tmp_path)
