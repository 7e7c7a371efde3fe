"""DDIM (Song, Meng & Ermon 2021), in NI form."""

from __future__ import annotations

import math

from ..errors import InputError
from .engine import register_sampler, whitened_noise


@register_sampler("ddim", default_grid="time")
def ddim(sde, model, x, grid, *, generator=None, eta: float = 0.0):
    """x_s = α_s x̂₀ + sqrt(σ_s² - c²) L ε̂ + c L z,  c = η σ̃ (paper eqs. 20–21).

    σ̃² = σ_s² (1 - α_t² σ_s² / (α_s² σ_t²)) is the ancestral posterior variance:
    η = 0 is deterministic DDIM (Euler in σ/α), η = 1 is ancestral sampling.
    """
    if not (eta >= 0):
        raise InputError(f"eta must be >= 0, got {eta}")
    L = sde.covariance.sqrt_apply
    for i in range(grid.num_intervals):
        a_t, s_t = float(grid.alpha[i]), float(grid.sigma[i])
        a_s, s_s = float(grid.alpha[i + 1]), float(grid.sigma[i + 1])
        c2 = eta**2 * s_s**2 * (1 - (a_t * s_s) ** 2 / (a_s * s_t) ** 2)
        # x_s = α_s (x - σ_t L ε̂)/α_t + sqrt(σ_s² - c²) L ε̂ + c L z, with one application of L
        w = (math.sqrt(max(s_s**2 - c2, 0.0)) - a_s * s_t / a_t) * model(x, grid.t[i])
        if eta > 0:
            w = w + math.sqrt(c2) * whitened_noise(x, generator)
        x = (a_s / a_t) * x + L(w)
    return x
