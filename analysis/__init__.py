"""autopeft.analysis: spectral audit of fine-tuned weights against their base (ANALYSIS.md).

Pure metric functions on tensors, a thin I/O layer, and one entry point, `audit(...) -> AuditReport`.
Imports only torch, numpy, scipy, safetensors and pandas, so it can be used without the search.
"""

from __future__ import annotations

from autopeft.analysis.adapter import Adapter, LoraUpdate, read_adapter
from autopeft.analysis.audit import AuditConfig, audit
from autopeft.analysis.cache import SvdCache, default_cache_dir
from autopeft.analysis.checkpoint import Checkpoint, open_checkpoint
from autopeft.analysis.entanglement import (
    EntanglementProfile,
    entanglement_profile,
    lowrank_entanglement_profile,
)
from autopeft.analysis.errors import (
    AdapterMismatchError,
    AnalysisError,
    AuditConfigError,
    CheckpointError,
    DeviceError,
    ShapeMismatchError,
)
from autopeft.analysis.intruders import (
    IntruderScores,
    base_overlap,
    count_intruders,
    epsilon_sweep,
    intruder_scores,
)
from autopeft.analysis.merged_core import MergedCore, MergedSpectrum, merged_spectrum
from autopeft.analysis.noise_floor import NoiseFloor, noise_floor
from autopeft.analysis.powerlaw import PowerLawFit, fit_power_law
from autopeft.analysis.report import AuditReport
from autopeft.analysis.spectra import (
    effective_rank,
    energy_entropy,
    frobenius_norm,
    spectral_norm,
    stable_rank,
)
from autopeft.analysis.svd import (
    Svd,
    full_svd,
    lowrank_svd,
    randomized_svd,
    set_threads,
    singular_values,
)

__all__ = [
    "Adapter",
    "AdapterMismatchError",
    "AnalysisError",
    "AuditConfig",
    "AuditConfigError",
    "AuditReport",
    "Checkpoint",
    "CheckpointError",
    "DeviceError",
    "EntanglementProfile",
    "IntruderScores",
    "LoraUpdate",
    "MergedCore",
    "MergedSpectrum",
    "NoiseFloor",
    "PowerLawFit",
    "ShapeMismatchError",
    "Svd",
    "SvdCache",
    "audit",
    "base_overlap",
    "count_intruders",
    "default_cache_dir",
    "effective_rank",
    "energy_entropy",
    "entanglement_profile",
    "epsilon_sweep",
    "fit_power_law",
    "frobenius_norm",
    "full_svd",
    "intruder_scores",
    "lowrank_entanglement_profile",
    "lowrank_svd",
    "merged_spectrum",
    "noise_floor",
    "open_checkpoint",
    "randomized_svd",
    "read_adapter",
    "set_threads",
    "singular_values",
    "spectral_norm",
    "stable_rank",
]
