"""Scores of a causal LM on encoded conversations: the log-likelihood of the labelled tokens of each row,
greedy replies to prompts, and forward throughput. Each function leaves the model in the mode it was in.

The LM head's logits are (rows, tokens, vocabulary): with SmolLM2's 49,152 words a batch of 64 rows of 64
tokens would hold 800 MB of them, so scoring runs at most `TOKENS_PER_PASS` tokens per forward pass.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import Any, cast

import torch
from torch import nn
from transformers import GenerationConfig, PreTrainedTokenizerBase

from autopeft.tasks.chat_format import IGNORED
from autopeft.tasks.instruction_split import padded_batch
from autopeft.tasks.task_kind import autocast

TOKENS_PER_PASS = 1024

LabelledRow = tuple[Sequence[int], Sequence[int]]


@contextlib.contextmanager
def _evaluating(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _passes(rows: Sequence[LabelledRow], batch_size: int) -> Iterator[Sequence[LabelledRow]]:
    """The rows of each forward pass, in order: up to `batch_size` rows of about `TOKENS_PER_PASS` tokens."""
    start = 0
    while start < len(rows):
        width = max(len(ids) for ids, _ in rows[start : start + batch_size])
        count = max(1, min(batch_size, TOKENS_PER_PASS // width))
        yield rows[start : start + count]
        start += count


def label_log_likelihoods(
    model: nn.Module, rows: Sequence[LabelledRow], pad_id: int, batch_size: int, device: torch.device
) -> list[tuple[float, int]]:
    """For each row of (ids, labels): the summed log-probability of its labelled tokens given the tokens
    before them, and how many there are (labels of -100 are not scored; a label is predicted from the logits
    one position earlier, as transformers' causal-LM loss does)."""
    scores: list[tuple[float, int]] = []
    with _evaluating(model), autocast(device):
        for chunk in _passes(rows, batch_size):
            batch = padded_batch(chunk, pad_id, device)
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            targets = batch["labels"][:, 1:]
            nll = torch.nn.functional.cross_entropy(
                logits[:, :-1].float().transpose(1, 2), targets, ignore_index=IGNORED, reduction="none"
            )
            counted = targets != IGNORED
            for row_nll, row_counted in zip(nll, counted, strict=True):
                scores.append((-float(row_nll[row_counted].sum()), int(row_counted.sum())))
    return scores


def greedy_replies(
    model: nn.Module,
    prompts: Sequence[Sequence[int]],
    tokenizer: PreTrainedTokenizerBase,
    max_new_tokens: int,
    batch_size: int,
    device: torch.device,
) -> list[str]:
    """The greedy continuation of each prompt (left-padded in batches), decoded without special tokens; it
    stops at the tokenizer's end-of-sequence token or after `max_new_tokens`."""
    pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
    settings = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=pad_id,
        eos_token_id=tokenizer.eos_token_id,
        use_cache=True,
    )
    replies: list[str] = []
    with _evaluating(model), autocast(device):
        for start in range(0, len(prompts), batch_size):
            chunk = prompts[start : start + batch_size]
            width = max(len(ids) for ids in chunk)
            input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for index, ids in enumerate(chunk):
                input_ids[index, width - len(ids) :] = torch.tensor(ids)
                mask[index, width - len(ids) :] = 1
            output = cast(Any, model).generate(
                input_ids=input_ids.to(device), attention_mask=mask.to(device), generation_config=settings
            )
            replies += tokenizer.batch_decode(output[:, width:], skip_special_tokens=True)
    return replies


def forward_throughput(
    model: nn.Module, rows: Sequence[LabelledRow], pad_id: int, batch_size: int, device: torch.device
) -> float:
    """Non-padding tokens per second of forward passes over `rows`."""
    tokens, seconds = 0, 0.0
    with _evaluating(model), autocast(device):
        for chunk in _passes(rows, batch_size):
            batch = padded_batch(chunk, pad_id, device)
            started = time.perf_counter()
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            seconds += time.perf_counter() - started
            tokens += int(batch["attention_mask"].sum())
    return tokens / max(seconds, 1e-9)
