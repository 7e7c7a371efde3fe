"""Ancestral sampling: DDPM for VP (Ho et al. 2020, Alg. 2), SMLD's for VE."""

from __future__ import annotations

import math

from ..errors import InputError
from .engine import register_sampler, whitened_noise


@register_sampler("ancestral", default_grid="time", stochastic=True)
def ancestral(sde, model, x, grid, *, generator=None, variance: str = "posterior"):
    """Draw x_s ~ q(x_s | x_t, x̂₀) step by step (paper eqs. 18–19 in NI form).

    With α_{t|s} = α_t/α_s and σ²_{t|s} = σ_t² - α_{t|s}² σ_s² (β_t in DDPM):

        x_s = (α_{t|s} σ_s²/σ_t²) x_t + (α_s σ²_{t|s}/σ_t²) x̂₀ + σ̃ L z,

    σ̃² = σ²_{t|s} σ_s²/σ_t² (``variance="posterior"``, DDPM's β̃) or σ²_{t|s}
    (``variance="beta"``, DDPM's β). For VE (α = 1) this is SMLD's ancestral step
    x_s = x_t + (σ_t² - σ_s²) Σ∇log p + σ̃ L z.
    """
    if variance not in ("posterior", "beta"):
        raise InputError(f"variance must be 'posterior' or 'beta', got {variance!r}")
    L = sde.covariance.sqrt_apply
    for i in range(grid.num_intervals):
        a_t, s_t = float(grid.alpha[i]), float(grid.sigma[i])
        a_s, s_s = float(grid.alpha[i + 1]), float(grid.sigma[i + 1])
        a_ts = a_t / a_s
        var_ts = s_t**2 - a_ts**2 * s_s**2
        var = var_ts * s_s**2 / s_t**2 if variance == "posterior" else var_ts
        # x̂₀ = (x - σ_t L ε̂)/α_t folded in, so L is applied once to (ε̂, z)
        c_x0 = a_s * var_ts / s_t**2
        w = (-c_x0 * s_t / a_t) * model(x, grid.t[i])
        w = w + math.sqrt(var) * whitened_noise(x, generator)
        x = (a_ts * s_s**2 / s_t**2 + c_x0 / a_t) * x + L(w)
    return x
