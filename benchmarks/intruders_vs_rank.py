"""Intruder dimensions vs LoRA rank (issue 3): MiniLM fine-tuned on an SST-2 subset with LoRA r = 1, 8, 64 and fully.

    python benchmarks/intruders_vs_rank.py [--steps 200] [--examples 2000] [--threads 2]

A plain torch training loop (peft for LoRA), then `autopeft.analysis.audit` counts intruders (k = 10) at ε = 0.3…0.9
over every attention and MLP matrix of the encoder. LoRA targets query, key, value and both dense MLP layers.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import torch

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "glue" / "SST-2" / "train.tsv"
EPSILONS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
TARGETS = ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"]


def read_sst2(limit: int) -> tuple[list[str], list[int]]:
    with DATA.open(encoding="utf-8") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        rows = [row for _, row in zip(range(limit), reader)]
    return [row["sentence"] for row in rows], [int(row["label"]) for row in rows]


def train(model: torch.nn.Module, batches: list[dict[str, torch.Tensor]], steps: int, lr: float) -> float:
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    loss = torch.tensor(0.0)
    for step in range(steps):
        batch = batches[step % len(batches)]
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return float(loss)


def encoder_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in model.state_dict().items() if ".layer." in key}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from autopeft.analysis import AuditConfig, audit
    from autopeft.models import resolve_model_path

    folder = resolve_model_path("minilm")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    sentences, labels = read_sst2(args.examples)
    batches = []
    for start in range(0, len(sentences), args.batch):
        batch = tokenizer(
            sentences[start : start + args.batch],
            padding=True,
            truncation=True,
            max_length=64,
            return_tensors="pt",
        )
        batch["labels"] = torch.tensor(labels[start : start + args.batch])
        batches.append(dict(batch))
    base = encoder_weights(AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2))
    cache = Path(tempfile.mkdtemp(prefix="intruders-")) / "cache"
    print(f"steps={args.steps} examples={args.examples} batch={args.batch}")
    print("| setting | final loss | " + " | ".join(f"ε={e}" for e in EPSILONS) + " | train s |")
    for setting in ("lora r=1", "lora r=8", "lora r=64", "full"):
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2)
        if setting.startswith("lora"):
            rank = int(setting.split("=")[1])
            model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=TARGETS))
        started = time.perf_counter()
        loss = train(model, batches, args.steps, 5e-4 if setting.startswith("lora") else 5e-5)
        seconds = time.perf_counter() - started
        merged = model.merge_and_unload() if setting.startswith("lora") else model
        report = audit(
            base,
            encoder_weights(merged),
            config=AuditConfig(sweep=True, threads=args.threads, cache_dir=cache),
        )
        ft = report.to_frame().query("kind == 'ft'")
        counts = [int(ft[f"intruders_eps_{e:.2f}"].sum()) for e in EPSILONS]
        print(f"| {setting} | {loss:.3f} | " + " | ".join(str(c) for c in counts) + f" | {seconds:.0f} |")


if __name__ == "__main__":
    main()
