"""The Ray Tune driver: the same trials as the embedded driver, run by a local Ray instance or a real cluster.

Each Ray trial runs `run_trial` on a worker with the resources it asked for (fractional GPUs included); the
device is chosen inside the trial from what Ray assigned. `StudySearcher` (OptunaSearch on the run directory's
study) samples and records the plans and tells the outcomes, so `show`, `export` and the dashboards cannot
tell which backend ran. Workers write their artifacts into the run directory, which must therefore be on a
path every node sees (see docs/running_on_a_cluster.md).

Fault tolerance: a trial whose worker dies is retried (`FailureConfig`); a killed driver resumes with
`Tuner.restore` from `<run>/ray/`, and the searcher never tells a finished trial twice, so no completed trial
is lost or counted twice. Optuna trials that Ray never learned about (asked after the last experiment
checkpoint) are marked interrupted and not counted, as the embedded driver does after Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna
import ray
import torch
from ray import tune
from ray.exceptions import AuthenticationError
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import ConcurrencyLimiter

from autopeft.errors import ConfigError
from autopeft.plan import PeftPlan
from autopeft.search.samplers import make_sampler
from autopeft.search.search_setup import SearchSetup
from autopeft.search.study_searcher import CURVE_KEY, NUMBER_KEY, OUTCOME_KEY, PLAN_KEY, StudySearcher
from autopeft.search.trial_record import write_result_files
from autopeft.storage.atomic_files import read_json, write_json_atomic
from autopeft.storage.run_directory import RunDirectory
from autopeft.trial import TrialResult, TrialSpec, run_trial

logger = logging.getLogger(__name__)

EXPERIMENT_FILE = "experiment.json"
MAX_TRIAL_RETRIES = 2
AUTH_MODE_VARIABLE = "RAY_AUTH_MODE"


class RayReporter:
    """Sends each intermediate report to Ray Tune, with every objective in it (Tune checks each result for
    every metric the searcher optimises, and ASHA reads `task_metric` and `step`).

    `should_stop` is always False: Ray stops a trial from outside, by ending its worker, and the searcher then
    records it as pruned.
    """

    def __init__(self, objective_names: tuple[str, ...]) -> None:
        self.objective_names = objective_names
        self.curve: list[dict[str, float]] = []
        self._started = time.perf_counter()

    def report(self, step: int, values: Mapping[str, float]) -> None:
        point = {"step": float(step), **values}
        self.curve.append(point)
        tune.report({**self._every_objective(point), "step": step, CURVE_KEY: json.dumps(self.curve)})

    def should_stop(self) -> bool:
        return False

    def final_report(self, result: TrialResult) -> dict[str, Any]:
        """The last result of a trial that ran to its end (complete, failed, or pruned by run_trial)."""
        outcome = {
            "state": result.state,
            "reason": result.reason,
            "metrics": result.metrics,
            "methods": result.method_reports,
            "final_plan": result.final_plan.model_dump(mode="json") if result.final_plan else None,
        }
        return {
            **self._every_objective(result.metrics),
            "step": int(result.metrics.get("steps", 0)),
            CURVE_KEY: json.dumps(result.curve),
            OUTCOME_KEY: json.dumps(outcome),
        }

    def _every_objective(self, values: Mapping[str, float]) -> dict[str, float]:
        """Each objective's value; wall_seconds so far when the trial has not ended, NaN when not measured."""
        elapsed = {"wall_seconds": time.perf_counter() - self._started}
        return {name: float(values.get(name, elapsed.get(name, math.nan))) for name in self.objective_names}


@dataclass(frozen=True)
class TrialJob:
    """What every Ray trial needs besides its plan; paths are absolute, since workers run in other folders."""

    spec: TrialSpec
    run_root: str
    objective_names: tuple[str, ...]


def train_plan(config: dict[str, Any], job: TrialJob) -> None:
    """The Ray trainable: run one plan on the resources Ray assigned and report its final outcome."""
    torch.set_num_threads(max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1))))
    spec = replace(job.spec, device="cuda" if ray.get_gpu_ids() else "cpu")
    plan = PeftPlan.from_dict(config[PLAN_KEY])
    folder = RunDirectory(Path(job.run_root)).trial_dir(config[NUMBER_KEY])
    reporter = RayReporter(job.objective_names)
    result = run_trial(plan, spec, reporter, folder)
    write_result_files(folder, result)
    tune.report(reporter.final_report(result))


