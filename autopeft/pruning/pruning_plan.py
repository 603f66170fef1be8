"""PruningPlan and its application: Light-PEFT's one-shot structural pruning of a base model.

Light-PEFT (Gu et al., "Light-PEFT: Lightening Parameter-Efficient Fine-Tuning via Early Pruning", Findings of
ACL 2024; METHODS.md §5, Phase P) removes attention heads and FFN neurons physically, so that fine-tuning and
inference run smaller GEMMs. This module turns the phase-E mask scores into a `PruningPlan` (`plan_pruning`),
slices a model in place (`apply_pruning`), slices a LoRA state dict trained on the unpruned model to match
(`slice_lora_state`), and re-applies a stored plan to an original checkpoint at load time (`load_pruned`): the
original files are never modified, and the plan ships next to the adapter.

GQA (METHODS.md §5, "GQA"): the paper covers multi-head attention only. Here a plan removes whole KV heads,
each with the `kv_groups` query heads that read it, so `num_key_value_groups` is unchanged. For multi-head
attention a KV head is simply a head.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig

from autopeft.errors import PlanError
from autopeft.model_layout import block_index
from autopeft.models import load_classifier
from autopeft.pruning.layout import FAMILIES, Family, PrunableBlock, PruningShape, prunable_blocks
from autopeft.storage.atomic_files import read_json, write_json_atomic

SCOPES = ("layerwise", "global")


@dataclass(frozen=True)
class PruningPlan:
    """Per layer, the KV heads and FFN neurons removed from a model of `shape` (original indices, sorted)."""

    shape: PruningShape
    pruned_heads: tuple[tuple[int, ...], ...]
    pruned_neurons: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        shape = self.shape
        _check_indices("pruned_heads", self.pruned_heads, shape.num_layers, shape.num_kv_heads)
        _check_indices("pruned_neurons", self.pruned_neurons, shape.num_layers, shape.intermediate_size)

    def kept_query_rows(self, layer: int) -> torch.Tensor:
        """Rows of q (and columns of the attention output projection) that `layer` keeps, in order."""
        return _kept_rows(self.shape.num_heads, self._removed_query_heads(layer), self.shape.head_dim)

    def kept_kv_rows(self, layer: int) -> torch.Tensor:
        """Rows of k and v that `layer` keeps, in order."""
        return _kept_rows(self.shape.num_kv_heads, set(self.pruned_heads[layer]), self.shape.head_dim)

    def kept_neurons(self, layer: int) -> torch.Tensor:
        """FFN neurons that `layer` keeps, in order."""
        return _kept_rows(self.shape.intermediate_size, set(self.pruned_neurons[layer]), 1)

    def head_keep(self) -> torch.Tensor:
        """`(num_layers, num_heads)` 0/1 per query head, for `PruningMasks.set_values`."""
        keep = torch.ones(self.shape.num_layers, self.shape.num_heads)
        for layer in range(self.shape.num_layers):
            keep[layer, sorted(self._removed_query_heads(layer))] = 0
        return keep

    def _removed_query_heads(self, layer: int) -> set[int]:
        """Query heads removed from `layer`: the `kv_groups` heads of each removed KV head."""
        groups = self.shape.kv_groups
        return {kv * groups + g for kv in self.pruned_heads[layer] for g in range(groups)}

    def neuron_keep(self) -> torch.Tensor:
        """`(num_layers, intermediate_size)` 0/1 per FFN neuron, for `PruningMasks.set_values`."""
        keep = torch.ones(self.shape.num_layers, self.shape.intermediate_size)
        for layer, removed in enumerate(self.pruned_neurons):
            keep[layer, list(removed)] = 0
        return keep

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; `from_dict` reads it back."""
        return {
            "shape": asdict(self.shape),
            "pruned_heads": [list(layer) for layer in self.pruned_heads],
            "pruned_neurons": [list(layer) for layer in self.pruned_neurons],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PruningPlan:
        """Parse `to_dict()` output; unknown or missing keys are a `PlanError` naming them."""
        _check_keys("pruning plan", data, {"shape", "pruned_heads", "pruned_neurons"})
        _check_keys("pruning plan: shape", data["shape"], set(PruningShape.__dataclass_fields__))
        return cls(
            PruningShape(**data["shape"]),
            _as_tuples("pruned_heads", data["pruned_heads"]),
            _as_tuples("pruned_neurons", data["pruned_neurons"]),
        )

    def save(self, path: Path) -> None:
        """Write the plan as JSON, atomically, to ship it next to the adapter it was made with."""
        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: Path) -> PruningPlan:
        """Read a plan written by `save`."""
        return cls.from_dict(read_json(path))


