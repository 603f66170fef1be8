"""A search whose space mixes LoRA, IST, RST and AdaLoRA completes on the demo task."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from autopeft.cli import main
from autopeft.errors import ConfigError
from autopeft.search_space import SearchSpace
from autopeft.storage.run_directory import RunDirectory
from tests.space_files import write_space

MIX = (
    "methods:\n  ist: {mode: [off, ist, rst], active_layer_ratio: 0.5, update_interval: 2}\n"
    "  adalora: {enabled: [false, true], target_rank_ratio: 0.5}\n"
    "  diffora: {enabled: [false, true], rho: 0.5, steps: 2}\n"
    "  light_peft: {enabled: [false, true], head_ratio: [0.0, 0.25], estimation_steps: 2}"
)


def test_a_search_mixing_all_four_methods_completes(tiny_bert_dir: Path, tmp_path: Path) -> None:
    space = write_space(
        tmp_path,
        tiny_bert_dir,
        trials=16,
        methods=MIX,
        dimensions="dimensions:\n  modules: [query, value]\n  rank: {choices: [4, 8]}",
    )
    assert main(["search", str(space), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    trials = RunDirectory(tmp_path / "run").load_study().trials
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials), [
        t.user_attrs.get("reason") for t in trials
    ]
    mixes = {json.dumps(sorted(t.user_attrs["plan"]["methods"])) for t in trials}
    assert len(mixes) >= 4, mixes
    used = {key for t in trials for key in t.user_attrs["plan"]["methods"]}
    assert used == {"ist", "adalora", "diffora", "light_peft"}
    assert all(not {"ist", "adalora"} <= set(t.user_attrs["plan"]["methods"]) for t in trials)
    with_adalora = [t for t in trials if "adalora" in t.user_attrs["plan"]["methods"]]
    for trial in with_adalora:
        assert (tmp_path / "run" / "trials" / str(trial.number) / "final_plan.json").is_file()


@pytest.mark.parametrize(
    ("methods", "message"),
    [
        (
            "methods: {ist: {mode: ist}, adalora: {enabled: true}}",
            "methods.ist: cannot be combined with 'adalora' while both are always on",
        ),
        (
            "methods: {ist: {mode: [off, ist], active_layer_ratio: [0.25, 1.5]}}",
            r"methods.ist.active_layer_ratio\[1\]: Input should be less than or equal to 1",
        ),
        ("methods: {adalora: {colour: red}}", "methods.adalora.colour: unknown key; expected one of"),
    ],
)
def test_bad_method_blocks_name_their_key(
    methods: str, message: str, tiny_bert_dir: Path, tmp_path: Path
) -> None:
    space = write_space(tmp_path, tiny_bert_dir, methods=methods)
    with pytest.raises(ConfigError, match=message):
        SearchSpace.load(space)
