"""UniPC (Zhao et al. 2023): unified predictor–corrector, in NI form, with data
prediction (m = x̂₀, as DPM-Solver++) or noise prediction (m = L ε̂, as DPM-Solver)."""

from __future__ import annotations

import math

import torch

from ..errors import InputError
from ._multistep import half_log_snr
from .engine import register_sampler


def _coefficients(hh: float, rks: list[float], order: int, variant: str):
    """h·φ₁, B(h), the Vandermonde system R and right-hand side b of UniPC."""
    h_phi_1 = math.expm1(hh)
    h_phi_k = h_phi_1 / hh - 1
    b_h = hh if variant == "bh1" else math.expm1(hh)
    r = torch.tensor(rks + [1.0], dtype=torch.float64)
    rows, rhs, fact = [], [], 1
    for j in range(1, order + 1):
        rows.append(r ** (j - 1))
        rhs.append(h_phi_k * fact / b_h)
        fact *= j + 1
        h_phi_k = h_phi_k / hh - 1 / fact
    return h_phi_1, b_h, torch.stack(rows), torch.tensor(rhs, dtype=torch.float64)


@register_sampler("unipc", default_grid="logsnr")
def unipc(
    sde,
    model,
    x,
    grid,
    *,
    generator=None,
    order: int = 2,
    variant: str = "bh2",
    corrector: bool = True,
    prediction: str = "data",
    lower_order_final: bool = True,
):
    """UniP-p predictor with the UniC corrector (``variant`` "bh1" or "bh2").

    With λ = log(α/σ), h = λ_s - λ_t, m_j = the model output at earlier times,
    r_k = (λ_{t_k} - λ_t)/h and D_k = (m_k - m_t)/r_k, the predictor is

        data  (m = x̂₀):   x_s = (σ_s/σ_t) x_t - α_s (e^{-h} - 1) m_t - α_s B(-h) Σ_k ρ_k D_k,
        noise (m = L ε̂):  x_s = (α_s/α_t) x_t - σ_s (e^{h} - 1) m_t - σ_s B(h) Σ_k ρ_k D_k,

    B(h) = h (bh1) or e^h − 1 (bh2), ρ from UniPC's Vandermonde system. Once ε̂ is
    evaluated at x_s, the corrector redoes the step including D = m_s - m_t (raising the
    order by one at no extra model evaluation); the new ε̂ is kept, as in the paper. Final
    steps use lower orders when ``lower_order_final`` (UniPC's default; at 10 steps it can
    cost 100× in accuracy, see docs/samplers.md).
    """
    if order not in (1, 2, 3):
        raise InputError(f"order must be 1, 2 or 3, got {order!r}")
    if variant not in ("bh1", "bh2"):
        raise InputError(f"variant must be 'bh1' or 'bh2', got {variant!r}")
    if prediction not in ("data", "noise"):
        raise InputError(f"prediction must be 'data' or 'noise', got {prediction!r}")
    lam = half_log_snr(grid)
    total = grid.num_steps
    noise = prediction == "noise"
    ms: list = []  # x̂₀ history, newest last
    prev_x, prev_order = None, 0
    for i in range(grid.num_intervals):
        eps = model(x, grid.t[i])
        m = sde.covariance.sqrt_apply(eps) if noise else sde.eps_to_x0(eps, x, grid.t[i])
        if corrector and i > 0:  # correct x_i with the new evaluation m_i
            x = _update(prev_x, ms, lam, grid, i - 1, prev_order, variant, noise, m_new=m)
        ms = (ms + [m])[-order:]
        this_order = min(order, i + 1, total - i if lower_order_final else order)
        prev_x, prev_order = x, this_order
        x = _update(x, ms, lam, grid, i, this_order, variant, noise)
    return x


def _update(x, ms, lam, grid, i, order, variant, noise, m_new=None):
    """UniP (``m_new`` None) or UniC (``m_new`` = the model output at node i+1) from node i
    to node i+1; ``ms`` holds the outputs at nodes ..., i-1, i (newest last)."""
    m0 = ms[-1]
    h = lam[i + 1] - lam[i]
    hh = h if noise else -h
    rks = [(lam[i - k] - lam[i]) / h for k in range(1, order)]
    d1s = [(ms[-1 - k] - m0) / r for k, r in zip(range(1, order), rks, strict=True)]
    h_phi_1, b_h, R, b = _coefficients(hh, rks, order, variant)
    a_s, s_s = float(grid.alpha[i + 1]), float(grid.sigma[i + 1])
    a_t, s_t = float(grid.alpha[i]), float(grid.sigma[i])
    scale, c = (a_s / a_t, s_s) if noise else (s_s / s_t, a_s)
    out = scale * x - (c * h_phi_1) * m0
    if m_new is None:
        if d1s:
            rhos = [0.5] if order == 2 else torch.linalg.solve(R[:-1, :-1], b[:-1]).tolist()
            out = out - (c * b_h) * sum(r * d for r, d in zip(rhos, d1s, strict=True))
        return out
    rhos = [0.5] if order == 1 else torch.linalg.solve(R, b).tolist()
    res = rhos[-1] * (m_new - m0)
    for r, d in zip(rhos[:-1], d1s, strict=True):
        res = res + r * d
    return out - (c * b_h) * res
