"""The command line's front door: help and argument errors answer without loading the heavy libraries, and the
top-level help lists every command with its one-line help."""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from autopeft.cli.main import COMMANDS, build_parser, main
from autopeft.pareto import TrialRow

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "optuna", "transformers", "peft")

# Runs the CLI in a fresh interpreter and prints, on its last line, the exit code and the heavy libraries
# that the run left in sys.modules.
PROBE = f"""
import json, sys
from autopeft.cli.main import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
print(json.dumps({{"code": code, "heavy": sorted(m for m in {HEAVY!r} if m in sys.modules)}}))
"""


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["--help"], 0),
        (["search", "--help"], 0),
        (["audit", "--help"], 0),
        (["search", "space.yaml", "--no-such-flag"], 2),
        (["show"], 2),
    ],
    ids=["help", "search-help", "audit-help", "unknown-flag", "missing-argument"],
)
def test_help_and_argument_errors_import_no_heavy_library(argv: list[str], code: int) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"code": code, "heavy": []}


def _command_helps(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each subcommand's one-line help, as registered on the parser."""
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {action.dest: str(action.help) for action in commands._choices_actions}


def test_top_level_help_lists_every_command_with_its_one_line_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    helps = _command_helps(build_parser())
    assert set(helps) == {command.__name__.rsplit(".", 1)[-1] for command in COMMANDS}
    assert set(helps) >= {"search", "show", "export", "audit", "dashboard", "report"}
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps long help lines
    for name, help in helps.items():
        assert help and help != "None", name
        assert f"{name} {help}" in text


def test_trials_help_says_pruned_and_failed_trials_count(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    trials = text[text.rindex("--trials N") :]  # the option line, after the usage line
    assert "pruned" in trials[:200] and "failed" in trials[:200]


def test_readme_documents_every_show_json_key() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    documented = readme[readme.index("`autopeft show --json` prints") :][:1000]
    keys = [field.name for field in dataclasses.fields(TrialRow)]
    assert "planned_trainable_parameters" in keys
    assert [key for key in keys if f"`{key}`" not in documented] == []
