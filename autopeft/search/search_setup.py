"""SearchSetup: everything a driver checks and prepares before the first trial, shared by every backend.

All validation (the space, the model, the run directory, a resumed study's identity) happens before anything
is written, so a bad input never touches a stored run.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
import yaml

from autopeft.errors import CheckpointError, ConfigError
from autopeft.model_layout import ModelLayout
from autopeft.models import load_tokenizer, resolve_model_path
from autopeft.search.cheapest_plan import CheapestPlan
from autopeft.search.plan_probe import PlanProbe
from autopeft.search.samplers import make_sampler
from autopeft.search_space import SearchSpace
from autopeft.storage.atomic_files import read_json, write_json_atomic, write_text_atomic
from autopeft.storage.run_directory import RunDirectory
from autopeft.storage.study_storage import check_storage_url
from autopeft.tasks.task import load_task
from autopeft.trial import TrialSpec

logger = logging.getLogger(__name__)

INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class SearchRequest:
    """The `autopeft search` flags."""

    space_path: Path
    trials: int | None = None
    out: Path | None = None
    storage: str | None = None
    study: str | None = None
    seed: int | None = None


@dataclass(frozen=True)
class SearchSetup:
    """A validated search: its space, run directory, study identity, model layout and trial spec."""

    space: SearchSpace
    run_dir: RunDirectory
    study_name: str
    storage_url: str
    trials: int
    seed: int
    layout: ModelLayout
    spec: TrialSpec

    @classmethod
    def prepare(cls, request: SearchRequest) -> SearchSetup:
        """Validate the request against the model and any existing run; writes nothing."""
        space = SearchSpace.load(request.space_path)
        if request.storage not in (None, "journal"):
            check_storage_url(str(request.storage), "--storage")
        study_name = request.study or request.space_path.stem
        run_dir = RunDirectory(request.out or Path("runs") / study_name)
        seed = space.seed if request.seed is None else request.seed
        spec = TrialSpec(
            space.model,
            space.task,
            space.budget,
            str(request.space_path.parent.resolve()),
            seed,
            cache_dir=str((run_dir.root / "cache").resolve()),
        )
        layout = _model_layout(space, spec)
        space.check_against(layout)
        _check_budget_reachable(space, layout)
        setup = cls(
            space,
            run_dir,
            study_name,
            request.storage or "journal",
            request.trials or space.trials,
            seed,
            layout,
            spec,
        )
        setup._check_resume()
        return setup

    def _check_resume(self) -> None:
        """A run directory may only be resumed by the same study with the same search space, and from a journal
        that can be appended to."""
        if not self.run_dir.root.exists():
            return
        if not self.run_dir.root.is_dir():
            raise ConfigError(
                f"--out {self.run_dir.root}: is a file; expected a new or existing run directory"
            )
        if any(self.run_dir.root.iterdir()) and not self.run_dir.run_file.is_file():
            raise ConfigError(f"{self.run_dir.root}: exists but is not a run directory; choose another --out")
        if not self.run_dir.run_file.is_file():
            return
        info = self.run_dir.info()
        if info["storage"] == "journal" and self.storage_url == "journal":
            self.run_dir.check_resumable_journal()
        if info.get("study") != self.study_name:
            raise ConfigError(
                f"{self.run_dir.run_file}: study: holds study '{info.get('study')}', not '{self.study_name}'; "
                "pass --study with that name or choose another --out"
            )
        stored = SearchSpace.load(self.run_dir.space_file)
        if stored.model_dump(exclude={"trials"}) != self.space.model_dump(exclude={"trials"}):
            raise ConfigError(
                f"{self.run_dir.space_file}: the run was started with a different search space than "
                f"{self.space.source}; choose another --out or --study"
            )

    def open_study(self) -> optuna.Study:
        """Create or load the study and write run.json and space.yaml (the first writes of a search).

        Each write is skipped when the stored value is already equal, so resuming a finished search leaves the
        journal unchanged (an existing study is loaded: `create_study(load_if_exists=True)` appends a record)."""
        self.run_dir.root.mkdir(parents=True, exist_ok=True)
        if not self.run_dir.space_file.exists():
            write_text_atomic(self.run_dir.space_file, yaml.safe_dump(self.space.model_dump(mode="json")))
        info = {
            "study": self.study_name,
            "storage": self.storage_url,
            "objectives": self.space.objective_names,
            "directions": self.space.directions,
            "model": self.space.model,
            "seed": self.seed,
        }
        if not self.run_dir.run_file.is_file() or read_json(self.run_dir.run_file) != info:
            write_json_atomic(self.run_dir.run_file, info)
        study = self._load_or_create_study()
        # A resumed study gets a fresh random stream: re-seeding with the same seed would replay the plans
        # the first run already tried.
        study.sampler = make_sampler(
            self.space.sampler, self.seed + len(study.get_trials(deepcopy=False)), self.probe()
        )
        if study.metric_names != self.space.objective_names:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(self.space.objective_names)
        if study.user_attrs.get("model") != self.space.model:
            study.set_user_attr("model", self.space.model)
        return study

    def _load_or_create_study(self) -> optuna.Study:
        """Load the study when the storage holds it, else create it (a resume writes nothing here)."""
        storage = optuna.storages.get_storage(self.run_dir.storage(self.storage_url))
        sampler = make_sampler(self.space.sampler, self.seed, self.probe())
        pruner = optuna.pruners.NopPruner()
        try:
            storage.get_study_id_from_name(self.study_name)
        except KeyError:
            return optuna.create_study(
                storage=storage,
                study_name=self.study_name,
                directions=self.space.directions,
                sampler=sampler,
                pruner=pruner,
                load_if_exists=True,  # another process may have created it since
            )
        return optuna.load_study(study_name=self.study_name, storage=storage, sampler=sampler, pruner=pruner)

    def probe(self) -> PlanProbe:
        """Exact pre-training facts of a configuration (trainable parameters, feasibility) for the sampler."""
        return PlanProbe(self.space, self.layout)

    def settle_interrupted(self, study: optuna.Study) -> None:
        """Trials left RUNNING by a killed or interrupted search are failed, marked interrupted.

        Optuna has no public call that sets an attribute of another process's trial, so the reason goes through
        the storage's public API; the state through `study.tell`."""
        storage = optuna.storages.get_storage(self.run_dir.storage(self.storage_url))
        study_id = storage.get_study_id_from_name(self.study_name)
        for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            storage.set_trial_user_attr(
                storage.get_trial_id_from_study_id_trial_number(study_id, trial.number), "reason", INTERRUPTED
            )
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
            logger.info("trial %d was interrupted; marked failed", trial.number)

    def finished_count(self, study: optuna.Study) -> int:
        """Trials that count towards --trials: every finished one except interrupted ones."""
        finished = study.get_trials(
            deepcopy=False,
            states=(
                optuna.trial.TrialState.COMPLETE,
                optuna.trial.TrialState.PRUNED,
                optuna.trial.TrialState.FAIL,
            ),
        )
        return sum(1 for t in finished if t.user_attrs.get("reason") != INTERRUPTED)


