"""DEIS (Zhang & Chen 2023, "Fast Sampling of Diffusion Models with Exponential Integrator"):
the multistep exponential integrator with Lagrange-polynomial extrapolation of ε̂, in NI form.

The probability-flow ODE in x/α and ρ = σ/α = e^{−λ} is d(x/α)/dρ = L ε̂, so from s to t

    x_t = (α_t/α_s) x_s + α_t Σ_j C_j L ε̂_j,   C_j = ∫_{ρ_s}^{ρ_t} ℓ_j(u(ρ)) dρ,

with ℓ_j the Lagrange basis through the last k nodes (the current one and k − 1 earlier
ones) in the interpolation variable u (``variable``):

- ``"t"`` (default): u = t, **DEIS-tAB**, the paper's time Adams–Bashforth (Algorithm 1 with
  the polynomial in t; the paper's best on VP models is tAB3);
- ``"rho"``: u = ρ, the paper's ρAB (the polynomial in ρ);
- ``"log_rho"``: u = log ρ = −λ, diffusers' ``DEISMultistepScheduler`` ("logrho").

C_j is computed by Gauss–Legendre quadrature in λ (ρ = e^{−λ}, dρ = −e^{−λ} dλ; 16 nodes per
step, exact to rounding for the ρ and log ρ bases, to ≈ 1e-12 for t). Order 1 is DDIM.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from ..errors import InputError
from ._multistep import noise_multistep
from .engine import register_sampler
from .grids import t_of_half_log_snr

__all__ = ["deis", "VARIABLES", "lagrange_weights"]

VARIABLES = ("t", "rho", "log_rho")
_QUADRATURE_NODES = 16


@lru_cache(maxsize=1)
def _gauss_legendre() -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(_QUADRATURE_NODES)


def lagrange_weights(nodes, u, drho) -> list[float]:
    """w_j = Σ_q drho_q ℓ_j(u_q) / Σ_q drho_q: the integrals ∫ ℓ_j dρ by the quadrature rule
    (points u_q in the interpolation variable, weights drho_q in ρ), normalised by the step
    in ρ, for the Lagrange basis ℓ_j(u) = Π_{m≠j} (u − u_m)/(u_j − u_m) through ``nodes``
    (newest first). Σ_j w_j = 1 (the basis sums to 1)."""
    out = []
    for j, uj in enumerate(nodes):
        basis = np.ones_like(u)
        for m, um in enumerate(nodes):
            if m != j:
                basis = basis * (u - um) / (uj - um)
        out.append(float(np.dot(drho, basis) / drho.sum()))
    return out


def _weights(sde, variable: str):
    """The ``weights(steps, i, k)`` of :func:`~sdekit.sampling._multistep.noise_multistep`."""

    def of(lam: float, t: float) -> float:
        return {"t": t, "rho": math.exp(-lam), "log_rho": -lam}[variable]

    def weights(steps, i, k):
        if k == 1:
            return (1.0,)
        step = steps[i]
        x, w = _gauss_legendre()
        lam = step.lam_s + 0.5 * step.h * (x + 1)  # quadrature points in [λ_s, λ_t]
        drho = -np.exp(-lam) * (0.5 * step.h) * w  # dρ = −e^{−λ} dλ
        if variable == "t":
            u = t_of_half_log_snr(sde, torch.as_tensor(lam, dtype=torch.float64)).numpy()
        else:
            u = np.exp(-lam) if variable == "rho" else -lam
        nodes = [of(steps[i - j].lam_s, float(steps[i - j].s)) for j in range(k)]
        return lagrange_weights(nodes, u, drho)

    return weights


@register_sampler("deis", default_grid="time_quadratic", default_denoise=False)
def deis(
    sde,
    model,
    x,
    grid,
    *,
    generator=None,
    order: int = 3,
    variable: str = "t",
    lower_order_final: bool = False,
):
    """DEIS of ``order`` 1–3 with the Lagrange basis in ``variable`` ("t": tAB, "rho": ρAB,
    "log_rho": diffusers'; module docstring); one model call per interval, the order
    warming up from 1. ``lower_order_final``: the k-th step from the end at most of order k
    below 15 steps (diffusers' default)."""
    if order not in (1, 2, 3):
        raise InputError(f"order must be 1, 2 or 3, got {order!r}")
    if variable not in VARIABLES:
        raise InputError(f"variable must be one of {VARIABLES}, got {variable!r}")
    return noise_multistep(sde, model, x, grid, _weights(sde, variable), order, lower_order_final)