@dataclass(frozen=True)
class RayResources:
    """The validated --address, --cpus-per-trial, --gpus-per-trial and --concurrency flags."""

    address: str | None
    cpus_per_trial: float
    gpus_per_trial: float
    concurrency: int

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RayResources:
        if args.cpus_per_trial <= 0:
            raise ConfigError(f"--cpus-per-trial: expected a number > 0, got {args.cpus_per_trial}")
        gpus = args.gpus_per_trial
        if gpus < 0 or (gpus > 1 and not float(gpus).is_integer()):
            raise ConfigError(
                f"--gpus-per-trial: expected a fraction in [0, 1] or a whole number, got {gpus}"
            )
        return cls(args.address, args.cpus_per_trial, gpus, args.concurrency)

    def check_cluster(self) -> None:
        """Fail now, rather than wait forever, when no node of the cluster can hold one trial."""
        available = ray.cluster_resources()
        for name, wanted in (("CPU", self.cpus_per_trial), ("GPU", self.gpus_per_trial)):
            if wanted > available.get(name, 0.0):
                raise ConfigError(
                    f"--{name.lower()}s-per-trial: {wanted:g} requested, but the Ray cluster "
                    f"has {available.get(name, 0.0):g} {name}s; lower it or add nodes"
                )


def run_ray_search(setup: SearchSetup, args: argparse.Namespace) -> optuna.Study:
    """Run trials on Ray until the study holds `setup.trials` finished ones; resumes a killed run."""
    resources = RayResources.from_args(args)
    connect(resources.address, quiet=args.quiet)
    try:
        resources.check_cluster()
        study = setup.open_study()
        RayExperiments(setup, resources, asha=args.asha, quiet=args.quiet).run(study)
        return study
    finally:
        ray.shutdown()


@dataclass(frozen=True)
class RayExperiments:
    """The Ray Tune experiments of one run directory, under `<run>/ray/<name>`.

    `experiment.json` names the latest one and whether its `fit()` returned; one that did not was
    interrupted with its driver, and is finished with `Tuner.restore` before a new one starts for the trials
    still missing.
    """

    setup: SearchSetup
    resources: RayResources
    asha: bool
    quiet: bool

    @property
    def root(self) -> Path:
        return (self.setup.run_dir.root / "ray").resolve()

    def run(self, study: optuna.Study) -> None:
        """Restore the interrupted experiment, if any, then run the missing trials; leaves none RUNNING."""
        interrupted = self._interrupted()
        if interrupted is not None and self.setup.finished_count(study) < self.setup.trials:
            logger.info("resuming the Ray experiment %s with Tuner.restore", interrupted.name)
            tune.Tuner.restore(str(interrupted), self._trainable()).fit()
            self._mark_finished()
        self.setup.settle_interrupted(study)
        remaining = self.setup.trials - self.setup.finished_count(study)
        if remaining > 0:
            name = f"search-{len(study.get_trials(deepcopy=False))}"
            write_json_atomic(self.root / EXPERIMENT_FILE, {"name": name, "finished": False})
            self._tuner(name, remaining, study).fit()
            self._mark_finished()
            self.setup.settle_interrupted(study)

    def _tuner(self, name: str, trials: int, study: optuna.Study) -> tune.Tuner:
        """A Tuner whose OptunaSearch shares the run directory's study, its sampler reseeded as on resume."""
        setup = self.setup
        sampler = make_sampler(
            setup.space.sampler, setup.seed + len(study.get_trials(deepcopy=False)), setup.probe()
        )
        # OptunaSearch accepts storage objects only, not URLs.
        storage = optuna.storages.get_storage(setup.run_dir.storage(setup.storage_url))
        searcher = StudySearcher(setup, sampler, storage)
        tune_config = tune.TuneConfig(
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=self.resources.concurrency),
            scheduler=asha_scheduler(setup) if self.asha else None,
            num_samples=trials,
            reuse_actors=True,
            trial_dirname_creator=_trial_folder_name,
        )
        run_config = tune.RunConfig(
            name=name,
            storage_path=str(self.root),
            verbose=0 if self.quiet else 1,
            failure_config=tune.FailureConfig(max_failures=MAX_TRIAL_RETRIES),
        )
        return tune.Tuner(self._trainable(), tune_config=tune_config, run_config=run_config)

    def _trainable(self) -> Any:
        """`train_plan` with its job and the resources of one trial (fractional GPUs allowed)."""
        job = TrialJob(
            _absolute_spec(self.setup.spec),
            str(self.setup.run_dir.root.resolve()),
            tuple(self.setup.space.objective_names),
        )
        per_trial = {"cpu": self.resources.cpus_per_trial, "gpu": self.resources.gpus_per_trial}
        return tune.with_resources(tune.with_parameters(train_plan, job=job), per_trial)

    def _interrupted(self) -> Path | None:
        """The experiment a killed driver left unfinished, when Ray can restore it."""
        marker = self.root / EXPERIMENT_FILE
        if not marker.is_file():
            return None
        state = read_json(marker)
        path = self.root / state["name"]
        return path if not state["finished"] and tune.Tuner.can_restore(path) else None

    def _mark_finished(self) -> None:
        state = read_json(self.root / EXPERIMENT_FILE)
        write_json_atomic(self.root / EXPERIMENT_FILE, {**state, "finished": True})


