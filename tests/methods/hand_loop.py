"""A hand-driven training loop over a real tiny model, for tests that inspect grads between hooks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from peft import PeftModel

from autopeft.methods import MethodController, TrainingContext
from autopeft.methods.method_mix import MethodMix
from autopeft.models import load_classifier, load_tokenizer
from autopeft.plan import ModuleSetting, PeftPlan
from autopeft.tasks.task import TaskConfig, load_task
from autopeft.tasks.tokenized_split import TokenizedSplit
from autopeft.trial.adapters import apply_plan

CPU = torch.device("cpu")


@dataclass
class HandLoop:
    """A peft model, its optimizer, one controller, and batches of the demo task."""

    model: PeftModel
    optimizer: torch.optim.Optimizer
    controller: MethodController
    split: TokenizedSplit

    def forward_backward(self, step: int, batch: dict[str, torch.Tensor]) -> None:
        """The first half of a step, up to `after_backward`: grads are present for inspection."""
        self.controller.before_step(step)
        self.model(**batch).loss.backward()
        self.controller.after_backward(step)

    def update(self, step: int) -> None:
        """The second half: optimizer step, `after_step`, grads cleared to None."""
        self.optimizer.step()
        self.controller.after_step(step)
        self.optimizer.zero_grad(set_to_none=True)

    def run(self, steps: int) -> None:
        batches = self.split.shuffled_forever(8, CPU, seed=1)
        for step in range(steps):
            self.forward_backward(step, next(batches))
            self.update(step)


def plan_for(
    layers: int,
    methods: dict[str, dict[str, object]],
    modules: tuple[str, ...] = ("attention.self.query", "attention.self.value"),
    rank: int = 4,
) -> PeftPlan:
    return PeftPlan(
        adapters=tuple(
            ModuleSetting(layer=layer, module=m, rank=rank, alpha=2 * rank)
            for layer in range(layers)
            for m in modules
        ),
        methods=methods,
    )


def hand_loop(folder: Path, plan: PeftPlan, total_steps: int, lr: float = 1e-3) -> HandLoop:
    tokenizer = load_tokenizer(folder)
    model, _ = apply_plan(load_classifier(folder, 2, tokenizer.pad_token_id), plan, total_steps)
    task = load_task(TaskConfig(name="demo"), Path("."))
    split = TokenizedSplit.build(task.train[:256], tokenizer, 24)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    (controller,) = MethodMix.of(plan).controllers().values()
    controller.setup(
        TrainingContext(
            model,
            optimizer,
            total_steps,
            lambda size, seed: split.shuffled_forever(size, CPU, seed),
            CPU,
            seed=0,
        )
    )
    return HandLoop(model, optimizer, controller, split)
