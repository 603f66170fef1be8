"""ModelLayout: the transformer blocks of a model and the linear modules inside each block.

A `PeftPlan` speaks of (layer, module type) pairs; peft speaks of full module names. The layout is the
translation table between the two, read once from a concrete model, so that a plan can be validated and its
trainable parameters counted exactly without building the peft model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from autopeft.errors import PlanError

# The first `.<container>.<index>.` group of a module name is its block (BERT `encoder.layer.N`,
# LLaMA `model.layers.N`, GPT-2 `transformer.h.N`).
_BLOCK_NAME = re.compile(
    r"^(?P<prefix>.*?\b(?:layer|layers|h|blocks|block))\.(?P<index>\d+)\.(?P<suffix>.+)$"
)
# Sub-modules peft adds inside a wrapped layer (a layout read from a peft model maps back to the base names).
_PEFT_PART = re.compile(r"\.(lora_[A-Za-z_]+|modules_to_save|original_module)(\.|$)")
# Classification heads that peft trains in full (`modules_to_save`) for sequence classification.
_HEAD_NAMES = ("classifier", "score")


@runtime_checkable
class _WrapsBaseModel(Protocol):
    """A peft wrapper: the model it adapts is `get_base_model()` (the isinstance check is a hasattr)."""

    def get_base_model(self) -> nn.Module: ...


@dataclass(frozen=True)
class LinearModule:
    """One adaptable linear map inside a block, with its shape in the nn.Linear (out, in) layout."""

    name: str
    layer: int
    module_type: str
    in_features: int
    out_features: int


@dataclass(frozen=True)
class ModelLayout:
    """Blocks, their linear modules and the trainable head of a sequence-classification model."""

    model_name: str
    num_layers: int
    modules: tuple[LinearModule, ...]
    head_names: tuple[str, ...]
    head_parameters: int

    @classmethod
    def from_model(cls, model: nn.Module, model_name: str = "model") -> ModelLayout:
        """Read the layout of `model` (plain or wrapped by peft); fails when it has no transformer blocks."""
        linear_modules = tuple(_block_linears(model))
        if not linear_modules:
            raise PlanError(f"{model_name}: no transformer blocks with linear layers were found")
        base = model.get_base_model() if isinstance(model, _WrapsBaseModel) else model
        heads = tuple(name for name, _ in base.named_children() if name in _HEAD_NAMES)
        head_modules = [getattr(base, head) for head in heads]
        head_parameters = sum(
            p.numel() for head in head_modules for p in getattr(head, "original_module", head).parameters()
        )
        return cls(
            model_name=model_name,
            num_layers=1 + max(m.layer for m in linear_modules),
            modules=linear_modules,
            head_names=heads,
            head_parameters=head_parameters,
        )

    @property
    def module_types(self) -> tuple[str, ...]:
        """Module types in model order, e.g. `attention.self.query` or `self_attn.q_proj`."""
        return tuple(dict.fromkeys(m.module_type for m in self.modules))

    def find(self, layer: int, module_type: str) -> LinearModule:
        """The module of `module_type` in block `layer`; a missing one is an error that names it."""
        module = self._by_position.get((layer, module_type))
        if module is not None:
            return module
        if not 0 <= layer < self.num_layers:
            raise PlanError(
                f"{self.model_name}: layer {layer} does not exist; expected 0..{self.num_layers - 1}"
            )
        raise PlanError(
            f"{self.model_name}: layer {layer} has no module '{module_type}'; "
            f"expected one of {list(self.module_types)}"
        )

    @cached_property
    def _by_position(self) -> dict[tuple[int, str], LinearModule]:
        """(layer, module type) -> module: `find` runs for every entry of every candidate plan the sampler costs."""
        return {(m.layer, m.module_type): m for m in self.modules}

    def resolve_module_type(self, alias: str) -> str:
        """Turn a short name (`query`, `q_proj`, `output.dense`) into the one module type it ends with."""
        if alias in self.module_types:
            return alias
        matches = [t for t in self.module_types if t.endswith("." + alias) or short_module_name(t) == alias]
        if len(matches) == 1:
            return matches[0]
        found = "matches several: " + ", ".join(matches) if matches else "matches none"
        raise PlanError(
            f"{self.model_name}: module '{alias}' {found}; expected one of {list(self.module_types)}"
        )


def block_index(name: str) -> int | None:
    """The transformer block a module name belongs to (`...encoder.layer.3.attention...` -> 3), or None."""
    match = _BLOCK_NAME.match(name)
    return int(match["index"]) if match else None


def module_key(layer: int, module_type: str) -> str:
    """`L3.query`: how method signals and the sampler name a (block, module type) pair, whatever the model."""
    return f"L{layer}.{short_module_name(module_type)}"


def module_key_of(name: str) -> str | None:
    """The `module_key` of a full module name (`encoder.layer.3.attention.self.query` -> `L3.query`), or None
    for a module outside the blocks."""
    match = _BLOCK_NAME.match(name)
    return module_key(int(match["index"]), match["suffix"]) if match else None


def short_module_name(module_type: str) -> str:
    """`attention.self.query` -> `query`, `intermediate.dense` -> `intermediate`, `mlp.up_proj` -> `up_proj`."""
    name = re.sub(r"\.dense$", "", module_type)
    return re.sub(r"^(attention\.self|self_attn|mlp|attn)\.", "", name)


def _block_linears(model: nn.Module) -> list[LinearModule]:
    """Every nn.Linear (or GPT-2 Conv1D) inside a numbered block, with its (out, in) shape."""
    found = []
    for wrapped_name, module in model.named_modules():
        name = wrapped_name.removeprefix("base_model.model.").removesuffix(".base_layer")
        shape = _linear_shape(module)
        match = _BLOCK_NAME.match(name)
        if shape is None or match is None or _PEFT_PART.search(name):
            continue
        out_features, in_features = shape
        found.append(LinearModule(name, int(match["index"]), match["suffix"], in_features, out_features))
    return found


def _linear_shape(module: nn.Module) -> tuple[int, int] | None:
    """(out, in) of a linear map, or None when the module is not one peft's LoRA adapts as a matrix."""
    if isinstance(module, nn.Linear):
        return module.out_features, module.in_features
    if type(module).__name__ == "Conv1D":
        weight = getattr(module, "weight", None)
        if isinstance(weight, torch.Tensor):
            in_features, out_features = weight.shape  # Conv1D stores (in, out)
            return out_features, in_features
    return None