@dataclass(frozen=True)
class PruningResult:
    """The pruned model (the same object, changed in place) and its parameter counts after pruning."""

    model: nn.Module
    layer_parameters: tuple[int, ...]
    model_parameters: int
    removed_parameters: int


def plan_pruning(
    shape: PruningShape,
    head_scores: torch.Tensor,
    ffn_scores: torch.Tensor,
    head_ratio: float,
    ffn_ratio: float,
    head_scope: str = "layerwise",
    ffn_scope: str = "global",
) -> PruningPlan:
    """The plan that removes every item whose score is <= the ratio-quantile of its scope (METHODS.md §5).

    `head_scores` is `(num_layers, num_heads)` and `ffn_scores` `(num_layers, intermediate_size)`, normally
    `PruningMasks.head_scores()` / `ffn_scores()`. Under GQA a KV head is scored by the mean of its query
    heads' scores. The quantile is numpy's default (linear interpolation), as in the reference code. Two rules
    the reference code lacks: a ratio of 0 prunes nothing (the quantile would be the minimum, which `<=`
    prunes), so that `ratio = 0` is the PEFT-only control arm; and a layer never loses all its heads or all
    its neurons, because its attention or FFN could not compute: its best-scoring item (the first on ties)
    is kept.
    """
    _check_scores("head_scores", head_scores, (shape.num_layers, shape.num_heads))
    _check_scores("ffn_scores", ffn_scores, (shape.num_layers, shape.intermediate_size))
    kv_scores = head_scores.float().reshape(shape.num_layers, shape.num_kv_heads, shape.kv_groups).mean(-1)
    return PruningPlan(
        shape,
        _prune_by_quantile("head", kv_scores, head_ratio, head_scope),
        _prune_by_quantile("ffn", ffn_scores.float(), ffn_ratio, ffn_scope),
    )


def apply_pruning(model: nn.Module, plan: PruningPlan) -> PruningResult:
    """Remove the plan's heads and neurons from `model` in place, by slicing its linear layers.

    Must run on the plain base model, before peft wraps it: an adapter is sliced separately with
    `slice_lora_state`. Layers with nothing to remove keep their original weight tensors. The config keeps the
    original sizes, since it cannot express per-layer ones: store the plan and rebuild with `load_pruned`
    rather than saving the pruned model with `save_pretrained`.
    """
    blocks = _blocks_for(model, plan)
    parameters_before = sum(p.numel() for p in model.parameters())
    for block in blocks:
        _prune_heads(block, plan)
        _prune_neurons(block, plan)
    layer_parameters = tuple(sum(p.numel() for p in block.module.parameters()) for block in blocks)
    parameters_after = sum(p.numel() for p in model.parameters())
    return PruningResult(model, layer_parameters, parameters_after, parameters_before - parameters_after)


def slice_lora_state(state: Mapping[str, torch.Tensor], plan: PruningPlan) -> dict[str, torch.Tensor]:
    """Slice a LoRA state dict trained on the unpruned model so that it fits the pruned one (METHODS.md §5).

    `lora_B` loses the rows of pruned outputs (q/k/v heads, up/gate/intermediate neurons) and `lora_A` the
    columns of pruned inputs (attention output and down/output projections). Keys may carry the adapter name
    (`model.state_dict()`) or not (`get_peft_model_state_dict`); other keys are copied unchanged. DoRA
    magnitude vectors are refused: a column-pruned weight changes its norms, so no slice of them is exact.
    """
    family = FAMILIES[plan.shape.family]
    sliced = {}
    for key, tensor in state.items():
        if "lora_magnitude_vector" in key:
            raise PlanError(f"{key}: DoRA adapters cannot be sliced to a pruned base; expected plain LoRA")
        sliced[key] = _slice_lora_tensor(key, tensor, plan, family)
    return sliced


