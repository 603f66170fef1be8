"""The bad-input catalogue: every case exits 2 with one message naming file/key and what was expected,
and leaves an existing run directory byte-for-byte unchanged."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from autopeft.cli import main
from tests.space_files import write_space


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def existing_run(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> Path:
    """A real run directory with two finished trials."""
    folder = tmp_path_factory.mktemp("existing")
    space = write_space(folder, tiny_bert_dir, trials=2)
    assert main(["search", str(space), "--out", str(folder / "run"), "--quiet"]) == 0
    return folder / "run"


SPACE_CASES: dict[str, tuple[str, str]] = {
    # name: (YAML text with MODEL placeholder, expected message fragment)
    "invalid_yaml": ("model: MODEL\ntask: {name: demo\n", r"bad.yaml: line \d+: invalid YAML"),
    "not_a_mapping": ("- model\n- task\n", "bad.yaml: expected a mapping of keys"),
    "unknown_key": (
        "VALID\ncolour: blue\n",
        "bad.yaml: colour: unknown key; remove it or check its spelling",
    ),
    "negative_rank": (
        "VALID",
        r"bad.yaml: dimensions.rank.choices: .*choices\[1\]: expected an integer >= 0",
    ),
    "unknown_objective": ("VALID", r"bad.yaml: objectives\[1\].name: .*expected one of \["),
    "unknown_method": (
        "VALID\nmethods: {warp: {}}\n",
        "bad.yaml: methods: unknown method 'warp'; expected one of",
    ),
    "module_not_in_model": ("VALID", r"bad.yaml: dimensions.modules\[1\]: .*module 'q_proj' matches none"),
    "too_many_top_layers": (
        "VALID",
        r"bad.yaml: dimensions.layers.top_choices: expected counts <= 2 .*got 5",
    ),
    "missing_dimensions": (
        "model: MODEL\ntask: {name: demo}\nobjectives: [{name: task_metric}]\n",
        "bad.yaml: dimensions: required key is missing",
    ),
    "glue_without_path": ("VALID", "bad.yaml: task: task 'sst2' needs 'path'"),
    "glue_path_missing": ("VALID", "task.path: .*nowhere does not exist"),
    "model_folder_without_config": ("VALID", "expected a Hugging Face model folder with config.json"),
}

VALID_CHANGES = {
    "negative_rank": ("choices: [0, 2, 4]", "choices: [0, -2, 4]"),
    "unknown_objective": ("{name: trainable_parameters}", "{name: happiness}"),
    "module_not_in_model": ("[query, value]", "[query, q_proj]"),
    "too_many_top_layers": ("{mode: per_layer}", "{mode: top, top_choices: [1, 5]}"),
    "glue_without_path": ("task: {name: demo}", "task: {name: sst2}"),
    "glue_path_missing": ("task: {name: demo}", "task: {name: sst2, path: nowhere}"),
}


def _bad_space(folder: Path, case: str, model: Path) -> Path:
    template, _ = SPACE_CASES[case]
    valid = write_space(folder, model).read_text()
    if case in VALID_CHANGES:
        old, new = VALID_CHANGES[case]
        assert old in valid
        valid = valid.replace(old, new)
    if case == "model_folder_without_config":
        (folder / "empty_model").mkdir()
        valid = valid.replace(str(model), str(folder / "empty_model"))
    path = folder / "bad.yaml"
    path.write_text(template.replace("VALID", valid).replace("MODEL", str(model)))
    return path


def _assert_exit_2(argv: list[str], pattern: str, run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = _snapshot(run)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("autopeft: error: ")
    import re

    assert re.search(pattern, err), err
    assert _snapshot(run) == before


@pytest.mark.parametrize("case", sorted(SPACE_CASES))
def test_bad_search_space_exits_2_and_leaves_the_run_untouched(
    case: str, tmp_path: Path, tiny_bert_dir: Path, existing_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = _bad_space(tmp_path, case, tiny_bert_dir)
    _, pattern = SPACE_CASES[case]
    _assert_exit_2(
        ["search", str(space), "--out", str(existing_run), "--study", "space", "--quiet"],
        pattern,
        existing_run,
        capsys,
    )


def test_missing_space_file(existing_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _assert_exit_2(
        ["search", "nope.yaml", "--out", str(existing_run)],
        "nope.yaml: file not found; expected a search-space YAML file",
        existing_run,
        capsys,
    )


def test_resume_with_a_different_space_is_refused(
    tmp_path: Path, tiny_bert_dir: Path, existing_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = write_space(tmp_path, tiny_bert_dir, sampler="sampler: {name: tpe}")
    _assert_exit_2(
        ["search", str(space), "--out", str(existing_run), "--study", "space"],
        "space.yaml: the run was started with a different search space",
        existing_run,
        capsys,
    )


def test_resume_under_another_study_name_is_refused(
    tmp_path: Path, tiny_bert_dir: Path, existing_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = write_space(tmp_path, tiny_bert_dir)
    _assert_exit_2(
        ["search", str(space), "--out", str(existing_run), "--study", "other"],
        "run.json: study: holds study 'space', not 'other'",
        existing_run,
        capsys,
    )


def test_show_of_a_missing_run_directory(
    tmp_path: Path, existing_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _assert_exit_2(
        ["show", str(tmp_path / "nothing")], "nothing: run directory not found", existing_run, capsys
    )


def test_show_of_a_folder_that_is_not_a_run(
    tmp_path: Path, existing_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _assert_exit_2(["show", str(tmp_path)], "not a run directory; expected run.json", existing_run, capsys)


def test_export_of_an_unknown_trial(
    tmp_path: Path, existing_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _assert_exit_2(
        ["export", str(existing_run), "--trial", "9", "--out", str(tmp_path / "x")],
        r"--trial 9: no such trial; expected one of \[0, 1\]",
        existing_run,
        capsys,
    )


def test_export_into_a_non_empty_folder(
    tmp_path: Path, existing_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "taken.txt").write_text("mine")
    _assert_exit_2(
        ["export", str(existing_run), "--trial", "0", "--out", str(tmp_path)],
        "exists and is not empty",
        existing_run,
        capsys,
    )
    assert (tmp_path / "taken.txt").read_text() == "mine"


def test_usage_errors_exit_2(existing_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = _snapshot(existing_run)
    with pytest.raises(SystemExit) as stop:
        main(["search", "x.yaml", "--trials", "0"])
    assert stop.value.code == 2
    assert "expected an integer >= 1, got 0" in capsys.readouterr().err
    assert _snapshot(existing_run) == before
