"""Overhead of `run_trial` against the same training written directly with peft.

Both variants train MiniLM with LoRA r=8 (alpha 16) on query/value of every layer, on the same SST-2 subset from
../shared/data/glue, with the same steps, batch size, learning-rate schedule and seed. Each variant runs in its
own process (RSS is per process), in the order A B B A, and the script reports the ratios of the means:
tokens/s (autopeft / peft; target >= 0.95), peak RSS (autopeft / peft) and the dev accuracy of both.

    python benchmarks/trial_overhead.py --steps 150
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GLUE = REPO.parent / "shared" / "data" / "glue" / "SST-2"


def _read_sst2(split: str) -> list[tuple[str, int]]:
    with (GLUE / f"{split}.tsv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    return [(text.strip(), int(label)) for text, label in rows]


def run_autopeft(args: argparse.Namespace) -> dict[str, float]:
    from autopeft.budget import BudgetConfig
    from autopeft.plan import ModuleSetting, PeftPlan
    from autopeft.tasks.task import TaskConfig
    from autopeft.trial import TrialSpec, run_trial
    from autopeft.trial.reporting import NullReporter

    plan = PeftPlan(
        adapters=tuple(
            ModuleSetting(layer=layer, module=m, rank=8, alpha=16)
            for layer in range(6)
            for m in ("attention.self.query", "attention.self.value")
        )
    )
    budget = BudgetConfig(
        train_examples=args.train,
        dev_examples=args.dev,
        steps=args.steps,
        max_length=args.max_length,
        batch_size=args.batch,
        eval_batch_size=64,
        learning_rate=args.lr,
        evaluations=1,
    )
    spec = TrialSpec("minilm", TaskConfig(name="sst2", path=str(GLUE)), budget, seed=args.seed)
    with tempfile.TemporaryDirectory() as out:
        result = run_trial(plan, spec, NullReporter(), Path(out))
    assert result.state == "complete", result.reason
    return {
        "tokens_per_second": result.metrics["train_tokens_per_second"],
        "peak_memory_mb": result.metrics["peak_memory_mb"],
        "dev_accuracy": result.metrics["task_metric"],
    }


def run_peft(args: argparse.Namespace) -> dict[str, float]:
    """The baseline: the training loop a user would write with transformers + peft, nothing else."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        get_linear_schedule_with_warmup,
    )

    from autopeft.models import resolve_model_path
    from autopeft.trial.peak_memory import PeakMemoryMeter

    random.seed(args.seed)
    torch.manual_seed(args.seed)
    folder = resolve_model_path("minilm")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2)
    config = LoraConfig(task_type="SEQ_CLS", r=8, lora_alpha=16, target_modules=["query", "value"])
    model = get_peft_model(model, config)
    train = _read_sst2("train")
    random.Random(args.seed).shuffle(train)
    train, dev = train[: args.train], _read_sst2("dev")[: args.dev]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr)
    scheduler = get_linear_schedule_with_warmup(optimizer, round(0.1 * args.steps), args.steps)

    def batch_of(rows: list[tuple[str, int]]) -> dict[str, torch.Tensor]:
        encoded = tokenizer(
            [t for t, _ in rows],
            truncation=True,
            max_length=args.max_length,
            padding=True,
            return_tensors="pt",
        )
        encoded["labels"] = torch.tensor([y for _, y in rows])
        return dict(encoded)

    tokens, seconds, cursor = 0, 0.0, 0
    model.train()
    with PeakMemoryMeter(torch.device("cpu")) as memory:
        for _ in range(args.steps):
            if cursor + args.batch > len(train):
                random.Random(cursor).shuffle(train)
                cursor = 0
            batch = batch_of(train[cursor : cursor + args.batch])
            cursor += args.batch
            started = time.perf_counter()
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            tokens += int(batch["attention_mask"].sum())
            seconds += time.perf_counter() - started
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(dev), 64):
            rows = dev[start : start + 64]
            logits = model(**{k: v for k, v in batch_of(rows).items() if k != "labels"}).logits
            correct += sum(int(p == y) for p, (_, y) in zip(logits.argmax(-1).tolist(), rows))
    return {
        "tokens_per_second": tokens / seconds,
        "peak_memory_mb": memory.peak_mb,
        "dev_accuracy": correct / len(dev),
    }


VARIANTS = {"autopeft": run_autopeft, "peft": run_peft}


def _child(variant: str, args: argparse.Namespace) -> dict[str, float]:
    command = [
        sys.executable,
        __file__,
        "--variant",
        variant,
        "--steps",
        str(args.steps),
        "--train",
        str(args.train),
        "--dev",
        str(args.dev),
        "--batch",
        str(args.batch),
        "--max-length",
        str(args.max_length),
        "--lr",
        str(args.lr),
        "--seed",
        str(args.seed),
        "--threads",
        str(args.threads),
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=sorted(VARIANTS))
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--train", type=int, default=4800)
    parser.add_argument("--dev", type=int, default=872)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.variant:
        print(json.dumps(VARIANTS[args.variant](args)))
        return
    runs: dict[str, list[dict[str, float]]] = {"autopeft": [], "peft": []}
    for variant in ("autopeft", "peft", "peft", "autopeft"):
        runs[variant].append(_child(variant, args))
        print(variant, runs[variant][-1], flush=True)
    mean = {v: {k: sum(r[k] for r in rs) / len(rs) for k in rs[0]} for v, rs in runs.items()}
    print(
        json.dumps(
            {
                "mean": mean,
                "tokens_per_second_ratio": mean["autopeft"]["tokens_per_second"]
                / mean["peft"]["tokens_per_second"],
                "peak_memory_ratio": mean["autopeft"]["peak_memory_mb"] / mean["peft"]["peak_memory_mb"],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
