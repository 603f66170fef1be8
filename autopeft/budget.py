"""BudgetConfig: the low-cost training budget every trial of a search gets (the `budget:` block of a space).

Data only, like the plan: the trial, the method controllers (whose phases take a share of the steps) and the
search space all read it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class BudgetConfig(BaseModel):
    """The low-cost training budget every trial gets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    train_examples: int = Field(default=512, ge=8, description="Training examples used (a seeded subset).")
    dev_examples: int = Field(default=256, ge=8, description="Dev examples scored (the first ones).")
    epochs: float | None = Field(default=1.0, gt=0, description="Passes over the training subset.")
    steps: int | None = Field(default=None, ge=1, description="Optimizer steps; overrides epochs when set.")
    max_length: int = Field(default=64, ge=8, le=4096, description="Tokens per example after truncation.")
    batch_size: int = Field(default=16, ge=1)
    eval_batch_size: int = Field(default=64, ge=1)
    learning_rate: float = Field(default=5e-4, gt=0, lt=1)
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    weight_decay: float = Field(default=0.0, ge=0)
    max_grad_norm: float = Field(default=1.0, gt=0)
    evaluations: int = Field(
        default=3, ge=1, description="Dev evaluations during training, the last at the end."
    )

    def total_steps(self) -> int:
        """Optimizer steps of one trial."""
        if self.steps is not None:
            return self.steps
        per_epoch = -(-self.train_examples // self.batch_size)
        return max(1, round(per_epoch * float(self.epochs or 1.0)))
