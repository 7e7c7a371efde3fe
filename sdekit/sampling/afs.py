"""The analytic first step (AFS; Dockhorn et al. 2022, Zhou et al. 2024 "Fast ODE-based
sampling for diffusion models in around 5 steps"): the model's first evaluation, at the
prior draw x_T and t = T, replaced by its closed-form limit, saving one evaluation.

Derivation. By definition ε̂ = L⁻¹(x_t − α_t x̂₀)/σ_t. At T the data's share of x_T is
α_T x̂₀ against noise σ_T L ε (VP with β 0.1 → 20: α_T/σ_T = 6.6e-3; VE: α = 1, σ_max ≫ the
data scale), so with x̂₀ ≈ 0 (centred data)

    ε̂(x_T, T) ≈ L⁻¹ x_T / σ_T      (whitened; the correlated noise L ε̂ = x_T/σ_T),

which for x_T ~ N(0, σ_T² Σ) is a standard normal draw: the prior's own noise. The error is
α_T L⁻¹ x̂₀/σ_T: for Gaussian data N(0, C) the exact ε̂ is σ_T (α_T² C̃ + σ_T²)⁻¹ L⁻¹ x_T,
C̃ = L⁻¹ C L⁻ᵀ, a relative error α_T² c/σ_T² (4e-5 · c for the VP SDE above).

**Budget.** ``steps`` stays the number of model evaluations: with ``afs=True`` a sampler
runs on the grid that ``steps + 1`` evaluations buy without it (one interval more for the
one-call samplers, ``entry.intervals(budget + 1)`` in general) and its first call is free.
Allowed for every deterministic sampler with a fixed number of calls that starts from the
prior at the grid's first time (not with a teleport, whose hand-over state carries data).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import InputError

__all__ = ["AnalyticFirstStep", "afs_option"]


def afs_option(options: dict, entry, teleport) -> bool:
    """The ``afs`` sampler option, checked: ``InputError`` unless a bool, and for a stochastic
    sampler, an adaptive one (no fixed budget) or a teleport."""
    afs = options.get("afs", False)
    if not isinstance(afs, bool):
        raise InputError(f"afs must be True or False, got {afs!r}")
    if afs and entry.stochastic:
        raise InputError(
            "afs: the analytic first step is for deterministic samplers; this one draws noise"
        )
    if afs and entry.evals_per_step is None and entry.intervals is None:
        raise InputError("afs needs a sampler with a fixed budget of model calls (steps)")
    if afs and teleport is not None:
        raise InputError(
            "afs cannot follow a teleport: at its hand-over time x carries the data, and "
            "ε̂ ≈ L⁻¹x/σ holds only at the prior (drop afs or the teleport)"
        )
    return afs


class AnalyticFirstStep:
    """``model(x, t)``, except that the first call returns ε̂ = L⁻¹ x/σ_t = the whitened
    noise of x for x̂₀ = 0 (:meth:`SDE.x0_to_eps`), without calling the model."""

    def __init__(self, model, sde):
        self.model, self.sde, self.first = model, sde, True

    def __call__(self, x: Tensor, t) -> Tensor:
        if not self.first:
            return self.model(x, t)
        self.first = False
        t = torch.as_tensor(t, dtype=torch.float64)
        return self.sde.x0_to_eps(torch.zeros_like(x), x, t)
