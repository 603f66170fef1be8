"""Method controllers against all-layer LoRA: dev accuracy, peak memory and training tokens/s.

MiniLM on an SST-2 subset from ../shared/data/glue, every variant with the same steps, batch, data and seed.
Variants: all-layer LoRA (r=8 on query/value of every block), IST at active ratio 0.25 and 0.5, RST at 0.5,
AdaLoRA starting at r=16 with target ratio 0.5 (the same final budget as the LoRA baseline), DiffoRA keeping
a third of all six module types against a random selection at the same rho, and Light-PEFT pruning 1/3 of
heads and 1/3 of FFN neurons against the same Light-PEFT run with no base pruning (ratios 0).
Each variant runs in its own process (RSS is per process); the script prints ratios to all-layer LoRA, and
each variant's dev accuracy against the majority class of the dev sentences scored, so a variant that has not
learned yet (AdaLoRA and IST at ratio 0.25 after 100 steps at lr 1e-3, see benchmarks/README.md) shows as such.
On MiniLM's 6 blocks IST's ratio 0.25 trains floor(0.25 * 6) = 1 block per step.

    python benchmarks/methods.py --steps 150
    python benchmarks/methods.py --steps 100 --only adalora,ist_0.25 --evaluations 5 --trace --threads 1
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

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


class StepTrace:
    """What one training loop does to the head and the adapters, step by step (`--trace`).

    Appended to the loop's controllers, so it runs after every method's hooks: in `after_backward` it sees the
    step's gradients, in `after_step` the update. Figures: steps in which every head tensor had a gradient and
    moved, the head's mean gradient norm (after clipping), the mean share of adapter weights with a gradient per
    step and the share that ever had one, and ||ΔW||_F / ||W0||_F at the end, averaged over adapted modules.
    """

    def __init__(self, model: Any, optimizer: Any) -> None:
        self.model = model
        optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
        named = {n: p for n, p in model.named_parameters() if id(p) in optimized}
        self.head = {n: p for n, p in named.items() if "modules_to_save" in n}
        self.adapters = {n: p for n, p in named.items() if "lora_" in n}
        self.adapter_size = sum(p.numel() for p in self.adapters.values())
        self.ever: set[str] = set()
        self.steps = self.head_grad_steps = self.head_moved_steps = 0
        self.head_grad_norms: list[float] = []
        self.adapter_grad_shares: list[float] = []

    def before_step(self, step: int) -> None:
        self.head_before = {n: p.detach().clone() for n, p in self.head.items()}

    def after_backward(self, step: int) -> None:
        grads = [p.grad for p in self.head.values() if p.grad is not None]
        self.head_grad_steps += bool(self.head) and len(grads) == len(self.head)
        self.head_grad_norms.append(float(sum(g.float().square().sum() for g in grads) ** 0.5))
        with_grad = {n for n, p in self.adapters.items() if p.grad is not None}
        self.ever |= with_grad
        self.adapter_grad_shares.append(sum(self.adapters[n].numel() for n in with_grad) / self.adapter_size)

    def after_step(self, step: int) -> None:
        self.steps += 1
        self.head_moved_steps += all(not p.detach().equal(self.head_before[n]) for n, p in self.head.items())

    def summary(self) -> dict[str, float]:
        return {
            "steps": self.steps,
            "head_grad_steps": self.head_grad_steps,
            "head_moved_steps": self.head_moved_steps,
            "head_grad_norm": sum(self.head_grad_norms) / len(self.head_grad_norms),
            "adapter_grad_share": sum(self.adapter_grad_shares) / len(self.adapter_grad_shares),
            "adapter_ever_share": sum(self.adapters[n].numel() for n in self.ever) / self.adapter_size,
            "delta_w": relative_update(self.model),
        }


def relative_update(model: Any) -> float:
    """Mean over adapted modules of ||ΔW||_F / ||W0||_F, for LoRA (s·B·A) and AdaLoRA (s/r·B·diag(E)·A)."""
    import torch
    from peft.tuners.adalora import AdaLoraLayer
    from peft.tuners.lora import LoraLayer

    ratios = []
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, AdaLoraLayer):
                a, e, b = (getattr(module, f"lora_{x}")["default"] for x in "AEB")
                delta = b @ (a * e) * module.scaling["default"] / (module.ranknum["default"] + 1e-5)
            elif isinstance(module, LoraLayer) and "default" in module.lora_A:
                delta = module.lora_B["default"].weight @ module.lora_A["default"].weight
                delta = delta * module.scaling["default"]
            else:
                continue
            ratios.append(float(delta.norm() / module.get_base_layer().weight.norm()))
    return sum(ratios) / len(ratios)


def trace_every_loop(traces: list[StepTrace]) -> None:
    """Give every `TrainingLoop` built from now on, in this process, a `StepTrace` as its last controller (the
    last one built is the trial's main phase)."""
    from autopeft.trial.training_loop import TrainingLoop

    build = TrainingLoop.__init__

    def build_traced(loop: Any, model: Any, optimizer: Any, *rest: Any, **options: Any) -> None:
        build(loop, model, optimizer, *rest, **options)
        traces.append(StepTrace(model, optimizer))
        loop.controllers.append(traces[-1])

    TrainingLoop.__init__ = build_traced  # type: ignore[method-assign]


def run_variant(name: str, args: argparse.Namespace) -> dict[str, Any]:
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
        evaluations=args.evaluations,
    )
    spec = TrialSpec("minilm", TaskConfig(name="sst2", path=str(GLUE)), budget, seed=args.seed)
    traces: list[StepTrace] = []
    if args.trace:
        trace_every_loop(traces)
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
        "curve": [[point["step"], point["task_metric"]] for point in result.curve],
        **({"trace": traces[-1].summary()} if traces else {}),
    }


