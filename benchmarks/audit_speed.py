"""Audit speed (issue 3): autopeft's audit against WeightWatcher, the LAPACK lower bound, and the naive LoRA route.

    python benchmarks/audit_speed.py [--threads 1] [--sizes 768x768,768x3072,2048x2048,2048x8192]
        [--part all|minilm|smollm2] [--smollm2 FOLDER]

The SmolLM2 part (decoder LLM, 30 LLaMA blocks with GQA, tied embeddings) reads the folder that
`autopeft.models.resolve_model_path("smollm2")` gives (never a download: the hub is offline here), or `--smollm2`;
without one it is skipped with a message. It times a dense fine-tune's audit against the LAPACK bound, and a
q/k/v/o/gate/up/down LoRA adapter's audit against peft's `reduce_intruder_dimension` (two or three full SVDs per
adapted layer) and WeightWatcher's `analyze()` of the merged model, and compares the intruder counts with peft's.

All ratios come from one run on one machine. In-process timings start after the models are loaded; the whole
process time is reported too. Every in-process figure is the median of 3 runs (5 for the fast LoRA audits),
after one warm-up audit, so one-time costs (imports, first LAPACK calls) fall on no side. `--threads` applies to torch and, through OPENBLAS_NUM_THREADS/OMP_NUM_THREADS set
before NumPy loads, to NumPy/SciPy (WeightWatcher's SVDs and ARPACK) as well. Every reference SVD runs on the
tall orientation of its matrix, the cheaper one for LAPACK here (as the audit does).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

PROCESS_START = time.perf_counter()
if __name__ == "__main__":  # BLAS pools read their size when NumPy loads, so set it before the first import
    _threads = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv else "1"
    os.environ.setdefault("OPENBLAS_NUM_THREADS", _threads)
    os.environ.setdefault("OMP_NUM_THREADS", _threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a benchmark never downloads a model

import torch


def _timed(function, *args, **kwargs):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - started, result


def _median_seconds(repeats: int, function, *args, **kwargs) -> float:  # type: ignore[no-untyped-def]
    return statistics.median(_timed(function, *args, **kwargs)[0] for _ in range(repeats))


def _tall(W: torch.Tensor) -> torch.Tensor:
    return W.mT if W.shape[0] < W.shape[1] else W


def _finetuned_copy(base: dict[str, torch.Tensor], block: str = ".layer.") -> dict[str, torch.Tensor]:
    """A dense fine-tune stand-in: every block matrix (key containing `block`) gets a rank-16 update plus small
    dense noise, stored in the base's dtype."""
    generator = torch.Generator().manual_seed(0)
    copy = {}
    for key, value in base.items():
        if value.ndim == 2 and value.is_floating_point() and block in key:
            low_rank = torch.randn(value.shape[0], 16, generator=generator) @ torch.randn(
                16, value.shape[1], generator=generator
            )
            noise = 1e-3 * torch.randn(value.shape, generator=generator)
            value = (value.float() + 2e-3 * low_rank + noise).to(value.dtype)
        copy[key] = value.contiguous()
    return copy


def lapack_lower_bound(
    base: dict[str, torch.Tensor], finetuned: dict[str, torch.Tensor], keys: list[str], cuts: bool
) -> float:
    """Thin SVD of W0 (all base vectors are needed) + values of Wt + values of ΔW, and nothing else; with
    `cuts`, also the values of every other matricisation the entanglement profile of ΔW reads (its
    Schmidt values are singular values too)."""
    from autopeft.analysis.entanglement import prime_factors

    started = time.perf_counter()
    for key in keys:
        W0, Wt = base[key].float(), finetuned[key].float()
        torch.linalg.svd(_tall(W0), full_matrices=False)
        torch.linalg.svdvals(_tall(Wt))
        delta = Wt - W0
        torch.linalg.svdvals(_tall(delta))
        sites = prime_factors(delta.shape[0]) + prime_factors(delta.shape[1])
        centre = len(prime_factors(delta.shape[0]))
        for cut in range(1, len(sites)) if cuts else ():
            if cut != centre:
                torch.linalg.svdvals(_tall(delta.reshape(math.prod(sites[:cut]), -1)))
    return time.perf_counter() - started


def weightwatcher_seconds(folder: Path, finetuned: dict[str, torch.Tensor]) -> float:
    import weightwatcher
    from transformers import BertModel

    model = BertModel.from_pretrained(folder)
    model.load_state_dict(finetuned, strict=False)
    watcher = weightwatcher.WeightWatcher(model=model)
    seconds, _ = _timed(watcher.analyze)
    return seconds


