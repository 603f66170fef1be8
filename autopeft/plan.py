"""PeftPlan: the searched object, and the one thing the search, the trial, the export and the dashboards speak.

A plan says, for every (layer, module type) of a model, the rank and alpha of its adapter (rank 0 = not adapted),
plus plan-wide settings (dropout, init, rsLoRA) and the method controllers to run with their configs.
"""

from __future__ import annotations

import json
import re
import warnings
from collections import Counter
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from autopeft import __version__
from autopeft.config_error import config_error_from
from autopeft.errors import PlanError
from autopeft.model_layout import LinearModule, ModelLayout, short_module_name

# Inits that keep the base weights untouched (METHODS.md §6); base-modifying inits arrive with their controllers.
LoraInit = Literal["default", "gaussian", "orthogonal"]


class ModuleSetting(BaseModel):
    """The adapter of one (layer, module type): LoRA rank and alpha; rank 0 means the module is left alone."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    layer: int = Field(ge=0, description="0-based index of the transformer block.")
    module: str = Field(min_length=1, description="Module type inside the block, e.g. attention.self.query.")
    rank: int = Field(ge=0, description="LoRA rank; 0 leaves the module out of the adapter.")
    alpha: float = Field(
        gt=0, description="LoRA alpha; the scaling is alpha/rank (alpha/sqrt(rank) with rsLoRA)."
    )


class PeftPlan(BaseModel):
    """A complete PEFT configuration for one model, independent of Optuna, Ray and peft."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    autopeft_version: str = Field(default=__version__, description="Version that wrote the plan.")
    adapters: tuple[ModuleSetting, ...] = Field(
        description="One entry per (layer, module) the plan mentions."
    )
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description="LoRA dropout on every adapted module.")
    init: LoraInit = Field(default="default", description="LoRA initialisation (METHODS.md §6).")
    use_rslora: bool = Field(default=False, description="Scale by alpha/sqrt(rank) instead of alpha/rank.")
    methods: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Method controllers to run, keyed by registry key, with their configs.",
    )

    @model_validator(mode="after")
    def _one_entry_per_module(self) -> PeftPlan:
        seen = Counter((a.layer, a.module) for a in self.adapters)
        repeated = [f"layer {layer} {module}" for (layer, module), count in seen.items() if count > 1]
        if repeated:
            raise ValueError(f"expected each (layer, module) once, got {repeated[0]} more than once")
        return self

    # ----- JSON round trip -------------------------------------------------------------------------------
    def to_json(self) -> str:
        """The plan as indented JSON, the format of `plan.json` in a run directory."""
        return json.dumps(self.model_dump(mode="json"), indent=2)

    @classmethod
    def from_json(cls, text: str, source: str = "plan.json") -> PeftPlan:
        """Parse a plan; errors name `source` and the key. Keys from a newer autopeft are dropped with a warning."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise PlanError(f"{source}: not valid JSON ({error.msg} at line {error.lineno})") from None
        if not isinstance(data, dict):
            raise PlanError(f"{source}: expected a JSON object, got {type(data).__name__}")
        return cls.from_dict(data, source)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "plan") -> PeftPlan:
        """Validate a plain dict as a plan (see `from_json`)."""
        data = _drop_keys_from_newer_version(data, source)
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            raise PlanError(str(config_error_from(error, source))) from None

    # ----- questions about the plan ----------------------------------------------------------------------
    @property
    def adapted(self) -> tuple[ModuleSetting, ...]:
        """The entries with rank >= 1, in plan order."""
        return tuple(a for a in self.adapters if a.rank > 0)

    def modules(self, layout: ModelLayout) -> tuple[LinearModule, ...]:
        """The model's module for each entry of `adapters`, in order; a missing one is a `PlanError` naming the
        entry. The one place a plan entry is looked up in a model."""
        found = []
        for index, adapter in enumerate(self.adapters):
            try:
                found.append(layout.find(adapter.layer, adapter.module))
            except PlanError as error:
                raise PlanError(f"adapters[{index}]: {error}") from None
        return tuple(found)

    def validate_for(self, layout: ModelLayout) -> None:
        """Check the plan against a concrete model; raise `PlanError` naming the key. How the plan's methods
        combine is the method registry's rule (`autopeft.methods.method_mix.MethodMix`), not the plan's."""
        self.modules(layout)
        if not self.adapted:
            raise PlanError("adapters: the plan adapts no module; expected at least one rank >= 1")

    def trainable_parameters(self, layout: ModelLayout) -> int:
        """Exact count of parameters peft will train: r·(in + out) per adapted module plus the full head."""
        lora = sum(
            adapter.rank * (module.in_features + module.out_features)
            for adapter, module in zip(self.adapters, self.modules(layout), strict=True)
        )
        return lora + layout.head_parameters

    def summary(self) -> str:
        """One line for tables: the layers touched and the rank per module type."""
        adapted = self.adapted
        if not adapted:
            return "no adapters"
        layers = sorted({a.layer for a in adapted})
        ranks: dict[str, list[int]] = {}
        for adapter in adapted:
            ranks.setdefault(short_module_name(adapter.module), []).append(adapter.rank)
        parts = [f"{name}:r{_range(values)}" for name, values in ranks.items()]
        methods = "+".join(["lora", *self.methods])
        return f"{methods} L{_span(layers)} " + " ".join(parts)

    # ----- conversion to peft ----------------------------------------------------------------------------
    def lora_config_kwargs(self, layout: ModelLayout) -> dict[str, Any]:
        """Keyword arguments for `peft.LoraConfig` with exact module names (METHODS.md §1.1).

        Ranks and alphas go into `rank_pattern`/`alpha_pattern` keyed by `re.escape(full_name)`, which cannot
        collide, so dict order never matters. Modules at rank 0 are left out, since LoRA needs r >= 1.
        """
        names, rank_pattern, alpha_pattern = [], {}, {}
        for adapter, module in zip(self.adapters, self.modules(layout), strict=True):
            if adapter.rank == 0:
                continue
            name = module.name
            names.append(name)
            rank_pattern[re.escape(name)] = adapter.rank
            alpha_pattern[re.escape(name)] = adapter.alpha
        first = self.adapted[0]
        return {
            "r": first.rank,
            "lora_alpha": first.alpha,
            "target_modules": names,
            "rank_pattern": rank_pattern,
            "alpha_pattern": alpha_pattern,
            "lora_dropout": self.dropout,
            "use_rslora": self.use_rslora,
            "init_lora_weights": True if self.init == "default" else self.init,
            "modules_to_save": list(layout.head_names),
        }


def _drop_keys_from_newer_version(data: dict[str, Any], source: str) -> dict[str, Any]:
    """A plan from a newer autopeft may carry keys this version does not know: warn, name them, drop them."""
    written_by = str(data.get("autopeft_version", __version__))
    if _version_tuple(written_by) <= _version_tuple(__version__):
        return data
    unknown = sorted(set(data) - set(PeftPlan.model_fields))
    if unknown:
        warnings.warn(
            f"{source}: written by autopeft {written_by} (this is {__version__}); ignoring keys {unknown}. "
            "Upgrade autopeft to use them.",
            stacklevel=3,
        )
    return {key: value for key, value in data.items() if key not in unknown}


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def _span(values: list[int]) -> str:
    contiguous = values == list(range(values[0], values[-1] + 1))
    if len(values) > 1 and contiguous:
        return f"{values[0]}-{values[-1]}"
    return ",".join(map(str, values))


def _range(values: list[int]) -> str:
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}-{high}"