def majority_accuracy(dev: int) -> float:
    """Accuracy of always predicting the most common label of the first `dev` dev sentences (what a model that
    has learned nothing about the sentences scores)."""
    with (GLUE / "dev.tsv").open(newline="") as file:
        rows = list(csv.DictReader(file, delimiter="\t", quoting=csv.QUOTE_NONE))[:dev]
    labels = [row["label"] for row in rows]
    return max(labels.count(label) for label in set(labels)) / len(labels)


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
    parser.add_argument(
        "--evaluations", type=int, default=1, help="dev evaluations per variant, spread evenly (the curve)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--trace", action="store_true", help="also report the head's and adapters' gradients and updates"
    )
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
            f"--{k.replace('_', '-')}" if v is True else f"--{k.replace('_', '-')}={v}"
            for k, v in vars(args).items()
            if k not in ("variant", "only") and v is not None and v is not False
        ]
        output = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO).stdout
        results[name] = json.loads(output.strip().splitlines()[-1])
        print(name, results[name], flush=True)
    base = results["lora"]
    majority = majority_accuracy(args.dev)
    print(f"majority class of the {args.dev} dev sentences: {majority:.4f} (Δmaj: points above it)")
    print(
        f"{'variant':20} {'dev acc':>8} {'Δacc':>7} {'Δmaj':>7} {'train tok/s x':>13} {'infer tok/s x':>13} "
        f"{'peak mem x':>10} {'trainable':>9} {'model params':>12}"
    )
    for name, r in results.items():
        print(
            f"{name:20} {r['dev_accuracy']:8.4f} {100 * (r['dev_accuracy'] - base['dev_accuracy']):+7.2f} "
            f"{100 * (r['dev_accuracy'] - majority):+7.2f} "
            f"{r['tokens_per_second'] / base['tokens_per_second']:13.3f} "
            f"{r['inference_tokens_per_second'] / base['inference_tokens_per_second']:13.3f} "
            f"{r['peak_memory_mb'] / base['peak_memory_mb']:10.3f} {r['trainable_parameters']:9.0f} "
            f"{r['model_parameters']:12.0f}"
        )
    print(f"\n{'variant':20} " + " ".join(f"{phase + ' s':>10}" for phase in PHASES) + f" {'backward x':>10}")
    for name, r in results.items():
        seconds = " ".join(f"{r[f'{phase}_seconds']:10.1f}" for phase in PHASES)
        print(f"{name:20} {seconds} {r['backward_seconds'] / base['backward_seconds']:10.3f}")
    if args.evaluations > 1:
        print(f"\n{'variant':20} dev accuracy at steps " + " ".join(f"{s:>6.0f}" for s, _ in base["curve"]))
        for name, r in results.items():
            print(f"{name:20} {'':21}" + " ".join(f"{accuracy:6.4f}" for _, accuracy in r["curve"]))
    if args.trace:
        print(
            f"\n{'variant':20} {'head grad':>9} {'head moved':>10} {'head |g|':>8} "
            f"{'adapters with grad':>18} {'ever':>5} {'|ΔW|/|W0|':>9}"
        )
        for name, r in results.items():
            t = r["trace"]
            print(
                f"{name:20} {t['head_grad_steps']:>4}/{t['steps']:<4} {t['head_moved_steps']:>5}/{t['steps']:<4} "
                f"{t['head_grad_norm']:8.3f} {t['adapter_grad_share']:18.3f} {t['adapter_ever_share']:5.2f} "
                f"{t['delta_w']:9.4f}"
            )


if __name__ == "__main__":
    main()
