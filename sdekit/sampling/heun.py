"""Heun's second-order method on the probability-flow ODE, EDM style (Karras et al. 2022)."""

from __future__ import annotations

from .engine import register_sampler
from .grids import KARRAS_SIGMA_MAX

#: a step from pure noise (σ̃ = σ/α above :data:`~sdekit.sampling.grids.KARRAS_SIGMA_MAX`)
#: whose σ̃ falls by more than this factor is taken by Euler alone: the trapezoidal corrector
#: weighs the slope at its far end with half the step, which is wrong when the slope changes
#: across orders of magnitude of σ̃ (the first step of a capped Karras grid on a steep
#: schedule), while Euler from pure noise is exact to O(σ̃_s/σ̃_t). Schedules with
#: σ̃_T ≤ 1000 (VP with β_max = 20, DDPM's chain: 152) never take such a step.
HEUN_MAX_STEP_RATIO = 100.0


@register_sampler("heun", default_grid="karras", evals_per_step=2)
def heun(sde, model, x, grid, *, generator=None):
    """EDM's Algorithm 1 in the scaled variables x̃ = x/α, σ̃ = σ/α, where the PF ODE
    is dx̃/dσ̃ = L ε̂(α x̃, t): an Euler predictor then the trapezoidal corrector
    (two model evaluations per step; second order). A step over which σ̃ falls by more
    than :data:`HEUN_MAX_STEP_RATIO` from pure noise keeps the Euler predictor (one
    evaluation).
    """
    L = sde.covariance.sqrt_apply
    for i in range(grid.num_intervals):
        a_t, a_s = float(grid.alpha[i]), float(grid.alpha[i + 1])
        st_t, st_s = float(grid.sigma[i]) / a_t, float(grid.sigma[i + 1]) / a_s
        xt = x / a_t
        d = L(model(x, grid.t[i]))
        x_pred = xt + (st_s - st_t) * d
        if st_t > max(HEUN_MAX_STEP_RATIO * st_s, KARRAS_SIGMA_MAX):
            x = a_s * x_pred
            continue
        d2 = L(model(a_s * x_pred, grid.t[i + 1]))
        x = a_s * (xt + (st_s - st_t) * 0.5 * (d + d2))
    return x
