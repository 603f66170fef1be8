"""The Ray driver on a real `ray start --head` cluster: the embedded driver's storage, retries, resume."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import psutil
import pytest

from autopeft.cli import main
from autopeft.pareto import trial_rows
from autopeft.search.ray_driver import RayReporter
from autopeft.search.samplers import SAMPLERS, make_sampler
from autopeft.search.search_setup import SearchRequest, SearchSetup
from autopeft.search.study_searcher import CURVE_KEY, NUMBER_KEY, STOPPED_BY_SCHEDULER, StudySearcher
from autopeft.storage.run_directory import RunDirectory
from autopeft.trial import TrialResult
from tests.search.ray_cluster import RayCluster, free_port
from tests.space_files import write_space

REPO = Path(__file__).resolve().parents[2]
# Plans that always adapt something (rank >= 2 everywhere), so every trial can complete.
DIMENSIONS = "dimensions:\n  modules: [query, value]\n  rank: {choices: [2, 4], share: module_type}"
CONSTRAINTS = "constraints: {max_trainable_parameters: 5000}"
LONG_BUDGET = (
    "budget: {train_examples: 64, dev_examples: 32, steps: STEPS, max_length: 24, batch_size: 8, "
    "evaluations: 2}"
)


def _space(folder: Path, model: Path, trials: int, steps: int = 6, **overrides: str) -> Path:
    budget = {} if steps == 6 else {"budget": LONG_BUDGET.replace("STEPS", str(steps))}
    return write_space(
        folder, model, trials=trials, dimensions=DIMENSIONS, constraints=CONSTRAINTS, **budget, **overrides
    )


def _storage(setup: SearchSetup) -> optuna.storages.BaseStorage:
    """The study's storage as the Ray driver hands it to its searcher (an object, not a URL)."""
    return optuna.storages.get_storage(setup.run_dir.storage(setup.storage_url))


def _driver(space: Path, run: Path, cluster: RayCluster, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "autopeft",
        "search",
        str(space),
        "--out",
        str(run),
        "--backend",
        "ray",
        "--address",
        cluster.address,
        "--quiet",
        *extra,
    ]


def _wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def cluster_env(ray_cluster: RayCluster) -> Iterator[RayCluster]:
    """The cluster's token settings in this process, for drivers run in-process through `main`."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH", "RAY_USAGE_STATS_ENABLED"):
            patch.setenv(name, ray_cluster.env[name])
        yield ray_cluster


@pytest.fixture(scope="module")
def ray_run(cluster_env: RayCluster, tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-trial search on the demo task through --address, two trials at a time."""
    folder = tmp_path_factory.mktemp("ray_search")
    space = _space(folder, tiny_bert_dir, trials=4)
    run = folder / "run"
    assert (
        main(
            [
                "search",
                str(space),
                "--out",
                str(run),
                "--backend",
                "ray",
                "--address",
                cluster_env.address,
                "--concurrency",
                "2",
                "--quiet",
            ]
        )
        == 0
    )
    return run


@pytest.fixture(scope="module")
def embedded_run(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("embedded_search")
    run = folder / "run"
    assert main(["search", str(_space(folder, tiny_bert_dir, trials=2)), "--out", str(run), "--quiet"]) == 0
    return run


def _shape(trial: optuna.trial.FrozenTrial) -> tuple[object, ...]:
    """What a stored trial holds, apart from the measured values."""
    keys = (trial.user_attrs, trial.system_attrs, trial.params, trial.user_attrs["metrics"])
    return (trial.state, *(tuple(sorted(names)) for names in keys), len(trial.user_attrs["curve"]))


def test_ray_study_has_four_complete_trials_shaped_like_an_embedded_run(
    ray_run: Path, embedded_run: Path
) -> None:
    study, embedded = RunDirectory(ray_run).load_study(), RunDirectory(embedded_run).load_study()
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 4
    assert [t.number for t in study.trials] == [0, 1, 2, 3]
    assert (study.directions, study.metric_names, study.user_attrs) == (
        embedded.directions,
        embedded.metric_names,
        embedded.user_attrs,
    )
    assert {_shape(t) for t in study.trials} == {_shape(t) for t in embedded.trials}
    for trial in study.trials:
        assert trial.values[1] == trial.user_attrs["trainable_parameters"]
        assert trial.constraints == {"trainable_parameters": trial.user_attrs["trainable_parameters"] - 5000}
        folder = ray_run / trial.user_attrs["artifact_dir"]
        assert (folder / "adapter" / "adapter_model.safetensors").is_file()
        assert json.loads((folder / "metrics.json").read_text())["metrics"] == trial.user_attrs["metrics"]
        assert json.loads((folder / "plan.json").read_text()) == trial.user_attrs["plan"]


def test_first_ray_plans_are_the_embedded_drivers_plans(ray_run: Path, embedded_run: Path) -> None:
    ray_plans = [t.user_attrs["plan"] for t in RunDirectory(ray_run).load_study().trials]
    assert ray_plans[:2] == [t.user_attrs["plan"] for t in RunDirectory(embedded_run).load_study().trials]


def test_show_prints_the_front_of_a_ray_run(ray_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(ray_run), "--json"]) == 0
    front = json.loads(capsys.readouterr().out)
    assert front and all(set(r["values"]) == {"task_metric", "trainable_parameters"} for r in front)
    assert main(["show", str(ray_run)]) == 0
    assert f"Pareto front of space ({len(front)} of 4 trials)" in capsys.readouterr().out


