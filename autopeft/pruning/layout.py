"""PruningShape and PrunableBlock: where the attention heads and FFN neurons of a model live.

Light-PEFT (Gu et al., "Light-PEFT: Lightening Parameter-Efficient Fine-Tuning via Early Pruning", Findings of
ACL 2024; METHODS.md §5) masks and then removes whole attention heads and FFN neurons. Both need, per
transformer block, the projections that produce a head or neuron (q/k/v, up/gate/intermediate) and the one
that consumes it (the attention output and down/output projections). This module is that table for the two
supported families:

- `bert`: BERT and RoBERTa (`encoder.layer.N.attention.self.{query,key,value}`, `attention.output.dense`,
  `intermediate.dense`, `output.dense`);
- `llama`: LLaMA-like decoders with grouped KV heads (`model.layers.N.self_attn.{q,k,v,o}_proj`,
  `mlp.{gate,up,down}_proj`); Mistral and Qwen2 use the same names.

Block indices come from `model_layout.block_index`, so pruning speaks of the same layers as a `PeftPlan`.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from autopeft.errors import PlanError
from autopeft.model_layout import block_index


@dataclass(frozen=True)
class Family:
    """Module names, relative to a block, of one model family's prunable projections."""

    name: str
    attention: str  # the attention module that owns the head-size attribute
    head_dim_attribute: str
    query: str
    key: str
    value: str
    attention_output: str
    ffn_inputs: tuple[str, ...]  # produce neurons: their rows are sliced
    ffn_output: str  # consumes neurons: its columns are sliced


FAMILIES: dict[str, Family] = {
    "bert": Family(
        "bert",
        "attention.self",
        "attention_head_size",
        "attention.self.query",
        "attention.self.key",
        "attention.self.value",
        "attention.output.dense",
        ("intermediate.dense",),
        "output.dense",
    ),
    "llama": Family(
        "llama",
        "self_attn",
        "head_dim",
        "self_attn.q_proj",
        "self_attn.k_proj",
        "self_attn.v_proj",
        "self_attn.o_proj",
        ("mlp.gate_proj", "mlp.up_proj"),
        "mlp.down_proj",
    ),
}


@dataclass(frozen=True)
class PruningShape:
    """The per-layer sizes of an unpruned model, which a `PruningPlan` is validated against.

    For multi-head attention `num_kv_heads == num_heads`; for GQA each KV head serves `kv_groups` query heads.
    """

    family: str
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise PlanError(f"pruning plan: family: expected one of {sorted(FAMILIES)}, got '{self.family}'")
        for name in ("num_layers", "num_heads", "num_kv_heads", "head_dim", "intermediate_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise PlanError(f"pruning plan: {name}: expected an integer >= 1, got {value!r}")
        if self.num_heads % self.num_kv_heads:
            raise PlanError(
                f"pruning plan: num_heads: expected a multiple of num_kv_heads "
                f"({self.num_kv_heads}), got {self.num_heads}"
            )

    @property
    def kv_groups(self) -> int:
        """Query heads per KV head (1 for multi-head attention)."""
        return self.num_heads // self.num_kv_heads

    @classmethod
    def from_model(cls, model: nn.Module) -> PruningShape:
        """Read the sizes of `model` (plain or wrapped by peft); every layer must have layer 0's sizes."""
        family, blocks = prunable_blocks(model)
        first = blocks[0]
        shape = cls(
            family.name,
            len(blocks),
            first.num_heads,
            first.num_kv_heads,
            first.head_dim,
            first.intermediate_size,
        )
        for block in blocks:
            block.check(shape)
        return shape


@dataclass(frozen=True)
class PrunableBlock:
    """One transformer block and its family's module names."""

    index: int
    module: nn.Module
    family: Family

    def hook_point(self, name: str) -> nn.Module:
        """The module the block calls for `name`: a peft LoRA wrapper when the model is adapted."""
        return self.module.get_submodule(name)

    def linear(self, name: str) -> nn.Linear:
        """The plain `nn.Linear` holding the base weight of `name` (a LoRA wrapper's `base_layer`)."""
        module = self.hook_point(name)
        linear = getattr(module, "base_layer", module)
        assert isinstance(linear, nn.Linear)  # the families name only linear layers
        return linear

    @property
    def head_dim(self) -> int:
        return int(getattr(self.module.get_submodule(self.family.attention), self.family.head_dim_attribute))

    @property
    def num_heads(self) -> int:
        return self.linear(self.family.query).out_features // self.head_dim

    @property
    def num_kv_heads(self) -> int:
        return self.linear(self.family.key).out_features // self.head_dim

    @property
    def intermediate_size(self) -> int:
        return self.linear(self.family.ffn_output).in_features

    def check(self, shape: PruningShape) -> None:
        """Fail unless this block has the sizes of `shape`, naming the layer and the size that differs."""
        found = {
            "family": self.family.name,
            "num_heads": self.num_heads,
            "num_kv_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "intermediate_size": self.intermediate_size,
        }
        for name, value in found.items():
            expected = getattr(shape, name)
            if value != expected:
                raise PlanError(
                    f"layer {self.index}: expected {name} {expected} (from the pruning plan), "
                    f"found {value}; the plan was made for another model"
                )


def prunable_blocks(model: nn.Module) -> tuple[Family, list[PrunableBlock]]:
    """The family of `model` and its blocks in layer order; a model of no known family is a `PlanError`."""
    for family in FAMILIES.values():
        blocks = _blocks_of(model, family)
        if blocks:
            return family, blocks
    raise PlanError(
        "structural pruning: expected a BERT-like model (attention.self.query, "
        "intermediate.dense) or a LLaMA-like model (self_attn.q_proj, mlp.gate_proj); "
        "found neither"
    )


def _blocks_of(model: nn.Module, family: Family) -> list[PrunableBlock]:
    """Blocks of `model` that hold `family`'s query projection, found by module name like `ModelLayout`."""
    suffix = "." + family.query
    blocks = {}
    for name, _ in model.named_modules():
        index = block_index(name)
        if name.endswith(suffix) and index is not None:
            blocks[index] = PrunableBlock(index, model.get_submodule(name.removesuffix(suffix)), family)
    return [blocks[index] for index in sorted(blocks)]