def _trial_folder_name(trial: Any) -> str:
    """Ray's default folder name spells out the whole plan, far past path-length limits."""
    return f"trial_{trial.trial_id}"


def _absolute_spec(spec: TrialSpec) -> TrialSpec:
    """A model given as a relative folder must still resolve in a worker, which runs in its own folder."""
    folder = Path(spec.model).expanduser()
    return replace(spec, model=str(folder.resolve())) if folder.is_dir() else spec


def asha_scheduler(setup: SearchSetup) -> ASHAScheduler:
    """ASHA on the task metric alone (it is single-metric), with rungs at the trial's evaluation steps.

    max_t is one step past the budget, so ASHA never stops a trial for reaching its last evaluation: the
    trial's final report ends it, and only trials ASHA cut short are recorded as pruned.
    """
    budget = setup.space.budget
    total = budget.total_steps()
    return ASHAScheduler(
        time_attr="step",
        metric="task_metric",
        mode="max",
        max_t=total + 1,
        grace_period=max(1, round(total / budget.evaluations)),
        reduction_factor=2,
    )


def connect(address: str | None, quiet: bool) -> None:
    """Join the cluster at `address`, or start a local Ray instance; bad addresses are one `ConfigError`."""
    if address is None:
        ray.init(include_dashboard=False, log_to_driver=not quiet)
        return
    host, port = _parse_address(address)
    _check_listening(host, port, address)
    _use_token_when_available()
    _reload_auth_settings()
    try:
        ray.init(address=f"{host}:{port}", log_to_driver=not quiet)
    except AuthenticationError as error:
        raise ConfigError(
            f"--address {address}: the cluster refused the authentication token ({error}); "
            "set RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH to the cluster's token, or start "
            f"the cluster with {AUTH_MODE_VARIABLE}=disabled"
        ) from None
    except ConnectionError as error:
        raise ConfigError(
            f"--address {address}: cannot join the Ray cluster there ({error}); if the cluster "
            "uses token authentication, set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH (or "
            "RAY_AUTH_TOKEN) to its token"
        ) from None


def _parse_address(address: str) -> tuple[str, int]:
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(
            f"--address: expected HOST:PORT of a Ray head node (ray start --head --port PORT), "
            f"got {address!r}"
        )
    return host, int(port)


def _check_listening(host: str, port: int, address: str) -> None:
    """Ray keeps retrying an address where nothing listens; a plain socket connect fails at once."""
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as error:
        raise ConfigError(
            f"--address {address}: nothing is listening there ({error.strerror or error}); "
            "start a head node with `ray start --head --port PORT`, or leave out --address "
            "to start a local Ray instance"
        ) from None


def _use_token_when_available() -> None:
    """Ray 2.59+ clusters use token authentication when a token exists, but a driver joining an explicit
    address only sends one when RAY_AUTH_MODE=token. Send it whenever a token is at hand; an explicit
    RAY_AUTH_MODE (token or disabled) is respected."""
    if AUTH_MODE_VARIABLE in os.environ:
        return
    token_file = Path(os.environ.get("RAY_AUTH_TOKEN_PATH", Path.home() / ".ray" / "auth_token"))
    if os.environ.get("RAY_AUTH_TOKEN") or token_file.is_file():
        os.environ[AUTH_MODE_VARIABLE] = "token"


def _reload_auth_settings() -> None:
    """Ray reads RAY_AUTH_MODE and the token once per process; read them again, so that settings made after
    `import ray` (by `_use_token_when_available`, or by a program driving autopeft) take effect, as Ray's own
    token setup does when it enables authentication."""
    # ray/_raylet.pyi covers only the ID and ObjectRef types of the compiled module
    from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()
