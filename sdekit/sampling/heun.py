"""Heun's second-order method on the probability-flow ODE, EDM style (Karras et al. 2022)."""

from __future__ import annotations

from .engine import register_sampler


@register_sampler("heun", default_grid="karras", evals_per_step=2)
def heun(sde, model, x, grid, *, generator=None):
    """EDM's Algorithm 1 in the scaled variables x̃ = x/α, σ̃ = σ/α, where the PF ODE
    is dx̃/dσ̃ = L ε̂(α x̃, t): an Euler predictor then the trapezoidal corrector
    (two model evaluations per step; second order).
    """
    L = sde.covariance.sqrt_apply
    for i in range(grid.num_intervals):
        a_t, a_s = float(grid.alpha[i]), float(grid.alpha[i + 1])
        st_t, st_s = float(grid.sigma[i]) / a_t, float(grid.sigma[i + 1]) / a_s
        xt = x / a_t
        d = L(model(x, grid.t[i]))
        x_pred = xt + (st_s - st_t) * d
        d2 = L(model(a_s * x_pred, grid.t[i + 1]))
        x = a_s * (xt + (st_s - st_t) * 0.5 * (d + d2))
    return x