def lora_adapter(folder: Path, out: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import BertModel

    model = get_peft_model(
        BertModel.from_pretrained(folder), LoraConfig(r=8, lora_alpha=16, target_modules=["query", "value"])
    )
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.02)
    model.save_pretrained(out)


def scaling_rows(sizes: list[tuple[int, int]], cache: Path) -> list[str]:
    """Per layer shape: dense audit (cold cache), the LoRA r=16 fast path (warm cache; complete spectrum and
    top-k only) and the naive two-SVD route."""
    from autopeft.analysis import AuditConfig, audit

    rows = []
    for m, n in sizes:
        generator = torch.Generator().manual_seed(m + n)
        W0 = torch.randn(m, n, generator=generator) / n**0.5
        B, A = torch.randn(m, 16, generator=generator) * 0.01, torch.randn(16, n, generator=generator)
        key = "layers.0.mlp.proj.weight"
        config = AuditConfig(cache_dir=cache / f"{m}x{n}")
        dense, _ = _timed(audit, {key: W0}, {key: W0 + B @ A}, config=config)
        base_svd = audit.__globals__["SvdCache"](cache / f"{m}x{n}").decomposition(W0)
        full, _ = _timed(_lora_fast, base_svd, B, A, True)
        top, _ = _timed(_lora_fast, base_svd, B, A, False)
        naive, _ = _timed(
            lambda W0, B, A: (
                torch.linalg.svd(_tall(W0), full_matrices=False),
                torch.linalg.svd(_tall(W0 + B @ A), full_matrices=False),
            ),
            W0,
            B,
            A,
        )
        rows.append(
            f"| {m}×{n} | {dense:.2f} s | {naive:.2f} s | {full:.3f} s | {top:.3f} s "
            f"| {naive / full:.1f}× | {naive / top:.1f}× |"
        )
    return rows


