"""PruningMasks: trainable head and FFN-neuron masks for Light-PEFT's estimation phase, installed by hooks.

Phase E of Light-PEFT (Gu et al., Findings of ACL 2024; METHODS.md §5) trains one fp32 mask per attention
head (`m^A`) and per FFN neuron (`m^F`), initialised to 1 and pulled down by an L1 term; their final values
score the items that phase P removes. The masks are applied without editing model code, by forward-pre-hooks
on the two projections that consume heads and neurons:

- heads: the attention output projection (`attention.output.dense`, `self_attn.o_proj`); its input
  `[B, T, H·d]` is viewed as `[B, T, H, d]` and each head is multiplied by its mask;
- neurons: the down/output projection (`output.dense`, `mlp.down_proj`); its input, the post-activation FFN
  output, is multiplied element-wise.

Under peft the hook sits on the LoRA wrapper, not on its `base_layer`, so the mask scales the input of the
base weight *and* of the LoRA path. That is what physical pruning does: removing a head deletes the matching
input columns of both `W0` and `lora_A` (`slice_lora_state`), so a masked model equals the pruned one. A hook
on `base_layer` would leave `lora_A` reading the masked-out head and break that equality.

The mask parameters are not registered in the model: they stay out of its `state_dict` and the saved adapter,
and the caller puts `parameters()` in their own optimizer group (METHODS.md §5, Phase E step 2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from autopeft.pruning.layout import PrunableBlock, PruningShape, prunable_blocks

PreHook = Callable[[nn.Module, tuple[torch.Tensor, ...]], tuple[torch.Tensor, ...]]


@dataclass
class PruningMasks:
    """Per-layer head masks `(num_heads,)` and FFN masks `(intermediate_size,)`, and their hooks."""

    shape: PruningShape
    head_masks: tuple[nn.Parameter, ...]
    ffn_masks: tuple[nn.Parameter, ...]
    handles: list[RemovableHandle] = field(default_factory=list)

    def parameters(self) -> list[nn.Parameter]:
        """Every mask parameter, for the masks' own optimizer group."""
        return [*self.head_masks, *self.ffn_masks]

    def l1(self) -> torch.Tensor:
        """`Σ|m^A| + Σ|m^F|`, the regulariser that phase E adds to the task loss with weight λ1."""
        return torch.stack([mask.abs().sum() for mask in self.parameters()]).sum()

    def head_scores(self) -> torch.Tensor:
        """The head masks as a detached `(num_layers, num_heads)` tensor: phase P's head scores."""
        return torch.stack([mask.detach() for mask in self.head_masks]).clone()

    def ffn_scores(self) -> torch.Tensor:
        """The FFN masks as a detached `(num_layers, intermediate_size)` tensor: phase P's neuron scores."""
        return torch.stack([mask.detach() for mask in self.ffn_masks]).clone()

    def set_values(self, head_values: torch.Tensor, ffn_values: torch.Tensor) -> None:
        """Overwrite the masks with `(num_layers, num_heads)` and `(num_layers, intermediate_size)` values.

        Used to reset the masks to 1, or to zero exactly the items of a plan (`PruningPlan.head_keep()`,
        `neuron_keep()`), which makes the masked model compute what the pruned model computes.
        """
        with torch.no_grad():
            for mask, values in zip(self.parameters(), [*head_values, *ffn_values], strict=True):
                mask.copy_(values)

    def remove(self) -> None:
        """Take every hook off the model; the model then computes as if the masks were 1."""
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


def install_masks(model: nn.Module) -> PruningMasks:
    """Hook fp32 masks, initialised to 1, onto every block of `model` (plain or wrapped by peft).

    Call before the optimizer is built so that the masks can get their own parameter group.
    """
    shape = PruningShape.from_model(model)
    _, blocks = prunable_blocks(model)
    device = next(model.parameters()).device
    masks = PruningMasks(
        shape,
        tuple(_ones(shape.num_heads, device) for _ in blocks),
        tuple(_ones(shape.intermediate_size, device) for _ in blocks),
    )
    for block, head_mask, ffn_mask in zip(blocks, masks.head_masks, masks.ffn_masks, strict=True):
        masks.handles.extend(_hook_block(block, head_mask, ffn_mask))
    return masks


def _ones(size: int, device: torch.device) -> nn.Parameter:
    return nn.Parameter(torch.ones(size, dtype=torch.float32, device=device))


def _hook_block(
    block: PrunableBlock, head_mask: nn.Parameter, ffn_mask: nn.Parameter
) -> list[RemovableHandle]:
    """Hook the block's attention output and FFN output projections (the LoRA wrapper under peft)."""
    attention_output = block.hook_point(block.family.attention_output)
    ffn_output = block.hook_point(block.family.ffn_output)
    return [
        attention_output.register_forward_pre_hook(_head_hook(head_mask, block.head_dim)),
        ffn_output.register_forward_pre_hook(_ffn_hook(ffn_mask)),
    ]


def _head_hook(mask: nn.Parameter, head_dim: int) -> PreHook:
    """Scale each head's slice of the concatenated head outputs `[B, T, H·d]` by its mask."""

    def scale_heads(module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        heads = args[0].unflatten(-1, (mask.numel(), head_dim))
        return ((heads * mask.to(heads.dtype)[:, None]).flatten(-2), *args[1:])

    return scale_heads


def _ffn_hook(mask: nn.Parameter) -> PreHook:
    """Scale each post-activation FFN neuron `[B, T, F]` by its mask."""

    def scale_neurons(module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        return (args[0] * mask.to(args[0].dtype), *args[1:])

    return scale_neurons