def test_address_where_nothing_listens_is_one_config_error(
    tiny_bert_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    address = f"127.0.0.1:{free_port()}"
    space = _space(tmp_path, tiny_bert_dir, trials=1)
    code = main(
        ["search", str(space), "--out", str(tmp_path / "run"), "--backend", "ray", "--address", address]
    )
    assert code == 2
    error = capsys.readouterr().err
    assert error.startswith(f"autopeft: error: --address {address}: nothing is listening there")
    assert len(error.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_gpus_the_cluster_lacks_are_refused_before_anything_is_written(
    cluster_env: RayCluster, tiny_bert_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = _space(tmp_path, tiny_bert_dir, trials=1)
    code = main(
        [
            "search",
            str(space),
            "--out",
            str(tmp_path / "run"),
            "--backend",
            "ray",
            "--address",
            cluster_env.address,
            "--gpus-per-trial",
            "0.5",
            "--quiet",
        ]
    )
    assert code == 2
    assert "--gpus-per-trial: 0.5 requested, but the Ray cluster has 0 GPUs" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_final_report_of_a_failed_trial_still_carries_every_objective() -> None:
    """Tune rejects a result that lacks a searched metric; the cluster runs show the others carry them."""
    reporter = RayReporter(("task_metric", "trainable_parameters", "wall_seconds"))
    final = reporter.final_report(TrialResult("failed", reason="NaN loss"))
    assert math.isnan(final["task_metric"]) and math.isnan(final["trainable_parameters"])  # never measured
    assert final["wall_seconds"] >= 0.0


def test_trial_a_scheduler_stopped_is_pruned_and_off_the_front(tiny_bert_dir: Path, tmp_path: Path) -> None:
    """Ray calls `on_trial_complete` with the last intermediate result when ASHA stops a trial; Ray's own
    OptunaSearch would tell it COMPLETE with those half-trained metrics."""
    space = _space(tmp_path, tiny_bert_dir, trials=2)
    setup = SearchSetup.prepare(SearchRequest(space, out=tmp_path / "run"))
    study = setup.open_study()
    searcher = StudySearcher(setup, make_sampler(setup.space.sampler, 0), _storage(setup))
    searcher.suggest("stopped")
    curve = [{"step": 3.0, "task_metric": 0.9, "trainable_parameters": 1.0, "train_loss": 0.5}]
    partial = {"task_metric": 0.9, "trainable_parameters": 1.0, "step": 3, CURVE_KEY: json.dumps(curve)}
    searcher.on_trial_result("stopped", partial)
    searcher.on_trial_complete("stopped", result=partial)
    searcher.on_trial_complete("stopped", result=partial)  # a second notice is not told again
    trial = RunDirectory(tmp_path / "run").load_study().trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert trial.user_attrs["reason"] == STOPPED_BY_SCHEDULER
    assert trial.user_attrs["metrics"]["task_metric"] == 0.9
    assert json.loads((tmp_path / "run" / "trials" / "0" / "metrics.json").read_text())["state"] == "pruned"
    rows = trial_rows(study, setup.space.objective_names, setup.space.directions)
    assert not any(row.on_front for row in rows)


def _trial_workers(cluster: RayCluster) -> list[psutil.Process]:
    """This cluster's processes running a Tune trial (workers inherit the cluster's token path)."""
    workers = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            title = " ".join(process.info["cmdline"] or [])
            if title.startswith("ray::ImplicitFunc") and (
                process.environ().get("RAY_AUTH_TOKEN_PATH") == cluster.env["RAY_AUTH_TOKEN_PATH"]
            ):
                workers.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue  # ended or foreign while we looked: not one of this cluster's trial workers
    return workers


def test_killed_trial_worker_is_retried_and_the_trial_completes(
    ray_cluster: RayCluster, tiny_bert_dir: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    driver = subprocess.Popen(
        _driver(_space(tmp_path, tiny_bert_dir, trials=1, steps=600), run, ray_cluster),
        cwd=REPO,
        env=ray_cluster.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(lambda: bool(_trial_workers(ray_cluster)), 300, "a trial worker")
    time.sleep(2.0)
    assert not (run / "trials" / "0" / "metrics.json").exists()  # still mid-trial
    worker = _trial_workers(ray_cluster)[0]
    worker.send_signal(signal.SIGKILL)
    _, stderr = driver.communicate(timeout=240)
    assert driver.returncode == 0, stderr
    study = RunDirectory(run).load_study()
    assert [(t.number, t.state) for t in study.trials] == [(0, optuna.trial.TrialState.COMPLETE)]
    errors = list((run / "ray").glob("search-0/trial_*/error.txt"))
    assert len(errors) == 1 and "The actor died unexpectedly" in errors[0].read_text()


def test_killed_driver_resumes_to_the_requested_count(
    ray_cluster: RayCluster, tiny_bert_dir: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    space = _space(tmp_path, tiny_bert_dir, trials=3, steps=150, sampler="sampler: {name: autopeft}")
    command = _driver(space, run, ray_cluster)  # the default sampler: its searcher is restored from pickle
    driver = subprocess.Popen(
        command, cwd=REPO, env=ray_cluster.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _wait_for(lambda: (run / "trials" / "1" / "plan.json").exists(), 180, "the second trial")
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=30)
    before = {t.number: t.values for t in RunDirectory(run).load_study().trials if t.values}
    assert before, "the first trial should have completed before the driver was killed"
    resumed = subprocess.run(
        command, cwd=REPO, env=ray_cluster.env, capture_output=True, text=True, timeout=240, check=False
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming the Ray experiment search-0 with Tuner.restore" in " ".join(resumed.stderr.split())
    study = RunDirectory(run).load_study()
    counted = [t for t in study.trials if t.user_attrs.get("reason") != "interrupted"]
    assert [t.state for t in counted] == [optuna.trial.TrialState.COMPLETE] * 3
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    assert all(study.trials[number].values == values for number, values in before.items())


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_sampler_survives_the_searcher_checkpoint(
    name: str, tiny_bert_dir: Path, tmp_path: Path
) -> None:
    """Ray Tune pickles the searcher, and the sampler in it, at every experiment checkpoint and reads it back
    on `Tuner.restore`: every sampler of the table must make the round trip and go on proposing plans."""
    space = write_space(
        tmp_path,
        tiny_bert_dir,
        trials=2,
        dimensions=DIMENSIONS,
        constraints=CONSTRAINTS,
        sampler=f"sampler: {{name: {name}}}",
    )
    setup = SearchSetup.prepare(SearchRequest(space, out=tmp_path / "run"))
    setup.open_study()
    searcher = StudySearcher(setup, make_sampler(setup.space.sampler, 0, setup.probe()), _storage(setup))
    assert searcher.suggest("first")[NUMBER_KEY] == 0
    searcher.save(str(tmp_path / "searcher.pkl"))
    restored = StudySearcher(setup, make_sampler(setup.space.sampler, 1, setup.probe()), _storage(setup))
    restored.restore(str(tmp_path / "searcher.pkl"))
    assert restored.suggest("second")[NUMBER_KEY] == 1


def test_the_shipped_demo_space_runs_on_a_real_cluster(cluster_env: RayCluster, tmp_path: Path) -> None:
    """`search_spaces/demo.yaml` exactly as a user runs it (default sampler, every method), on `--backend ray`."""
    run = tmp_path / "run"
    argv = ["search", str(REPO / "search_spaces" / "demo.yaml"), "--out", str(run), "--trials", "2"]
    assert main([*argv, "--backend", "ray", "--address", cluster_env.address, "--quiet"]) == 0
    study = RunDirectory(run).load_study()
    assert len(study.trials) == 2
    assert all(t.state.is_finished() for t in study.trials)
    assert any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