def _lora_fast(base_svd, B, A, complete):  # type: ignore[no-untyped-def]
    from autopeft.analysis import lowrank_entanglement_profile, lowrank_svd, merged_spectrum

    merged_spectrum(base_svd, B, A, 10, complete)
    lowrank_svd(B, A)
    lowrank_entanglement_profile(B, A)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sizes", default="768x768,768x3072,2048x2048,2048x8192")
    parser.add_argument("--part", choices=("all", "minilm", "smollm2"), default="all")
    parser.add_argument(
        "--smollm2", default=None, help="a SmolLM2 safetensors folder (default: the model cache)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.part in ("all", "minilm"):
        minilm_part(args)
    if args.part in ("all", "smollm2"):
        smollm2_part(args.threads, args.smollm2)
    print(f"whole process: {time.perf_counter() - PROCESS_START:.1f} s")


def minilm_part(args: argparse.Namespace) -> None:
    """(1)–(4): MiniLM dense and LoRA audits, and growth with matrix size."""
    from safetensors.torch import load_file, save_file

    from autopeft.analysis import AuditConfig, audit
    from autopeft.models import resolve_model_path

    folder = resolve_model_path("minilm")
    base = load_file(folder / "model.safetensors")
    finetuned = _finetuned_copy(base)
    work = Path(tempfile.mkdtemp(prefix="audit-speed-"))
    ft_folder = work / "ft"
    ft_folder.mkdir()
    save_file(finetuned, str(ft_folder / "model.safetensors"))
    (ft_folder / "config.json").write_text((folder / "config.json").read_text())
    keys = [k for k, v in base.items() if v.ndim == 2 and ".layer." in k and "LayerNorm" not in k]

    report = audit(folder, ft_folder, config=AuditConfig(threads=args.threads, use_cache=False))  # warm-up
    colds = [AuditConfig(threads=args.threads, cache_dir=work / f"cache-dense-{i}") for i in range(3)]
    ours = statistics.median(_timed(audit, folder, ft_folder, config=config)[0] for config in colds)
    warm = _median_seconds(3, audit, folder, ft_folder, config=colds[0])
    bound = _median_seconds(3, lapack_lower_bound, base, finetuned, keys, cuts=False)
    bound_cuts = _median_seconds(3, lapack_lower_bound, base, finetuned, keys, cuts=True)
    watcher = statistics.median(weightwatcher_seconds(folder, finetuned) for _ in range(3))
    print(
        f"threads={args.threads} matrices={len(keys)} rows={len(report.rows)} intruders={report.intruder_count()}"
    )
    print(
        f"(1) autopeft full audit, cold cache: {ours:.2f} s; warm cache: {warm:.2f} s; "
        f"WeightWatcher analyze(ft only): {watcher:.2f} s; ratio {watcher / ours:.1f}× (cold), {watcher / warm:.1f}× (warm)"
    )
    print(
        f"(2) LAPACK lower bound: {bound:.2f} s; audit / bound = {ours / bound:.2f}× (cold); with the "
        f"entanglement cuts' SVDs: {bound_cuts:.2f} s, audit / bound = {ours / bound_cuts:.2f}×"
    )
    minilm_lora(folder, work, args.threads)
    sizes = [tuple(int(x) for x in size.split("x")) for size in args.sizes.split(",")]
    scaling = scaling_rows(sizes, work / "cache-scaling")  # type: ignore[arg-type]
    print(
        "(4) | shape | dense audit (cold) | naive two thin SVDs | LoRA fast path, full | LoRA fast path, top "
        "| ratio full | ratio top |"
    )
    print("\n".join(scaling))


def minilm_lora(folder: Path, work: Path, threads: int) -> None:
    """(3): a MiniLM LoRA adapter's audit from the cached base against the naive merged two-SVD audit."""
    from peft import PeftModel
    from transformers import BertModel

    from autopeft.analysis import AuditConfig, audit

    lora_adapter(folder, work / "adapter")
    lora_config = AuditConfig(threads=threads, cache_dir=work / "cache-lora")
    top_config = AuditConfig(threads=threads, cache_dir=work / "cache-lora", spectrum="top")
    lora_report = audit(folder, adapter=work / "adapter", config=lora_config)
    fast = _median_seconds(5, audit, folder, adapter=work / "adapter", config=lora_config)
    fast_top = _median_seconds(5, audit, folder, adapter=work / "adapter", config=top_config)
    merged = (
        PeftModel.from_pretrained(BertModel.from_pretrained(folder), work / "adapter")
        .merge_and_unload()
        .state_dict()
    )
    naive_config = AuditConfig(threads=threads, use_cache=False, topk="exact")  # two thin SVDs per matrix
    naive = _median_seconds(3, audit, folder, merged, config=naive_config)
    print(
        f"(3) LoRA adapter audit, cached base (median of 5): {fast:.3f} s, spectrum='top' {fast_top:.3f} s; "
        f"naive merged two-SVD audit (median of 3): {naive:.2f} s; ratio {naive / fast:.1f}× (full), "
        f"{naive / fast_top:.1f}× (top) ({len(lora_report.rows)} rows)"
    )


SMOLLM2_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def smollm2_part(threads: int, explicit: str | None) -> None:
    """(5)–(6): SmolLM2-135M, dense and LoRA; skipped with a message when no SmolLM2 folder is available."""
    folder = Path(explicit) if explicit else _cached_smollm2()
    if folder is None:
        return
    work = Path(tempfile.mkdtemp(prefix="audit-speed-smollm2-"))
    smollm2_dense(folder, work, threads)
    smollm2_lora(folder, work, threads)


def _cached_smollm2() -> Path | None:
    from autopeft.models import resolve_model_path

    try:
        return resolve_model_path("smollm2")
    except Exception as error:  # noqa: BLE001 - any failure means there is no cached folder to measure
        print(f"(5)–(6) SmolLM2 part skipped: resolve_model_path('smollm2') gave no folder ({error})")
        return None


def smollm2_dense(folder: Path, work: Path, threads: int) -> None:
    """(5): a dense fine-tune stand-in of every block matrix, audited from a cold cache, against the bound."""
    from safetensors.torch import save_file

    from autopeft.analysis import AuditConfig, audit, open_checkpoint

    checkpoint = open_checkpoint(folder)
    base = {key: checkpoint.tensor(key) for key in checkpoint.keys()}  # noqa: SIM118 - not a dict
    finetuned = _finetuned_copy(base, block=".layers.")
    (work / "ft").mkdir()
    save_file(finetuned, str(work / "ft" / "model.safetensors"), {"format": "pt"})
    (work / "ft" / "config.json").write_text((folder / "config.json").read_text())
    keys = [key for key, value in base.items() if value.ndim == 2 and ".layers." in key]
    runs = [
        _timed(audit, folder, work / "ft", config=AuditConfig(threads=threads, cache_dir=work / f"dense-{i}"))
        for i in range(3)
    ]
    ours, report = statistics.median(seconds for seconds, _ in runs), runs[0][1]
    bound = _median_seconds(3, lapack_lower_bound, base, finetuned, keys, cuts=False)
    dtype = next(iter(base.values())).dtype
    print(
        f"(5) SmolLM2 dense fine-tune ({dtype}, {len(keys)} block matrices, {len(report.rows)} rows; tied: "
        f"{report.meta['tied_weights']}; skipped: {[item['tensor'] for item in report.excluded]}): audit, cold "
        f"cache, median of 3: {ours:.2f} s; LAPACK bound: {bound:.2f} s; audit / bound = {ours / bound:.2f}×"
    )


def smollm2_lora(folder: Path, work: Path, threads: int) -> None:
    """(6): a CAUSAL_LM LoRA adapter (r = 8, α = 16, every projection; B ~ N(0, 0.5²), so that updates of about
    the base's 10th singular value make intruders) audited against peft's intruder route and WeightWatcher, with
    the intruder counts of both intruder routes (k = 10, ε = 0.5 on both)."""
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    from autopeft.analysis import AuditConfig, audit

    def load() -> torch.nn.Module:
        return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)

    config = LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=16, target_modules=SMOLLM2_TARGETS)
    torch.manual_seed(0)  # peft draws the A factors from the global generator
    peft_model = get_peft_model(load(), config)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.5, generator=generator)
    peft_model.save_pretrained(work / "adapter")
    audit_config = AuditConfig(threads=threads, cache_dir=work / "cache-lora")
    cold, report = _timed(audit, folder, adapter=work / "adapter", config=audit_config)
    warm = _median_seconds(3, audit, folder, adapter=work / "adapter", config=audit_config)
    top_config = AuditConfig(threads=threads, cache_dir=work / "cache-lora", spectrum="top")
    top = _median_seconds(3, audit, folder, adapter=work / "adapter", config=top_config)
    frame = report.to_frame().query("kind == 'ft'")
    ours = dict(zip(frame["matrix"], frame["n_intruders"].astype(int)))
    routes = [peft_intruder_route(PeftModel.from_pretrained(load(), work / "adapter")) for _ in range(3)]
    peft_seconds, theirs = statistics.median(seconds for seconds, _ in routes), routes[0][1]
    merged = PeftModel.from_pretrained(load(), work / "adapter").merge_and_unload()
    watchers = [_timed(_weightwatcher_analyze, merged) for _ in range(3)]
    watcher, watched = statistics.median(seconds for seconds, _ in watchers), watchers[0][1]
    agree = sum(ours[name] == theirs.get(name) for name in ours)
    print(
        f"(6) SmolLM2 LoRA adapter ({len(ours)} adapted matrices): audit {cold:.2f} s cold (one run), {warm:.2f} s "
        f"cached base (median of 3); peft reduce_intruder_dimension (median of 3): {peft_seconds:.2f} s, "
        f"ratio {peft_seconds / cold:.1f}× (cold), {peft_seconds / warm:.1f}× (cached), {peft_seconds / top:.1f}× "
        f"(cached, spectrum='top' {top:.2f} s); WeightWatcher analyze() of the merged model ({watched} layers, "
        f"median of 3): {watcher:.2f} s, ratio {watcher / cold:.1f}× (cold), {watcher / warm:.1f}× (cached), "
        f"{watcher / top:.1f}× (top); intruders: ours {sum(ours.values())}, peft "
        f"{sum(theirs.values())}, equal in {agree}/{len(ours)} matrices"
    )


def peft_intruder_route(peft_model: torch.nn.Module) -> tuple[float, dict[str, int]]:
    """Seconds of peft's `reduce_intruder_dimension` on a loaded adapter, and its intruder count per module
    (read from the lines it logs: `<module>: Intruders: n` or `<module>: No intruders`)."""
    from peft.tuners.lora.intruders import reduce_intruder_dimension

    from autopeft.analysis.naming import canonical_name

    counts: dict[str, int] = {}

    def sink(line: str) -> None:
        module, _, count = line.partition(": Intruders: ")
        if count:
            counts[canonical_name(module)] = int(count)
        elif line.endswith(": No intruders"):
            counts[canonical_name(line.removesuffix(": No intruders"))] = 0

    seconds, _ = _timed(reduce_intruder_dimension, peft_model, logging_sink=sink)
    return seconds, counts


def _weightwatcher_analyze(model: torch.nn.Module) -> int:
    """WeightWatcher's default analysis of a whole model; the number of layers it analysed."""
    import weightwatcher

    return len(weightwatcher.WeightWatcher(model=model).analyze())


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
