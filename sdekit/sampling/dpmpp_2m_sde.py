"""SDE-DPM-Solver++(2M) (Lu et al. 2022), in NI form."""

from __future__ import annotations

import math

from ._multistep import half_log_snr, midpoint_estimate, step_orders
from .engine import register_sampler, whitened_noise


@register_sampler("dpmpp_2m_sde", default_grid="logsnr", stochastic=True)
def dpmpp_2m_sde(sde, model, x, grid, *, generator=None):
    """Multistep second-order solver of the reverse SDE (data prediction):

        x_s = (σ_s/σ_t) e^{-h} x_t + α_s (1 - e^{-2h}) [x̂₀_t + (x̂₀_t - x̂₀_prev)/(2r)]
              + σ_s sqrt(1 - e^{-2h}) L z,

    h = λ_s - λ_t, r = (λ_t - λ_prev)/h (diffusers' "midpoint" variant). The noise
    is drawn in whitened coordinates and shaped by L.
    """
    lam = half_log_snr(grid)
    L = sde.covariance.sqrt_apply
    prev = None
    for i, order in enumerate(step_orders(grid.num_intervals, 2, grid.denoise)):
        s_t = float(grid.sigma[i])
        a_s, s_s = float(grid.alpha[i + 1]), float(grid.sigma[i + 1])
        x0 = sde.eps_to_x0(model(x, grid.t[i]), x, grid.t[i])
        h = lam[i + 1] - lam[i]
        phi2 = -math.expm1(-2 * h)
        d = midpoint_estimate(x0, prev, lam, i, order)
        noise = L(whitened_noise(x, generator))
        x = (s_s / s_t * math.exp(-h)) * x + (a_s * phi2) * d + (s_s * math.sqrt(phi2)) * noise
        prev = x0
    return x
