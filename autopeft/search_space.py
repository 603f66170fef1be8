"""SearchSpace: the YAML a user writes, parsed once into typed settings, and `sample()` that turns an
Optuna trial's suggestions into a `PeftPlan`.

Dimensions: layer selection, candidate module types, rank choices with a sharing granularity, the alpha rule,
dropout, rsLoRA and init. The `methods:` block is the slot the method controllers fill (one key per registry
entry). Every message names the file, the key path and what was expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    ValidationError,
    field_validator,
    model_validator,
)

from autopeft.budget import BudgetConfig
from autopeft.config_error import config_error_from, key_path
from autopeft.errors import ConfigError, PlanError
from autopeft.methods import METHODS, first_clash
from autopeft.model_layout import ModelLayout, short_module_name
from autopeft.objectives import Direction, ObjectiveConfig, check_objectives
from autopeft.plan import LoraInit, ModuleSetting, PeftPlan
from autopeft.tasks.task import TaskConfig

if TYPE_CHECKING:
    import optuna

_STRICT = ConfigDict(extra="forbid", frozen=True)
_PLAN_SETTINGS = ("dropout", "use_rslora", "init")  # dimensions sampled straight into PeftPlan fields


class ConstraintsConfig(BaseModel):
    """Feasibility limits, recorded with `trial.set_constraint` (a plan is feasible when all are <= 0)."""

    model_config = _STRICT

    max_trainable_parameters: int | None = Field(default=None, ge=1)


class LayersDimension(BaseModel):
    """Which blocks get adapters: all, each on/off, or the top k for k in `top_choices`."""

    model_config = _STRICT

    mode: Literal["all", "per_layer", "top"] = "all"
    top_choices: tuple[int, ...] | None = None

    @model_validator(mode="after")
    def _top_has_choices(self) -> LayersDimension:
        if self.mode == "top" and not self.top_choices:
            raise ValueError("mode 'top' needs 'top_choices', a list of layer counts >= 1")
        if self.top_choices and min(self.top_choices) < 1:
            raise ValueError(f"top_choices: expected layer counts >= 1, got {min(self.top_choices)}")
        return self


class RankDimension(BaseModel):
    """Rank choices (0 = module not adapted) and how widely one sampled rank is shared."""

    model_config = _STRICT

    choices: tuple[int, ...] = Field(min_length=1)
    share: Literal["global", "module_type", "layer", "layer_module"] = "module_type"

    @field_validator("choices")
    @classmethod
    def _ranks(cls, choices: tuple[int, ...]) -> tuple[int, ...]:
        for index, rank in enumerate(choices):
            if rank < 0:
                raise ValueError(f"choices[{index}]: expected an integer >= 0 (0 = not adapted), got {rank}")
        if max(choices) < 1:
            raise ValueError("expected at least one rank >= 1")
        return choices


class AlphaDimension(BaseModel):
    """alpha = `value` (fixed) or alpha = c·r with c from `ratio` (proportional)."""

    model_config = _STRICT

    rule: Literal["fixed", "proportional"] = "proportional"
    value: float = Field(default=16.0, gt=0)
    ratio: tuple[PositiveFloat, ...] = Field(default=(2.0,), min_length=1)


class DimensionsConfig(BaseModel):
    """Everything the sampler chooses. Each choice of `dropout`, `use_rslora` and `init` is checked against
    `PeftPlan`'s own field rules (`SearchSpace._plan_settings_are_valid`), so no sample can build a bad plan."""

    model_config = _STRICT

    layers: LayersDimension = LayersDimension()
    modules: tuple[str, ...] = Field(
        min_length=1, description="Candidate module types (short names allowed)."
    )
    rank: RankDimension
    alpha: AlphaDimension = AlphaDimension()
    dropout: tuple[float, ...] = Field(default=(0.0,), min_length=1)
    use_rslora: tuple[bool, ...] = Field(default=(False,), min_length=1)
    init: tuple[LoraInit, ...] = Field(default=("default",), min_length=1)


class SamplerConfig(BaseModel):
    """Which Optuna sampler proposes plans."""

    model_config = _STRICT

    name: Literal["autopeft", "nsga2", "tpe", "gp", "random"] = Field(
        default="autopeft",
        description="autopeft (exact-cost EHVI with early stopping and signal warm starts; "
        "benchmarks/README.md), nsga2, tpe, gp or random.",
    )
    population_size: int = Field(default=8, ge=2, description="NSGA-II population.")
    startup_trials: int | None = Field(
        default=None,
        ge=1,
        description="Trials before the model: random (TPE/GP; default 4) or the first random and then the "
        "cheapest plans (autopeft; default 2, benchmarks/README.md).",
    )


