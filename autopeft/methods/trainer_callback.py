"""ControllerCallback: run a plan's method controllers inside a Hugging Face `transformers.Trainer`.

This lets a user train a plan found by a search at full scale in their own script:

    plan = PeftPlan.from_json(Path("runs/demo/trials/7/plan.json").read_text())
    model, layout = apply_plan(base_model, plan, total_steps=trainer_steps)
    callback = ControllerCallback(plan)
    Trainer(model=model, args=args, train_dataset=..., callbacks=[callback]).train()
    callback.reports            # what each method learned (IST importances, AdaLoRA ranks)

Hook mapping (METHODS.md, hooks table): on_train_begin -> setup (optimizer exists), on_step_begin -> before_step,
on_pre_optimizer_step -> after_backward (grads clipped), on_optimizer_step -> after_step, on_train_end -> finish.
`state.global_step` is the 0-based index of the current step in all four step events.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from autopeft.methods import MethodController, TrainingContext
from autopeft.methods.method_mix import MethodMix
from autopeft.plan import PeftPlan


class ControllerCallback(TrainerCallback):
    """Adapts every method controller of a plan to Trainer events."""

    def __init__(self, plan: PeftPlan) -> None:
        self.controllers: dict[str, MethodController] = MethodMix.of(plan).controllers()
        self.reports: dict[str, dict[str, Any]] = {}

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        device = args.device
        loader = kwargs["train_dataloader"]
        context = TrainingContext(
            model=kwargs["model"],
            optimizer=kwargs["optimizer"],
            total_steps=state.max_steps,
            batches=lambda size, seed: _cycle(loader, device),
            device=device,
            seed=args.seed,
        )
        for controller in self.controllers.values():
            controller.setup(context)

    def on_step_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        for controller in self.controllers.values():
            controller.before_step(state.global_step)

    def on_pre_optimizer_step(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        for controller in self.controllers.values():
            controller.after_backward(state.global_step)

    def on_optimizer_step(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        for controller in self.controllers.values():
            controller.after_step(state.global_step)

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.reports = {key: dict(controller.finish()) for key, controller in self.controllers.items()}


def _cycle(
    loader: Iterable[dict[str, torch.Tensor]], device: torch.device
) -> Iterator[dict[str, torch.Tensor]]:
    """The Trainer's own batches, endlessly, on `device` (roll-out batches use the training batch size)."""
    while True:
        for batch in loader:
            yield {key: value.to(device) for key, value in batch.items()}