def load_pruned(
    source: str | Path | nn.Module, plan: PruningPlan | Path, num_labels: int | None = None
) -> nn.Module:
    """Load the original checkpoint `source` (a folder, or a freshly loaded model) and apply `plan` to it.

    This is how an exported Light-PEFT adapter is used: its base is the original checkpoint, pruned at load
    time by the plan stored next to the adapter. `num_labels` defaults to the checkpoint's own.
    """
    if isinstance(plan, Path):
        plan = PruningPlan.load(plan)
    if isinstance(source, nn.Module):
        return apply_pruning(source, plan).model
    folder = Path(source)
    labels = num_labels if num_labels is not None else AutoConfig.from_pretrained(folder).num_labels
    return apply_pruning(load_classifier(folder, labels, None), plan).model


def _check_indices(name: str, layers: tuple[tuple[int, ...], ...], num_layers: int, size: int) -> None:
    """Fail unless `layers` has one sorted, in-range index tuple per layer that leaves one item at least."""
    if len(layers) != num_layers:
        raise PlanError(f"pruning plan: {name}: expected {num_layers} layers, got {len(layers)}")
    for layer, indices in enumerate(layers):
        in_range = all(isinstance(i, int) and 0 <= i < size for i in indices)
        if not in_range or list(indices) != sorted(set(indices)):
            raise PlanError(
                f"pruning plan: {name}[{layer}]: expected sorted distinct indices in "
                f"0..{size - 1}, got {list(indices)}"
            )
        if len(indices) == size:
            raise PlanError(f"pruning plan: {name}[{layer}]: expected at most {size - 1} of {size} removed")


def _check_keys(where: str, data: Any, expected: set[str]) -> None:
    if not isinstance(data, Mapping) or set(data) != expected:
        found = sorted(data) if isinstance(data, Mapping) else type(data).__name__
        raise PlanError(f"{where}: expected keys {sorted(expected)}, got {found}")


def _as_tuples(name: str, layers: Any) -> tuple[tuple[int, ...], ...]:
    """JSON lists of index lists as tuples; anything else is a `PlanError` naming the key."""
    if not isinstance(layers, list) or not all(isinstance(layer, list) for layer in layers):
        raise PlanError(
            f"pruning plan: {name}: expected one list of indices per layer, got {type(layers).__name__}"
        )
    return tuple(tuple(layer) for layer in layers)


def _kept_rows(count: int, removed: set[int], size: int) -> torch.Tensor:
    """Indices of the rows of `count` blocks of `size` rows each, without the `removed` blocks."""
    return torch.tensor([b * size + i for b in range(count) if b not in removed for i in range(size)])


def _check_scores(name: str, scores: torch.Tensor, expected: tuple[int, int]) -> None:
    if tuple(scores.shape) != expected:
        raise PlanError(f"plan_pruning: {name}: expected shape {list(expected)}, got {list(scores.shape)}")


def _prune_by_quantile(
    what: str, scores: torch.Tensor, ratio: float, scope: str
) -> tuple[tuple[int, ...], ...]:
    """Per layer, the items scoring <= the `ratio`-quantile of their scope; each layer keeps its best item."""
    if not 0 <= ratio < 1:
        raise PlanError(f"plan_pruning: {what}_ratio: expected a value in [0, 1), got {ratio}")
    if scope not in SCOPES:
        raise PlanError(f"plan_pruning: {what}_scope: expected one of {list(SCOPES)}, got '{scope}'")
    if ratio == 0:
        return tuple(() for _ in scores)
    scope_scores = scores if scope == "layerwise" else scores.reshape(1, -1)
    threshold = torch.quantile(scope_scores.double(), ratio, dim=-1, keepdim=True)
    pruned = scores.double() <= threshold.reshape(-1, 1)
    emptied = pruned.all(-1)
    pruned[emptied, scores[emptied].argmax(-1)] = False
    return tuple(tuple(row.nonzero().flatten().tolist()) for row in pruned)


def _blocks_for(model: nn.Module, plan: PruningPlan) -> list[PrunableBlock]:
    """The blocks of a plain (not peft-wrapped) model that has exactly the plan's original sizes."""
    family, blocks = prunable_blocks(model)
    if len(blocks) != plan.shape.num_layers:
        raise PlanError(
            f"pruning plan: expected a model with {plan.shape.num_layers} layers, found {len(blocks)}"
        )
    for block in blocks:
        block.check(plan.shape)
        if block.linear(family.query) is not block.hook_point(family.query):
            raise PlanError(
                f"layer {block.index}: expected a plain base model; prune before peft wraps it "
                f"and slice the adapter with slice_lora_state"
            )
    return blocks