class SearchSpace(BaseModel):
    """A whole search: model, task, budget, objectives, constraints, dimensions, methods and sampler."""

    model_config = _STRICT

    model: str = Field(description="`minilm`, a local Hugging Face folder or a hub id.")
    task: TaskConfig
    budget: BudgetConfig = BudgetConfig()
    objectives: tuple[ObjectiveConfig, ...] = Field(min_length=1)
    constraints: ConstraintsConfig = ConstraintsConfig()
    dimensions: DimensionsConfig
    methods: dict[str, dict[str, Any]] = Field(default_factory=dict, description="Method mix; see methods/.")
    sampler: SamplerConfig = SamplerConfig()
    seed: int = 0
    trials: int = Field(default=8, ge=1, description="Trials to run when --trials is not given.")
    source: str = Field(default="search space", exclude=True)

    @field_validator("objectives")
    @classmethod
    def _unique_objectives(cls, objectives: tuple[ObjectiveConfig, ...]) -> tuple[ObjectiveConfig, ...]:
        names = [o.name for o in objectives]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"expected each objective once, got {name!r} twice")
        return objectives

    @field_validator("methods")
    @classmethod
    def _registered_methods(cls, methods: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for key in methods:
            if key not in METHODS:
                raise ValueError(f"unknown method '{key}'; expected one of {sorted(METHODS)}")
        return methods

    @model_validator(mode="after")
    def _plan_settings_are_valid(self) -> SearchSpace:
        """Every choice of a plan-wide setting must be one `PeftPlan` accepts: checked here, when the space is
        parsed, because a sampled bad value would only fail after the run directory was written."""
        for field in _PLAN_SETTINGS:
            for index, choice in enumerate(getattr(self.dimensions, field)):
                try:
                    PeftPlan.model_validate({"adapters": (), field: choice})
                except ValidationError as error:
                    raise ValueError(f"dimensions.{field}[{index}]: {_problem(error)[1]}") from None
        return self

    @model_validator(mode="after")
    def _method_blocks_are_valid(self) -> SearchSpace:
        """Every choice of every method knob must validate, and no two clashing methods may both be always on.
        A message names the knob that failed, with the index of its choice (`methods.ist.mode[1]`)."""
        always_on = []
        for key, block in self.methods.items():
            config_class = METHODS[key].config_class
            unknown = sorted(set(block) - set(config_class.model_fields))
            if unknown:
                raise ValueError(
                    f"methods.{key}.{unknown[0]}: unknown key; expected one of "
                    f"{sorted(config_class.model_fields)}"
                )
            for field, value in block.items():
                if isinstance(value, list) and not value:
                    raise ValueError(
                        f"methods.{key}.{field}: expected a value or a non-empty list of choices"
                    )
            candidates = _method_candidates(block)
            for field, index, candidate in candidates:
                try:
                    config_class.model_validate(candidate)
                except ValidationError as error:
                    location, detail = _problem(error)
                    failing = str(location[0]) if location else field
                    where = _knob_path(block, failing, index if failing == field else 0)
                    raise ValueError(f"methods.{key}.{where}: {detail}") from None
            if all(config_class.model_validate(c).is_enabled() for _, _, c in candidates):
                always_on.append(key)
        clash = first_clash(always_on)
        if clash is not None:
            raise ValueError(
                f"methods.{clash[0]}: cannot be combined with '{clash[1]}' while both are always "
                "on (METHODS.md §7); give one of them an off choice"
            )
        return self

    @model_validator(mode="after")
    def _objectives_fit_the_task(self) -> SearchSpace:
        check_objectives(self.objectives, self.task)
        return self

    @classmethod
    def load(cls, path: str | Path) -> SearchSpace:
        """Parse and validate a YAML file; every problem is a `ConfigError` naming file and key."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{path}: file not found; expected a search-space YAML file") from None
        except (IsADirectoryError, UnicodeDecodeError) as error:
            raise ConfigError(
                f"{path}: cannot read it as a YAML text file ({type(error).__name__})"
            ) from None
        return cls.from_yaml(text, str(path))

    @classmethod
    def from_yaml(cls, text: str, source: str) -> SearchSpace:
        """Parse YAML text; `source` names it in messages."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f"line {mark.line + 1}: " if mark is not None else ""
            raise ConfigError(f"{source}: {where}invalid YAML ({getattr(error, 'problem', error)})") from None
        if not isinstance(data, dict):
            raise ConfigError(
                f"{source}: expected a mapping of keys (model, task, ...), got {type(data).__name__}"
            )
        try:
            return cls.model_validate({**data, "source": source})
        except ValidationError as error:
            raise config_error_from(error, source) from None

    @property
    def directions(self) -> list[Direction]:
        return [o.resolved_direction(self.task) for o in self.objectives]

    @property
    def objective_names(self) -> list[str]:
        return [o.name for o in self.objectives]

    def module_types_for(self, layout: ModelLayout) -> list[str]:
        """Resolve the candidate module names against the model; an unknown one names its key."""
        resolved: list[str] = []
        for index, alias in enumerate(self.dimensions.modules):
            try:
                module_type = layout.resolve_module_type(alias)
            except PlanError as error:
                raise ConfigError(f"{self.source}: dimensions.modules[{index}]: {error}") from None
            if module_type in resolved:
                raise ConfigError(
                    f"{self.source}: dimensions.modules[{index}]: '{alias}' names {module_type}, as "
                    f"dimensions.modules[{resolved.index(module_type)}] does; expected each module type once"
                )
            resolved.append(module_type)
        return resolved

    def check_against(self, layout: ModelLayout) -> None:
        """Fail before any trial runs when the space does not fit the model."""
        self.module_types_for(layout)
        top = self.dimensions.layers.top_choices or ()
        if top and max(top) > layout.num_layers:
            raise ConfigError(
                f"{self.source}: dimensions.layers.top_choices: expected counts <= {layout.num_layers} "
                f"(the model's layers), got {max(top)}"
            )

    def sample(self, trial: optuna.trial.BaseTrial, layout: ModelLayout) -> PeftPlan:
        """Ask the trial for every dimension and build the plan (every dimension is always asked,
        so the space stays static for model-based samplers)."""
        dims = self.dimensions
        module_types = self.module_types_for(layout)
        layers = self._sample_layers(trial, layout.num_layers)
        ratio = _choose(trial, "alpha_ratio", dims.alpha.ratio) if dims.alpha.rule == "proportional" else None
        adapters = []
        for layer in range(layout.num_layers):
            for module_type in module_types:
                sampled = self._sample_rank(trial, layer, module_type)
                rank = sampled if layer in layers else 0
                alpha = dims.alpha.value if ratio is None else max(ratio * rank, 1e-3)
                adapters.append(ModuleSetting(layer=layer, module=module_type, rank=rank, alpha=alpha))
        return PeftPlan(
            adapters=tuple(adapters),
            dropout=_choose(trial, "dropout", dims.dropout),
            use_rslora=_choose(trial, "use_rslora", dims.use_rslora),
            init=_choose(trial, "init", dims.init),
            methods=self._sample_methods(trial),
        )

    def _sample_methods(self, trial: optuna.trial.BaseTrial) -> dict[str, dict[str, Any]]:
        """Each knob given as a list is a categorical dimension `<method>.<knob>`. A method whose sampled config
        is off is left out, and so is one that clashes with a method enabled before it (METHODS.md §7)."""
        chosen: dict[str, dict[str, Any]] = {}
        for key, block in self.methods.items():
            sampled = {
                field: _choose(trial, f"{key}.{field}", tuple(value) if isinstance(value, list) else (value,))
                for field, value in block.items()
            }
            config = METHODS[key].config_class.model_validate(sampled)
            if config.is_enabled() and first_clash([*chosen, key]) is None:
                chosen[key] = config.model_dump(mode="json")
        return chosen

    def _sample_layers(self, trial: optuna.trial.BaseTrial, num_layers: int) -> set[int]:
        layers = self.dimensions.layers
        if layers.mode == "all":
            return set(range(num_layers))
        if layers.mode == "top":
            count = _choose(trial, "layers.top", layers.top_choices or ())
            return set(range(num_layers - count, num_layers))
        return {i for i in range(num_layers) if trial.suggest_categorical(f"layer.{i}", [True, False])}

    def _sample_rank(self, trial: optuna.trial.BaseTrial, layer: int, module_type: str) -> int:
        share = self.dimensions.rank.share
        name = {
            "global": "rank",
            "module_type": f"rank.{short_module_name(module_type)}",
            "layer": f"rank.L{layer}",
            "layer_module": f"rank.L{layer}.{short_module_name(module_type)}",
        }[share]
        return int(trial.suggest_categorical(name, list(self.dimensions.rank.choices)))


def _method_candidates(block: dict[str, Any]) -> list[tuple[str, int | None, dict[str, Any]]]:
    """Configs to validate for a method block: each choice of each knob, the other knobs at their first choice.
    Each comes with the knob it varies and the index of the choice (None for a single value)."""
    first = {field: value[0] if isinstance(value, list) else value for field, value in block.items()}
    candidates: list[tuple[str, int | None, dict[str, Any]]] = []
    for field, value in block.items():
        if isinstance(value, list):
            candidates += [(field, index, {**first, field: choice}) for index, choice in enumerate(value)]
        else:
            candidates.append((field, None, first))
    return candidates or [("(defaults)", None, {})]


def _knob_path(block: dict[str, Any], field: str, index: int | None) -> str:
    """The key path of one choice of a method knob: `active_layer_ratio[1]` for a list, the bare name else."""
    return f"{field}[{index or 0}]" if isinstance(block.get(field), list) else field


def _problem(error: ValidationError) -> tuple[tuple[str | int, ...], str]:
    """Where pydantic found the first problem (its `loc`) and the message `config_error_from` words for it."""
    location = tuple(error.errors(include_url=False)[0]["loc"])
    message = str(config_error_from(error, "")).removeprefix(": ")
    return location, (message.removeprefix(f"{key_path(location)}: ") if location else message)


def _choose(trial: optuna.trial.BaseTrial, name: str, choices: tuple[Any, ...]) -> Any:
    """A categorical suggestion, or the only value without asking (keeps fixed settings out of the space)."""
    if len(choices) == 1:
        return choices[0]
    return trial.suggest_categorical(name, list(choices))
