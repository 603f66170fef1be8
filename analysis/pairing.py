"""MatrixJob: one unit of audit work, from pairing base and fine-tuned matrices by canonical name.

A matrix present on one side only, or (on request) with a different shape, becomes an `unmatched` job that is
reported with its reason and never analysed as if it were a delta (ANALYSIS.md §1, pairing). With an adapter,
modules it does not target keep only their base rows; a targeted module the base lacks, or whose shape differs,
means the base does not fit the adapter and is an error.
"""

from __future__ import annotations

from dataclasses import dataclass

from autopeft.analysis.adapter import Adapter, LoraUpdate
from autopeft.analysis.checkpoint import Checkpoint
from autopeft.analysis.errors import AdapterMismatchError, ShapeMismatchError
from autopeft.analysis.naming import MatrixEntry, Skipped, canonical_name, matrix_entries

DENSE, LORA, BASE_ONLY, UNMATCHED = "dense", "lora", "base_only", "unmatched"
Excluded = list[Skipped]


@dataclass(frozen=True)
class MatrixJob:
    """What to compute for one matrix name: a dense pair, a LoRA update on a base, base rows only, or a report."""

    name: str
    kind: str
    base: MatrixEntry | None = None
    finetuned: MatrixEntry | None = None
    update: LoraUpdate | None = None
    reason: str = ""


@dataclass(frozen=True)
class Scope:
    """The pairing options of `AuditConfig` that decide which matrices exist and how mismatches are treated."""

    include_embeddings: bool = False
    split_fused: bool = True
    report_mismatches: bool = False


def dense_jobs(base: Checkpoint, finetuned: Checkpoint, scope: Scope) -> tuple[list[MatrixJob], Excluded]:
    """Jobs for two full checkpoints, in base order, then fine-tuned-only matrices; a tensor both sides leave
    out for the same reason is reported once."""
    base_entries, excluded = matrix_entries(base, scope.include_embeddings, scope.split_fused)
    ft_entries, ft_excluded = matrix_entries(finetuned, scope.include_embeddings, scope.split_fused)
    jobs = [
        _dense_job(name, entry, ft_entries.get(name), base, finetuned, scope)
        for name, entry in base_entries.items()
    ]
    jobs += [
        MatrixJob(name, UNMATCHED, finetuned=entry, reason="present in the fine-tuned checkpoint only")
        for name, entry in ft_entries.items()
        if name not in base_entries
    ]
    return jobs, list(dict.fromkeys(excluded + ft_excluded))


def adapter_jobs(base: Checkpoint, adapter: Adapter, scope: Scope) -> tuple[list[MatrixJob], Excluded]:
    """Jobs for a base plus an adapter; raises AdapterMismatchError when the base does not fit the adapter."""
    base_entries, excluded = matrix_entries(base, scope.include_embeddings, scope.split_fused)
    out_of_scope = {canonical_name(skipped.tensor): skipped for skipped in excluded}
    targeted: dict[str, LoraUpdate] = {}
    for update in adapter.updates:
        parts = [entry for entry in base_entries.values() if entry.module == update.name]
        if not parts and update.name in out_of_scope:
            excluded.append(_out_of_scope(update, out_of_scope[update.name]))
            continue
        _check_fit(base, adapter, update, parts)
        targeted.update({entry.name: update for entry in parts})
    jobs = [
        MatrixJob(name, LORA, base=entry, update=targeted[name])
        if name in targeted
        else MatrixJob(name, BASE_ONLY, base=entry)
        for name, entry in base_entries.items()
    ]
    return jobs, excluded + adapter.excluded


def _dense_job(
    name: str,
    entry: MatrixEntry,
    partner: MatrixEntry | None,
    base: Checkpoint,
    finetuned: Checkpoint,
    scope: Scope,
) -> MatrixJob:
    if partner is None:
        return MatrixJob(name, UNMATCHED, base=entry, reason="present in the base checkpoint only")
    if partner.shape == entry.shape:
        return MatrixJob(name, DENSE, base=entry, finetuned=partner)
    message = (
        f"{finetuned.source(partner.key)}: {partner.key}: expected shape {entry.shape} (out, in) to match "
        f"{base.source(entry.key)}: {entry.key}, got {partner.shape}"
    )
    if not scope.report_mismatches:
        raise ShapeMismatchError(message)
    return MatrixJob(name, UNMATCHED, base=entry, finetuned=partner, reason=f"shape mismatch: {message}")


def _out_of_scope(update: LoraUpdate, skipped: Skipped) -> Skipped:
    """The entry of an adapted module whose base matrix the audit leaves out (an embedding, a head)."""
    if skipped.tied_to:
        return Skipped(
            update.module,
            f"adapted module is tied to {skipped.tied_to}; the audit has no separate matrix for it",
        )
    return Skipped(update.module, "adapted module outside the audit scope (see include_embeddings)")


def _check_fit(base: Checkpoint, adapter: Adapter, update: LoraUpdate, parts: list[MatrixEntry]) -> None:
    source = adapter.checkpoint.source(update.key_A)
    if not parts:
        raise AdapterMismatchError(
            f"{base.label}: {update.module}: the adapter ({source}) targets this module but the base has no such "
            "matrix; is this the adapter's base model?"
        )
    out_rows = adapter.checkpoint.shape(update.key_B)[0]
    in_cols = adapter.checkpoint.shape(update.key_A)[1]
    base_shape = (sum(entry.shape[0] for entry in parts), parts[0].shape[1])
    if base_shape != (out_rows, in_cols):
        raise AdapterMismatchError(
            f"{base.source(parts[0].key)}: {parts[0].key}: expected shape {(out_rows, in_cols)} to match the "
            f"adapter's (out, in), got {base_shape}"
        )