def _prune_heads(block: PrunableBlock, plan: PruningPlan) -> None:
    """Slice q/k/v output rows and attention-output input columns, and update the head-count attributes.

    Both families reshape with `-1` heads and keep `head_dim` and `num_key_value_groups` (unchanged, since
    whole KV groups go), so only informational counts such as BERT's `num_attention_heads` are updated.
    """
    if not plan.pruned_heads[block.index]:
        return
    family, query_rows = block.family, plan.kept_query_rows(block.index)
    _slice_linear(block.linear(family.query), query_rows, 0)
    _slice_linear(block.linear(family.key), plan.kept_kv_rows(block.index), 0)
    _slice_linear(block.linear(family.value), plan.kept_kv_rows(block.index), 0)
    _slice_linear(block.linear(family.attention_output), query_rows, 1)
    attention = block.module.get_submodule(family.attention)
    counts = {
        "num_attention_heads": block.num_heads,
        "num_heads": block.num_heads,
        "num_key_value_heads": block.num_kv_heads,
        "all_head_size": len(query_rows),
    }
    for name, value in counts.items():
        if isinstance(getattr(attention, name, None), int):
            setattr(attention, name, value)


def _prune_neurons(block: PrunableBlock, plan: PruningPlan) -> None:
    """Slice up/gate/intermediate output rows and down/output input columns."""
    if not plan.pruned_neurons[block.index]:
        return
    neurons = plan.kept_neurons(block.index)
    for name in block.family.ffn_inputs:
        _slice_linear(block.linear(name), neurons, 0)
    _slice_linear(block.linear(block.family.ffn_output), neurons, 1)


def _slice_linear(linear: nn.Linear, keep: torch.Tensor, dim: int) -> None:
    """Keep `keep` along `dim` (0: outputs, with the bias; 1: inputs) of `linear`, in place.

    In place rather than `transformers.pytorch_utils.prune_linear_layer`, which builds a new layer in the
    default dtype: this keeps the dtype, device, `requires_grad` and any hooks of the module.
    """
    keep = keep.to(linear.weight.device)
    linear.weight = _parameter_like(linear.weight, linear.weight.detach().index_select(dim, keep))
    if dim == 0 and linear.bias is not None:
        linear.bias = _parameter_like(linear.bias, linear.bias.detach()[keep])
    linear.out_features, linear.in_features = linear.weight.shape


def _parameter_like(old: torch.Tensor, data: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(data.clone(), requires_grad=old.requires_grad)


def _slice_lora_tensor(key: str, tensor: torch.Tensor, plan: PruningPlan, family: Family) -> torch.Tensor:
    """The slice of one state-dict entry that fits the pruned base (unchanged when no dimension is pruned)."""
    layer = block_index(key)
    part = "lora_B" if ".lora_B." in key else "lora_A" if ".lora_A." in key else None
    if layer is None or part is None:
        return tensor
    if layer >= plan.shape.num_layers:
        raise PlanError(
            f"{key}: layer {layer} is not in the pruning plan; expected 0..{plan.shape.num_layers - 1}"
        )
    module_type = key.split(f".{part}.")[0].split(f".{layer}.", 1)[1]
    keep = _lora_keep(module_type, part, layer, plan, family)
    if keep is None:
        return tensor
    return tensor.index_select(0 if part == "lora_B" else 1, keep.to(tensor.device)).clone()


def _lora_keep(
    module_type: str, part: str, layer: int, plan: PruningPlan, family: Family
) -> torch.Tensor | None:
    """The kept indices along the pruned side of a LoRA matrix of `module_type`, or None if it is unpruned."""
    sliced_sides = {
        ("lora_B", family.query): plan.kept_query_rows,
        ("lora_B", family.key): plan.kept_kv_rows,
        ("lora_B", family.value): plan.kept_kv_rows,
        ("lora_A", family.attention_output): plan.kept_query_rows,
        ("lora_A", family.ffn_output): plan.kept_neurons,
        **{("lora_B", name): plan.kept_neurons for name in family.ffn_inputs},
    }
    kept = sliced_sides.get((part, module_type))
    return kept(layer) if kept else None
