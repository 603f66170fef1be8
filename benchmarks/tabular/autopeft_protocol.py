"""The AutoPEFT search protocol (Zhou et al., TACL 2024, arXiv 2301.12132) replayed on the table.

AutoPEFT encodes each configuration as a vector (layer choices and module sizes as numbers), models both
objectives, task metric and parameter count, with Gaussian processes, starts from a random initial design and
then proposes by qNEHVI. Here: the same encoding (each dimension's choice index scaled to [0, 1]), one BoTorch
`SingleTaskGP` per objective (ARD Matern 5/2; AutoPEFT's sparse SAAS prior needs MCMC, too slow for 10 seeds
on two CPU cores, so this is a stated deviation), `qNoisyExpectedHypervolumeImprovement` with the benchmark's
reference point, maximised exactly over the untried configurations of the discrete space (q = 1).
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

Params = dict[str, Any]
Evaluate = Callable[[Params], "tuple[float, float] | None"]


def run_protocol(
    dimensions: dict[str, tuple[Any, ...]],
    evaluate: Evaluate,
    budget: int,
    seed: int,
    metric_reference: float = 0.5,
    initial: int = 10,
) -> list[Params]:
    """Propose `budget` configurations (random first `initial`, then qNEHVI), calling `evaluate` on each; it
    returns (task metric, normalised parameters) or None for a failed trial. The hypervolume's reference point
    is the benchmark's own: task metric `metric_reference`, normalised parameters 1. Returns the proposals in order."""
    from botorch.acquisition.multi_objective.monte_carlo import qNoisyExpectedHypervolumeImprovement
    from botorch.sampling import SobolQMCNormalSampler

    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    names = list(dimensions)
    grid = [dict(zip(names, combo, strict=True)) for combo in _product(dimensions)]
    encoded = torch.tensor([_encode(p, dimensions) for p in grid], dtype=torch.double)
    proposals: list[Params] = []
    observed: list[tuple[int, tuple[float, float]]] = []
    for number in range(budget):
        if number < initial or len(observed) < 2:
            index = int(rng.integers(len(grid)))
        else:
            model = _fit([i for i, _ in observed], [y for _, y in observed], encoded)
            tried = {i for i, _ in observed}
            untried = [i for i in range(len(grid)) if i not in tried] or list(range(len(grid)))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                acquisition = qNoisyExpectedHypervolumeImprovement(
                    model=model,
                    ref_point=[metric_reference, -1.0],
                    X_baseline=encoded[[i for i, _ in observed]],
                    sampler=SobolQMCNormalSampler(torch.Size([64]), seed=seed + number),
                    prune_baseline=True,
                )
                with torch.no_grad():
                    values = acquisition(encoded[untried].unsqueeze(1))
            index = untried[int(torch.argmax(values))]
        proposals.append(grid[index])
        outcome = evaluate(grid[index])
        if outcome is not None:
            metric, cost = outcome
            observed.append((index, (metric, -cost)))
    return proposals


def _fit(indices: Sequence[int], targets: Sequence[tuple[float, float]], encoded: torch.Tensor) -> Any:
    """One GP per objective (both maximised: metric and minus normalised parameters)."""
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import ModelListGP, SingleTaskGP
    from botorch.models.transforms.outcome import Standardize
    from gpytorch.mlls import SumMarginalLogLikelihood

    x = encoded[list(indices)]
    y = torch.tensor(targets, dtype=torch.double)
    models = [SingleTaskGP(x, y[:, [k]], outcome_transform=Standardize(m=1)) for k in range(2)]
    model = ModelListGP(*models)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit_gpytorch_mll(SumMarginalLogLikelihood(model.likelihood, model))
    return model


def _encode(params: Params, dimensions: dict[str, tuple[Any, ...]]) -> list[float]:
    """Each dimension as its choice index scaled to [0, 1] (ordinal, as AutoPEFT encodes sizes and layers)."""
    return [dimensions[n].index(params[n]) / max(len(dimensions[n]) - 1, 1) for n in dimensions]


def _product(dimensions: dict[str, tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return list(itertools.product(*dimensions.values()))
