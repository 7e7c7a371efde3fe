"""Euler–Maruyama on the reverse-time SDE."""

from __future__ import annotations

import math

from .engine import register_sampler, whitened_noise


@register_sampler("euler_maruyama", default_grid="time", stochastic=True)
def euler_maruyama(sde, model, x, grid, *, generator=None):
    """x_s = x_t + (s - t) [f x_t + (g²/σ_t) L ε̂] + g sqrt(t - s) L z  (strong order ½)."""
    L = sde.covariance.sqrt_apply
    for i in range(grid.num_intervals):
        t, s = grid.t[i], grid.t[i + 1]
        h = float(t - s)
        drift = sde.reverse_drift(x, t, model(x, t))
        g = float(sde.diffusion(t))
        x = x - h * drift + g * math.sqrt(h) * L(whitened_noise(x, generator))
    return x
