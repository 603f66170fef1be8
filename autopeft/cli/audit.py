"""`autopeft audit`: argument parsing, progress display and report files around `audit()`.

Bad input raises an `AnalysisError` (or `AutopeftError`) subclass; `autopeft/cli/main.py` prints its one-line message
and exits with code 2. `autopeft audit RUN_DIR --trial N` audits the adapter a search trial saved and writes
`RUN_DIR/trials/N/audit.json` for the dashboards.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

# rich, threadpoolctl, the analysis (torch), the dashboards and the storage (optuna) are imported inside the
# functions that use them, so that building the parser (`autopeft --help`, argument errors) stays instant.
if TYPE_CHECKING:
    from torch import nn

    from autopeft.analysis import AuditConfig, AuditReport


def add_parser(subparsers: Any) -> None:
    """Register `audit` on an argparse subparsers object."""
    parser = subparsers.add_parser(
        "audit",
        help="spectral audit of fine-tuned weights against their base",
        description="Compare a fine-tuned model or a PEFT adapter with its base: spectra, intruder dimensions, "
        "effective ranks, power-law alpha, entanglement.",
    )
    parser.add_argument("run_dir", nargs="?", type=Path, help="a search run directory (with --trial N)")
    parser.add_argument(
        "--trial", type=int, help="trial number inside RUN_DIR; writes RUN_DIR/trials/N/audit.json"
    )
    parser.add_argument("--base", help="base model: a folder, a Hugging Face id, or 'minilm'")
    side = parser.add_mutually_exclusive_group()
    side.add_argument("--finetuned", help="fine-tuned model: a folder of safetensors or a Hugging Face id")
    side.add_argument("--adapter", help="a PEFT LoRA/AdaLoRA adapter folder")
    parser.add_argument("--k", type=int, default=10, help="top-k fine-tuned directions tested (default 10)")
    parser.add_argument(
        "--epsilon", type=float, default=0.5, help="intruder threshold on |cos| (default 0.5)"
    )
    parser.add_argument("--sweep", action="store_true", help="add intruder counts for epsilon 0.05..0.95")
    parser.add_argument(
        "--spectrum",
        choices=("full", "top"),
        default="full",
        help="fine-tuned spectrum: 'full' (alpha, effective rank) or 'top' (norms and intruders only; "
        "several times faster for adapters)",
    )
    parser.add_argument(
        "--topk",
        choices=("lanczos", "exact", "randomized"),
        default="lanczos",
        help="top-k vectors of a dense fine-tune: Lanczos (default), exact SVD, or randomized (q >= 4); "
        "Lanczos and randomized results are checked, with the exact SVD as fallback",
    )
    parser.add_argument("--json", type=Path, help="write the full report as JSON")
    parser.add_argument("--html", type=Path, help="write a self-contained HTML summary")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--threads",
        type=int,
        help="CPU threads for torch and for SciPy's OpenBLAS (default: their own settings)",
    )
    parser.add_argument(
        "--cache-dir", type=Path, help="base-SVD cache (default $AUTOPEFT_CACHE_DIR or ~/.cache/autopeft/svd)"
    )
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the base-SVD cache")
    parser.add_argument(
        "--allow-pickle", action="store_true", help="read .bin weights with torch.load(weights_only=True)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no summary table")
    parser.set_defaults(handler=run)


class AuditInputs(NamedTuple):
    """What one `autopeft audit` compares, where its JSON goes, and the meta it records beyond audit()'s own."""

    base: str | nn.Module
    finetuned: str | None
    adapter: str | None
    json_path: Path | None
    meta: dict[str, Any]


def run(args: argparse.Namespace) -> int:
    """Run the audit the arguments describe; returns the exit code (errors are raised, not returned)."""
    from threadpoolctl import threadpool_limits

    from autopeft.analysis import AuditConfig

    inputs = _trial_inputs(args) if args.run_dir is not None else _pair_inputs(args)
    config = AuditConfig(
        k=args.k,
        epsilon=args.epsilon,
        sweep=args.sweep,
        spectrum=args.spectrum,
        topk=args.topk,
        device=args.device,
        threads=args.threads,
        cache_dir=args.cache_dir,
        use_cache=not args.no_cache,
        allow_pickle=args.allow_pickle,
    )
    if args.threads is not None:  # analysis/ sets torch's pool only (ARCHITECTURE.md); SciPy's is set here
        threadpool_limits(limits=args.threads, user_api="blas")
    report = _audit_with_progress(inputs, config, quiet=args.quiet)
    report.meta.update(inputs.meta)
    if inputs.json_path is not None:
        report.to_json(inputs.json_path)
    if args.html is not None:
        _write_html(args.html, report)
    if not args.quiet:
        _print_summary(report)
    return 0


