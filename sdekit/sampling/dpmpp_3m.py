"""DPM-Solver++(3M) (Lu et al. 2022), in NI form."""

from __future__ import annotations

import math

from ._multistep import half_log_snr, step_orders
from .engine import register_sampler


@register_sampler("dpmpp_3m", default_grid="logsnr")
def dpmpp_3m(sde, model, x, grid, *, generator=None):
    """Multistep third-order data-prediction exponential integrator.

    With h = λ_s - λ_t, r₀ = (λ_t - λ_{t-1})/h, r₁ = (λ_{t-1} - λ_{t-2})/h,
    D₁⁰ = (m₀ - m₁)/r₀, D₁¹ = (m₁ - m₂)/r₁, D₁ = D₁⁰ + r₀/(r₀+r₁)(D₁⁰ - D₁¹),
    D₂ = (D₁⁰ - D₁¹)/(r₀+r₁), φ = 1 - e^{-h}:

        x_s = (σ_s/σ_t) x_t + α_s φ m₀ + α_s (1 - φ/h) D₁ - α_s ((h - φ)/h² - ½) D₂.

    Warm-up with first and second order (2M) steps; lower orders at the end for
    fewer than 15 steps.
    """
    lam = half_log_snr(grid)
    hist: list = []  # x̂₀ at the previous times, newest last
    for i, order in enumerate(step_orders(grid.num_intervals, 3, grid.denoise)):
        s_t = float(grid.sigma[i])
        a_s, s_s = float(grid.alpha[i + 1]), float(grid.sigma[i + 1])
        m0 = sde.eps_to_x0(model(x, grid.t[i]), x, grid.t[i])
        h = lam[i + 1] - lam[i]
        phi = -math.expm1(-h)
        out = (s_s / s_t) * x + (a_s * phi) * m0
        if order >= 2:
            r0 = (lam[i] - lam[i - 1]) / h
            d1_0 = (m0 - hist[-1]) / r0
            if order == 2:
                out = out + (0.5 * a_s * phi) * d1_0
            else:
                r1 = (lam[i - 1] - lam[i - 2]) / h
                d1_1 = (hist[-1] - hist[-2]) / r1
                d1 = d1_0 + (r0 / (r0 + r1)) * (d1_0 - d1_1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                out = out + (a_s * (1 - phi / h)) * d1 - (a_s * ((h - phi) / h**2 - 0.5)) * d2
        x = out
        hist = (hist + [m0])[-2:]
    return x
