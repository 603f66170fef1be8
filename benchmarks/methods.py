"""Method controllers against all-layer LoRA: dev accuracy, peak memory and training tokens/s.

MiniLM on an SST-2 subset from ../shared/data/glue, every variant with the same steps, batch, data and seed.
Variants: all-layer LoRA (r=8 on query/value of every block), IST at active ratio 0.25 and 0.5, RST at 0.5,
AdaLoRA starting at r=16 with target ratio 0.5 (the same final budget as the LoRA baseline), DiffoRA keeping
a third of all six module types against a random selection at the same rho, and Light-PEFT pruning 1/3 of
heads and 1/3 of FFN neurons against the same Light-PEFT run with no base pruning (ratios 0).
Each variant runs in its own process (RSS is per process); the script prints ratios to all-layer LoRA.

    python benchmarks/methods.py --steps 150
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GLUE = REPO.parent / "shared" / "data" / "glue" / "SST-2"
QV = ("attention.self.query", "attention.self.value")
PHASES = ("hooks", "forward", "backward", "update")
ALL = (*QV, "attention.self.key", "attention.output.dense", "intermediate.dense", "output.dense")
LIGHT = {"module_ratio": 0.5, "rank_ratio": 0.25}
VARIANTS: dict[str, tuple[tuple[str, ...], int, dict[str, dict[str, object]]]] = {
    "lora": (QV, 8, {}),
    "ist_0.25": (QV, 8, {"ist": {"mode": "ist", "active_layer_ratio": 0.25}}),
    "ist_0.5": (QV, 8, {"ist": {"mode": "ist", "active_layer_ratio": 0.5}}),
    "rst_0.5": (QV, 8, {"ist": {"mode": "rst", "active_layer_ratio": 0.5}}),
    "adalora": (QV, 16, {"adalora": {"target_rank_ratio": 0.5}}),
    "diffora": (ALL, 8, {"diffora": {"rho": 1 / 3}}),
    "diffora_random": (ALL, 8, {"diffora": {"rho": 1 / 3, "selection": "random"}}),
    "light_peft": (ALL, 8, {"light_peft": {"head_ratio": 1 / 3, "ffn_ratio": 1 / 3, **LIGHT}}),
    "light_peft_unpruned": (ALL, 8, {"light_peft": {"head_ratio": 0.0, "ffn_ratio": 0.0, **LIGHT}}),
}


def run_variant(name: str, args: argparse.Namespace) -> dict[str, float]:
    from autopeft.budget import BudgetConfig
    from autopeft.plan import ModuleSetting, PeftPlan
    from autopeft.tasks.task import TaskConfig
    from autopeft.trial import TrialSpec, run_trial
    from autopeft.trial.reporting import NullReporter

    modules, rank, methods = VARIANTS[name]
    plan = PeftPlan(
        adapters=tuple(
            ModuleSetting(layer=layer, module=m, rank=rank, alpha=2 * rank)
            for layer in range(6)
            for m in modules
        ),
        methods=methods,
    )
    budget = BudgetConfig(
        train_examples=args.train,
        dev_examples=args.dev,
        steps=args.steps,
        batch_size=args.batch,
        max_length=args.max_length,
        learning_rate=args.lr,
        evaluations=1,
    )
    spec = TrialSpec("minilm", TaskConfig(name="sst2", path=str(GLUE)), budget, seed=args.seed)
    with tempfile.TemporaryDirectory() as out:
        result = run_trial(plan, spec, NullReporter(), Path(out))
    assert result.state == "complete", result.reason
    return {
        "dev_accuracy": result.metrics["task_metric"],
        "peak_memory_mb": result.metrics["peak_memory_mb"],
        "tokens_per_second": result.metrics["train_tokens_per_second"],
        "inference_tokens_per_second": result.metrics["inference_tokens_per_second"],
        "model_parameters": result.metrics["model_parameters"],
        "trainable_parameters": result.metrics["trainable_parameters"],
        **{f"{phase}_seconds": result.metrics[f"train_{phase}_seconds"] for phase in PHASES},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=sorted(VARIANTS))
    parser.add_argument("--only", help="comma-separated variants to run (default: all)")
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
        print(json.dumps(run_variant(args.variant, args)))
        return
    results = {}
    names = args.only.split(",") if args.only else list(VARIANTS)
    for name in dict.fromkeys(["lora", *names]):
        command = [sys.executable, __file__, "--variant", name] + [
            f"--{k.replace('_', '-')}={v}"
            for k, v in vars(args).items()
            if k not in ("variant", "only") and v is not None
        ]
        output = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO).stdout
        results[name] = json.loads(output.strip().splitlines()[-1])
        print(name, results[name], flush=True)
    base = results["lora"]
    print(
        f"{'variant':20} {'dev acc':>8} {'Δacc':>7} {'train tok/s x':>13} {'infer tok/s x':>13} "
        f"{'peak mem x':>10} {'trainable':>9} {'model params':>12}"
    )
    for name, r in results.items():
        print(
            f"{name:20} {r['dev_accuracy']:8.4f} {100 * (r['dev_accuracy'] - base['dev_accuracy']):+7.2f} "
            f"{r['tokens_per_second'] / base['tokens_per_second']:13.3f} "
            f"{r['inference_tokens_per_second'] / base['inference_tokens_per_second']:13.3f} "
            f"{r['peak_memory_mb'] / base['peak_memory_mb']:10.3f} {r['trainable_parameters']:9.0f} "
            f"{r['model_parameters']:12.0f}"
        )
    print(f"\n{'variant':20} " + " ".join(f"{phase + ' s':>10}" for phase in PHASES) + f" {'backward x':>10}")
    for name, r in results.items():
        seconds = " ".join(f"{r[f'{phase}_seconds']:10.1f}" for phase in PHASES)
        print(f"{name:20} {seconds} {r['backward_seconds'] / base['backward_seconds']:10.3f}")


if __name__ == "__main__":
    main()