def _model_layout(space: SearchSpace, spec: TrialSpec) -> ModelLayout:
    """Load the model once to read its layout (and fail early when the model or task is wrong); a model that
    cannot be found or loaded is reported under the space's `model` key."""
    task = load_task(space.task, Path(spec.task_base_dir), spec.seed)
    try:
        folder = resolve_model_path(space.model)
        model = task.load_model(folder, load_tokenizer(folder))
    except CheckpointError as error:
        raise CheckpointError(f"{space.source}: model: {error}") from None
    return ModelLayout.from_model(model, space.model)


def _check_budget_reachable(space: SearchSpace, layout: ModelLayout) -> None:
    """Refuse a `max_trainable_parameters` that even the space's cheapest plan exceeds: every trial would be
    infeasible, and the search would train them all for an empty front."""
    limit = space.constraints.max_trainable_parameters
    if limit is None:
        return
    cheapest = CheapestPlan.of(space, layout, enough=limit)
    if cheapest is not None and cheapest.cost > limit:
        raise ConfigError(
            f"{space.source}: constraints.max_trainable_parameters: no plan of the space fits {limit:,}; the "
            f"cheapest ({cheapest.plan.summary()}) costs {cheapest.cost:,} trainable parameters (adapter and "
            f"classifier head); expected a limit of at least {cheapest.cost:,}"
        )
