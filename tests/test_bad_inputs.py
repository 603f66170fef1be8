"""The bad-input catalogue: one table of what a user gets wrong (search spaces, data files, command-line flags,
run files, checkpoints and adapters), each row with its command line, the words its one-line message must
contain and its exit code.

Every row runs the real CLI in-process against one finished run of the tiny model and stops before any training.
Afterwards the finished run and the row's own folder are byte-for-byte unchanged: bad input is refused before
anything is written (STYLE.md, "Typed errors, exit code 2 at the CLI edge"). The rows' vocabulary (`Case`, the
shared command lines, the setups, the checks) is in tests/bad_input_setups.py.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from autopeft.cli import main
from autopeft.dashboards.access_token import TOKEN_ENV
from tests.bad_input_setups import (
    DEV,
    EXPORT,
    FRESH,
    GLUE_TASK,
    JSONL_TASK,
    RESUME,
    SEARCH,
    TRAIN,
    Case,
    Inputs,
    Setup,
    appended,
    both,
    damaged,
    data,
    exit_code,
    json_edit,
    line_replaced,
    make,
    one_line_message,
    port_in_use,
    removed,
    snapshot,
    space,
    writes,
)
from tests.space_files import write_space

JOURNAL, RUN_JSON, PLAN, METRICS = "study.journal", "run.json", "trials/0/plan.json", "trials/0/metrics.json"
ADAPTER = "trials/0/adapter/adapter_config.json"
BAD_LINE, NOT_A_RECORD = line_replaced(2, '{"op_code": 5, garbage'), line_replaced(2, "[1, 2]")
TORN = appended('{"op_code": 5')  # a last line without its line end: a write cut short
STOPPED = json_edit(lambda m: m.update(state="pruned", metrics={**m["metrics"], "steps": 3.0}))
FAILED = json_edit(lambda m: m.update(state="failed", reason="NaN loss"))
DONE = json_edit(lambda m: m.update(state="done"))
NO_OBJECTIVES = json_edit(lambda info: info.pop("objectives"))
BOGUS_STORAGE = json_edit(lambda info: info.update(storage="bogus://x"))
DROPOUT_2 = json_edit(lambda plan: plan.update(dropout=2))
IST_LIST = "ist: {mode: [ist, off], active_layer_ratio: 1.5}"
LIGHT_LIST = "light_peft: {enabled: [true, false], head_ratio: 1.0}"
DROPOUT, ALPHA, INIT = (
    f"  {line}\n  rank:" for line in ("dropout: [0.1, 1.5]", "alpha: {ratio: [1, -2]}", "init: [default, x]")
)
LIMIT = "constraints: {max_trainable_parameters: %d}\n"
CHEAPEST = ("max_trainable_parameters: no plan of the space fits 10", "cheapest (lora L0 query:r2) costs 194")
NO_DIMENSIONS = "model: MODEL\ntask: {name: demo}\nobjectives: [{name: task_metric}]\n"
ONE_CLASS, MEH, REVIEWS = "text,label\na,pos\nb,pos\n", "text,label\nok,meh\n", "review,label\na,pos\nb,neg\n"
ONE_CLASS_WORDS = "train.csv: label column 'label' (task.label_column): found only the class 'pos'"
NO_LABEL, BROKEN_JSONL = "text,label\na,pos\nb\n", {"train.jsonl": '{"text": "a", "label": "x"}\n{"text": \n'}
SST2, GLUE_7 = "SST-2/train.tsv", "s\tlabel\na\t1\nb\t7\n"
GLUE_1, GLUE_01 = "s\tlabel\na\t1\nb\t1\n", "s\tlabel\na\t1\nb\t0\n"
OUT_TO = "search {tmp}/space.yaml --out"


def methods(block: str) -> Setup:
    """bad.yaml with the method block `block` (`ist: {mode: []}`)."""
    return space(extra=f"methods: {{{block}}}\n")


CASES: dict[str, Case] = {
    # ----- search spaces -----------------------------------------------------------------------------------
    "space_invalid_yaml": Case(SEARCH, ("bad.yaml: line", "invalid YAML"), space(text="model: M\ntask: {")),
    "space_not_a_mapping": Case(SEARCH, "bad.yaml: expected a mapping of keys", space(text="- model\n")),
    "space_unknown_key": Case(SEARCH, "bad.yaml: colour: unknown key", space(extra="colour: 1\n")),
    "space_negative_rank": Case(SEARCH, "choices[1]: expected an integer >= 0", space("0, 2, 4", "0, -2, 4")),
    "space_no_rank_above_0": Case(SEARCH, "expected at least one rank >= 1", space("[0, 2, 4]", "[0]")),
    "space_unknown_share": Case(SEARCH, "rank.share: Input should be", space("module_type", "block")),
    "space_unknown_objective": Case(
        SEARCH, "objectives[1].name: expected one of", space("trainable_", "happy_")
    ),
    "space_objective_twice": Case(
        SEARCH, "'task_metric' twice", space("trainable_parameters", "task_metric")
    ),
    "space_unknown_method": Case(SEARCH, "methods: unknown method 'warp'", methods("warp: {}")),
    "space_unknown_knob": Case(
        SEARCH, "bad.yaml: methods.ist.speed: unknown key", methods("ist: {speed: 3}")
    ),
    "space_knob_without_choices": Case(
        SEARCH, "methods.ist.mode: expected a value or a non-empty list", methods("ist: {mode: []}")
    ),
    "space_unknown_knob_choice": Case(
        SEARCH, "methods.ist.mode[1]: Input should be 'ist', 'rst' or 'off'", methods("ist: {mode: [ist, x]}")
    ),
    "space_knob_out_of_range": Case(
        SEARCH, "ist.active_layer_ratio: Input should be less", methods("ist: {active_layer_ratio: 2}")
    ),
    "space_knob_out_of_range_beside_a_list": Case(
        SEARCH, "bad.yaml: methods.ist.active_layer_ratio: Input should be less", methods(IST_LIST)
    ),
    "space_light_peft_ratio_beside_a_list": Case(
        SEARCH, "methods.light_peft.head_ratio: Input should be less than 1", methods(LIGHT_LIST)
    ),
    "space_clashing_methods_always_on": Case(
        SEARCH, "methods.ist: cannot be combined with 'adalora'", methods("ist: {}, adalora: {}")
    ),
    "space_dropout_out_of_range": Case(
        SEARCH, "dimensions.dropout[1]: Input should be less than 1, got 1.5", space("  rank:", DROPOUT)
    ),
    "space_alpha_ratio_below_0": Case(
        SEARCH, "dimensions.alpha.ratio[1]: Input should be greater", space("  rank:", ALPHA)
    ),
    "space_unknown_init": Case(SEARCH, "dimensions.init[1]: Input should be", space("  rank:", INIT)),
    "space_module_not_in_model": Case(
        SEARCH, ("dimensions.modules[1]:", "'q_proj' matches none"), space("value]", "q_proj]")
    ),
    "space_module_type_twice": Case(
        SEARCH, "'query' names attention.self.query, as dimensions.modules[0] does", space("value]", "query]")
    ),
    "space_too_many_top_layers": Case(
        SEARCH,
        "expected counts <= 2 (the model's layers), got 5",
        space("per_layer", "top, top_choices: [1, 5]"),
    ),
    "space_top_without_choices": Case(
        SEARCH, "needs 'top_choices'", space("{mode: per_layer}", "{mode: top}")
    ),
    "space_missing_dimensions": Case(
        SEARCH, "bad.yaml: dimensions: required key is missing", space(text=NO_DIMENSIONS)
    ),
    "space_budget_below_the_cheapest_plan": Case(SEARCH, CHEAPEST, space(extra=LIMIT % 10)),
    "space_zero_budget": Case(
        SEARCH, "max_trainable_parameters: Input should be greater", space(extra=LIMIT % 0)
    ),
    "space_zero_trials": Case(
        SEARCH, "bad.yaml: trials: Input should be greater", space("trials: 2", "trials: 0")
    ),
    "space_zero_steps": Case(SEARCH, "budget.steps: Input should be greater", space("steps: 6", "steps: 0")),
    "space_unknown_sampler": Case(SEARCH, "sampler.name: Input should be", space("random}", "annealing}")),
    "space_unknown_task": Case(SEARCH, "task.name: Input should be", space("{name: demo}", "{name: imdb}")),
    "space_glue_without_path": Case(
        SEARCH, "task: task 'sst2' needs 'path'", space("{name: demo}", "{name: sst2}")
    ),
    "space_file_task_without_files": Case(
        SEARCH, "task 'file' needs 'train_file'", space("{name: demo}", "{name: file}")
    ),
    "space_missing_model_folder": Case(
        SEARCH, ("bad.yaml: model:", "nothing: folder does not exist"), space("MODEL", "TMP/nothing")
    ),
    "space_model_folder_without_config": Case(
        SEARCH, ("bad.yaml: model:", "folder with config.json"), both(make("m/"), space("MODEL", "TMP/m"))
    ),
    "space_model_is_a_file": Case(
        SEARCH, "afile: is a file; expected a Hugging", both(make("afile"), space("MODEL", "TMP/afile"))
    ),
    "space_file_missing": Case(
        "search {tmp}/nope.yaml --out {run}", "nope.yaml: file not found; expected a search"
    ),
    "space_file_is_a_folder": Case("search {tmp} --out {run}", "cannot read it as a YAML text file"),
    "space_resumed_with_another_space": Case(
        SEARCH, "was started with a different search space", space("random", "tpe")
    ),
    "space_resumed_under_another_study": Case(
        OUT_TO + " {run} --study other", "run.json: study: holds study 'space'", space()
    ),
    # ----- data files --------------------------------------------------------------------------------------
    "data_empty_training_file": Case(
        SEARCH, "train.csv: no records (task.train_file)", data({"train.csv": ""})
    ),
    "data_header_only_training_file": Case(
        SEARCH, "train.csv: no records", data({"train.csv": "text,label\n"})
    ),
    "data_one_class_training_file": Case(
        SEARCH, ONE_CLASS_WORDS, data({"train.csv": ONE_CLASS, "dev.csv": DEV})
    ),
    "data_missing_training_file": Case(SEARCH, ("task.train_file:", "train.csv does not exist"), data({})),
    "data_training_file_is_a_folder": Case(
        SEARCH, "train.csv is a folder; expected a CSV", data({"train.csv/": ""})
    ),
    "data_missing_dev_file": Case(
        SEARCH, ("task.dev_file:", "dev.csv does not exist"), data({"train.csv": TRAIN})
    ),
    "data_empty_dev_file": Case(
        SEARCH, "dev.csv: no records (task.dev_file)", data({"train.csv": TRAIN, "dev.csv": ""})
    ),
    "data_dev_label_not_in_training": Case(
        SEARCH, "dev.csv: record 1: label 'meh' does not occur", data({"train.csv": TRAIN, "dev.csv": MEH})
    ),
    "data_training_file_without_text_column": Case(
        SEARCH, "record 1: expected column 'text', found ['label', 'review']", data({"train.csv": REVIEWS})
    ),
    "data_record_without_label": Case(
        SEARCH, "train.csv: record 2: column 'label' has no value", data({"train.csv": NO_LABEL})
    ),
    "data_broken_jsonl_line": Case(
        SEARCH, "train.jsonl: line 2: expected one JSON object", data(BROKEN_JSONL, JSONL_TASK)
    ),
    "data_jsonl_line_not_an_object": Case(
        SEARCH, "train.jsonl: line 1: expected a JSON object", data({"train.jsonl": "[1]\n"}, JSONL_TASK)
    ),
    "data_training_file_not_utf8": Case(
        SEARCH, "train.csv: byte 0 is not UTF-8 text", data({"train.csv": b"\xff\xfe"})
    ),
    "data_glue_unknown_label": Case(
        SEARCH, "train.tsv: line 3: expected a label in ['0', '1']", data({SST2: GLUE_7}, GLUE_TASK)
    ),
    "data_glue_one_class": Case(
        SEARCH, "train.tsv: column 1: found only the class '1'", data({SST2: GLUE_1}, GLUE_TASK)
    ),
    "data_glue_without_dev_file": Case(
        SEARCH, ("task.path:", "dev.tsv to exist"), data({SST2: GLUE_01}, GLUE_TASK)
    ),
    "data_glue_folder_missing": Case(
        SEARCH, ("task.path:", "nowhere does not exist"), space("demo}", "sst2, path: nowhere}")
    ),
    # ----- command-line flags ------------------------------------------------------------------------------
    "flag_zero_trials": Case(
        "search x.yaml --trials 0", "argument --trials: expected an integer >= 1, got 0"
    ),
    "flag_negative_trials": Case("search x.yaml --trials -3", "expected an integer >= 1, got -3"),
    "flag_trials_not_a_number": Case("search x.yaml --trials many", "invalid positive_int value: 'many'"),
    "flag_unknown_backend": Case(
        "search x.yaml --backend spark", "argument --backend: invalid choice: 'spark'"
    ),
    "flag_unknown_command": Case("serach x.yaml", "invalid choice: 'serach'"),
    "flag_unknown_flag": Case("show {run} --colour", "unrecognized arguments: --colour"),
    "flag_storage_unknown_database": Case(
        FRESH + " bogus://x", "--storage bogus://x: unknown database", space()
    ),
    "flag_storage_not_a_url": Case(FRESH + " nonsense", "--storage nonsense: expected an RDB URL", space()),
    "flag_storage_driver_missing": Case(
        FRESH + " oracle+oracledb://me:pw@db/o", "me:***@db/o: the database driver", space()
    ),
    "flag_storage_folder_missing": Case(FRESH + " sqlite:///{tmp}/no/x.db", "/no does not exist", space()),
    "flag_storage_in_memory": Case(FRESH + " sqlite://", "an in-memory database loses the study", space()),
    "flag_out_is_a_file": Case(OUT_TO + " {tmp}/afile", "afile: is a file", both(space(), make("afile"))),
    "flag_out_is_not_a_run_directory": Case(
        OUT_TO + " {tmp}/d", "d: exists but is not a run directory", both(space(), make("d/x"))
    ),
    "show_missing_run_directory": Case("show {tmp}/nothing", "nothing: run directory not found"),
    "show_folder_that_is_not_a_run": Case("show {tmp}", "not a run directory; expected run.json"),
    "export_unknown_trial": Case(
        "export {run} --trial 9 --out {tmp}/x", "--trial 9: no such trial; expected one of [0, 1]"
    ),
    "export_negative_trial": Case("export {run} --trial -1 --out {tmp}/x", "--trial -1: no such trial"),
    "export_trial_not_a_number": Case(
        "export {run} --trial last --out x", "argument --trial: invalid int value"
    ),
    "export_without_out": Case("export {run} --trial 0", "the following arguments are required: --out"),
    "export_into_a_non_empty_folder": Case(
        "export {run} --trial 0 --out {tmp}/d", "d: exists and is not empty", make("d/x")
    ),
    "export_onto_a_file": Case(
        "export {run} --trial 0 --out {tmp}/afile", "afile: is a file; expected a new", make("afile")
    ),
    "export_under_a_file": Case(
        "export {run} --trial 0 --out {tmp}/afile/x", "afile is a file; expected a path", make("afile")
    ),
    "report_onto_a_folder": Case(
        "report {run} --out {tmp}/d", "d: is a folder; expected an HTML file path", make("d/")
    ),
    "report_under_a_file": Case(
        "report {run} --out {tmp}/afile/r.html", "afile is a file; expected a path", make("afile")
    ),
    "report_of_a_missing_run": Case(
        "report {tmp}/nothing --out {tmp}/r.html", "nothing: run directory not found"
    ),
    "dashboard_port_out_of_range": Case(
        "dashboard {run} --port 99999", "--port 99999: expected a port from 1 to 65535"
    ),
    "dashboard_negative_port": Case(
        "dashboard {run} --port -1", "--port -1: expected a port from 1 to 65535"
    ),
    "dashboard_port_in_use": Case(
        "dashboard {run} --port {port}", "is already in use; choose another", port_in_use
    ),
    "dashboard_port_not_a_number": Case(
        "dashboard {run} --port http", "argument --port: invalid int value: 'http'"
    ),
    "dashboard_unknown_storage": Case(
        "dashboard --storage bogus://x", "--storage bogus://x: unknown database"
    ),
    "dashboard_zero_refresh": Case(
        "dashboard {run} --refresh 0", "--refresh: expected a number of seconds > 0"
    ),
    "dashboard_open_host_without_token": Case(
        "dashboard {run} --host 0.0.0.0", "beyond this machine needs a token"
    ),
    "dashboard_without_run_or_storage": Case("dashboard", "expected a run directory or --storage URL"),
    # ----- run files, checkpoints and adapters (on a damaged copy of the finished run) ----------------------
    "run_journal_line_damaged_show": Case(
        "show {copy}", "study.journal: line 2 is not a JSON record", damaged(JOURNAL, BAD_LINE)
    ),
    "run_journal_line_damaged_search": Case(
        RESUME, ("line 2 is not a JSON record", "journal is damaged"), damaged(JOURNAL, BAD_LINE)
    ),
    "run_journal_line_not_a_record": Case(
        "show {copy}", "line 2 is not a journal record", damaged(JOURNAL, NOT_A_RECORD)
    ),
    "run_journal_last_line_cut_short": Case(
        RESUME, ("the last, is cut short", "delete the line to resume"), damaged(JOURNAL, TORN)
    ),
    "run_journal_missing_show": Case(
        "show {copy}", "study.journal: file not found", damaged(JOURNAL, removed)
    ),
    "run_journal_missing_search": Case(RESUME, "study.journal: file not found", damaged(JOURNAL, removed)),
    "run_json_corrupt": Case("show {copy}", "run.json: not valid JSON", damaged(RUN_JSON, writes("{nope"))),
    "run_json_not_an_object": Case(
        "show {copy}", "run.json: expected a JSON object", damaged(RUN_JSON, writes("[1]"))
    ),
    "run_json_missing_key": Case(
        "show {copy}", "run.json: objectives: required key", damaged(RUN_JSON, NO_OBJECTIVES)
    ),
    "run_json_unknown_storage": Case(
        "show {copy}", "run.json: storage: bogus://x: unknown", damaged(RUN_JSON, BOGUS_STORAGE)
    ),
    "checkpoint_plan_corrupt": Case(EXPORT, "plan.json: not valid JSON", damaged(PLAN, writes("{"))),
    "checkpoint_plan_invalid": Case(
        EXPORT, "plan.json: dropout: Input should be less than 1", damaged(PLAN, DROPOUT_2)
    ),
    "checkpoint_plan_missing": Case(
        EXPORT, "plan.json: file not found; expected the trial's plan", damaged(PLAN, removed)
    ),
    "checkpoint_metrics_corrupt": Case(EXPORT, "metrics.json: not valid JSON", damaged(METRICS, writes("{"))),
    "checkpoint_metrics_missing": Case(EXPORT, "trial 0 has not finished", damaged(METRICS, removed)),
    "checkpoint_metrics_unknown_state": Case(
        EXPORT, "metrics.json: state: expected 'complete'", damaged(METRICS, DONE)
    ),
    "checkpoint_failed_trial": Case(
        EXPORT, "trial 0 failed (NaN loss) and saved no adapter", damaged(METRICS, FAILED)
    ),
    "checkpoint_adapter_missing": Case(
        EXPORT, "no adapter was saved for trial 0", damaged("trials/0/adapter", removed)
    ),
    "checkpoint_adapter_config_corrupt": Case(
        EXPORT, "adapter_config.json: not valid JSON", damaged(ADAPTER, writes("{"))
    ),
    "checkpoint_stopped_early_trial": Case(
        EXPORT, ("trial 0 was stopped early at step 3", "partly trained"), damaged(METRICS, STOPPED), 0
    ),
    "checkpoint_audit_of_an_unknown_trial": Case("audit {run} --trial 9", "trials/9/adapter"),
}


@pytest.fixture(scope="module")
def existing_run(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> Path:
    """A real run directory with two finished trials, shared read-only by every row."""
    folder = tmp_path_factory.mktemp("existing")
    space_file = write_space(folder, tiny_bert_dir, trials=2)
    assert main(["search", str(space_file), "--out", str(folder / "run"), "--quiet"]) == 0
    return folder / "run"


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_refused_in_one_line_and_changes_nothing(
    name: str,
    tmp_path: Path,
    tiny_bert_dir: Path,
    existing_run: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    case = CASES[name]
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with contextlib.ExitStack() as stack:
        inputs = Inputs(tmp_path, tiny_bert_dir, existing_run, stack)
        if case.setup is not None:
            case.setup(inputs)
        names = {
            "run": str(existing_run),
            "copy": str(tmp_path / "copy"),
            "tmp": str(tmp_path),
            **inputs.names,
        }
        argv = [part.format(**names) for part in case.argv.split()]
        run_before, folder_before = snapshot(existing_run), snapshot(tmp_path)
        capsys.readouterr()
        code = exit_code(argv)
        err = capsys.readouterr().err
    assert code == case.code, err
    message = one_line_message(err, code)
    for words in (case.words,) if isinstance(case.words, str) else case.words:
        assert words in message
    assert snapshot(existing_run) == run_before
    folder_after = snapshot(tmp_path)
    exported = {path for path in folder_after if path.startswith("exported")}
    assert bool(exported) == (code == 0)  # only the warned export writes, and only its own folder
    assert {path: digest for path, digest in folder_after.items() if path not in exported} == folder_before
