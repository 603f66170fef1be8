"""What a trial's own final model generates, caught as the trial saves it, to compare with its reloaded export."""

from __future__ import annotations

import pytest
import torch
from peft import PeftModel

from autopeft.trial.run import TrialRun

NEW_TOKENS = 6


def greedy_tokens(model: torch.nn.Module, prompts: torch.Tensor) -> list[list[int]]:
    """Greedy continuations of `prompts` (token ids, one row each), always NEW_TOKENS long (no early end)."""
    model.eval()
    with torch.no_grad():
        output = model.generate(  # type: ignore[operator]
            input_ids=prompts,
            attention_mask=torch.ones_like(prompts),
            max_new_tokens=NEW_TOKENS,
            min_new_tokens=NEW_TOKENS,
            do_sample=False,
            pad_token_id=0,
        )
    return output[:, prompts.shape[1] :].tolist()


def catch_final_generations(monkeypatch: pytest.MonkeyPatch, prompts: torch.Tensor) -> list[list[list[int]]]:
    """From now on, every trial's final model generates from `prompts` right before it is saved (the real save
    follows); the returned list receives one entry per trial."""
    caught: list[list[list[int]]] = []
    save = TrialRun._save

    def save_and_generate(run: TrialRun, model: PeftModel) -> None:
        caught.append(greedy_tokens(model, prompts))
        save(run, model)

    monkeypatch.setattr(TrialRun, "_save", save_and_generate)
    return caught