def _pair_inputs(args: argparse.Namespace) -> AuditInputs:
    """--base B with one of --finetuned F and --adapter A."""
    from autopeft.analysis.errors import AuditConfigError

    if args.trial is not None:
        raise AuditConfigError("audit: --trial N needs a RUN_DIR argument")
    if not args.base or not (args.finetuned or args.adapter):
        raise AuditConfigError("audit: expected --base B and one of --finetuned F or --adapter A")
    finetuned = _model_folder(args.finetuned) if args.finetuned else None
    return AuditInputs(_model_folder(args.base), finetuned, args.adapter, args.json, {})


def _trial_inputs(args: argparse.Namespace) -> AuditInputs:
    """RUN_DIR --trial N [--base B]: the trial's adapter against its recorded base (or B), pruned first for a
    Light-PEFT trial, written to RUN_DIR/trials/N/audit.json unless --json says otherwise.

    The trial's own adapter is what gets audited, so --adapter and --finetuned are refused rather than ignored.
    """
    from autopeft.analysis.errors import AuditConfigError
    from autopeft.dashboards.audit_file import AUDIT_FILE, AuditedSources, trial_adapter
    from autopeft.storage.run_directory import RunDirectory

    given = [flag for flag, value in (("--adapter", args.adapter), ("--finetuned", args.finetuned)) if value]
    if given:
        raise AuditConfigError(
            f"audit: {given[0]} cannot be combined with RUN_DIR --trial N, which audits the trial's own "
            "adapter; expected RUN_DIR --trial N [--base B], or --base B with --adapter A or --finetuned F"
        )
    if args.trial is None:
        raise AuditConfigError(f"{args.run_dir}: expected --trial N to choose the trial to audit")
    run_dir = RunDirectory(args.run_dir)
    base = _model_folder(args.base or _recorded_base(trial_adapter(run_dir, args.trial)))
    sources = AuditedSources.of_trial(run_dir, args.trial, base)
    json_path = args.json or run_dir.trial_dir(args.trial) / AUDIT_FILE
    return AuditInputs(sources.load_base(), None, str(sources.adapter), json_path, sources.meta(run_dir))


def _recorded_base(adapter: Path) -> str:
    from autopeft.analysis.errors import CheckpointError

    path = adapter / "adapter_config.json"
    try:
        recorded = json.loads(path.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as error:
        raise CheckpointError(f"{path}: expected a JSON object ({error})") from None
    if not recorded:
        raise CheckpointError(
            f"{path}: base_model_name_or_path: expected the base model, got none; pass --base"
        )
    return str(recorded)


def _model_folder(name: str) -> str:
    """A path as given (existing, absolute or relative-looking); anything else (`minilm`, a hub id) through
    autopeft's model resolution."""
    if Path(name).expanduser().exists() or Path(name).is_absolute() or name.startswith((".", "~")):
        return name
    from autopeft.models import resolve_model_path

    return str(resolve_model_path(name))


def _audit_with_progress(inputs: AuditInputs, config: AuditConfig, quiet: bool) -> AuditReport:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from autopeft.analysis import audit

    base, finetuned, adapter = inputs.base, inputs.finetuned, inputs.adapter
    if quiet or not sys.stdout.isatty():
        return audit(base, finetuned, adapter=adapter, config=config)
    columns = (TextColumn("auditing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=True) as progress:
        task = progress.add_task("audit", total=None)
        return audit(
            base,
            finetuned,
            adapter=adapter,
            config=config,
            on_progress=lambda done, total: progress.update(task, completed=done, total=total),
        )


def _print_summary(report: AuditReport) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"audit: {report.intruder_count()} intruder dimensions")
    by_module = report.summary()["by_module"].reset_index()
    for column in by_module.columns:
        table.add_column(str(column))
    for record in by_module.itertuples(index=False):
        table.add_row(*(f"{value:.4g}" if isinstance(value, float) else str(value) for value in record))
    Console().print(table)


def _write_html(path: Path, report: AuditReport) -> None:
    """A self-contained HTML page (no scripts, no network) with the three summary tables."""
    sections = "".join(
        f"<h2>{html.escape(name)}</h2>{table.to_html(float_format=lambda x: f'{x:.4g}', na_rep='NaN')}"
        for name, table in report.summary().items()
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>autopeft audit</title><style>"
        "body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}"
        f"</style></head><body><h1>autopeft audit</h1><p>{report.intruder_count()} intruder dimensions</p>"
        f"{sections}</body></html>"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.partial")
    staging.write_text(page, encoding="utf-8")
    os.replace(staging, path)
