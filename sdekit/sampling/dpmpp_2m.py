"""DPM-Solver++(2M) (Lu et al. 2022), in NI form."""

from __future__ import annotations

import math

from ._multistep import half_log_snr, midpoint_estimate, step_orders
from .engine import register_sampler


@register_sampler("dpmpp_2m", default_grid="logsnr")
def dpmpp_2m(sde, model, x, grid, *, generator=None):
    """Multistep second-order data-prediction exponential integrator.

    With λ = log(α/σ), h = λ_s - λ_t, r = (λ_t - λ_prev)/h and x̂₀ = (x - σ L ε̂)/α:

        x_s = (σ_s/σ_t) x_t + α_s (1 - e^{-h}) [x̂₀_t + (x̂₀_t - x̂₀_prev)/(2r)]

    (diffusers' "midpoint" variant). The linear part is scalar, so the update is
    unchanged for Σ ≠ I; only x̂₀ involves L.
    """
    lam = half_log_snr(grid)
    prev = None
    for i, order in enumerate(step_orders(grid.num_intervals, 2, grid.denoise)):
        s_t = float(grid.sigma[i])
        a_s, s_s = float(grid.alpha[i + 1]), float(grid.sigma[i + 1])
        x0 = sde.eps_to_x0(model(x, grid.t[i]), x, grid.t[i])
        h = lam[i + 1] - lam[i]
        phi = -math.expm1(-h)
        d = midpoint_estimate(x0, prev, lam, i, order)
        x = (s_s / s_t) * x + (a_s * phi) * d
        prev = x0
    return x
