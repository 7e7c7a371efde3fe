"""SDE-DPM-Solver++(2M) (Lu et al. 2022), in NI form."""

from __future__ import annotations

import math

from ._multistep import intervals, midpoint_estimate, step_orders
from .engine import register_sampler, whitened_noise


@register_sampler("dpmpp_2m_sde", default_grid="logsnr", stochastic=True)
def dpmpp_2m_sde(sde, model, x, grid, *, generator=None):
    """Multistep second-order solver of the reverse SDE (data prediction):

        x_t = (σ_t/σ_s) e^{-h} x_s + α_t (1 - e^{-2h}) [x̂₀_s + (x̂₀_s - x̂₀_prev)/(2r)]
              + σ_t sqrt(1 - e^{-2h}) L z,

    from s to t, h = λ_t - λ_s, r = (λ_s - λ_prev)/h (diffusers' "midpoint" variant). The noise
    is drawn in whitened coordinates and shaped by L.
    """
    L = sde.covariance.sqrt_apply
    prev = prev_h = None
    steps = intervals(grid)
    for step, order in zip(steps, step_orders(len(steps), 2, grid.denoise), strict=True):
        x0 = sde.eps_to_x0(model(x, step.s), x, step.s)
        h = step.h
        phi2 = -math.expm1(-2 * h)
        d = midpoint_estimate(x0, prev, prev_h, h, order)
        noise = L(whitened_noise(x, generator))
        x = (
            (step.sigma_t / step.sigma_s * math.exp(-h)) * x
            + (step.alpha_t * phi2) * d
            + (step.sigma_t * math.sqrt(phi2)) * noise
        )
        prev, prev_h = x0, h
    return x
