"""UniPC (Zhao et al. 2023): unified predictor–corrector, in NI form, with data
prediction (m = x̂₀, as DPM-Solver++) or noise prediction (m = L ε̂, as DPM-Solver)."""

from __future__ import annotations

import math

import torch

from ..errors import InputError
from ._multistep import first_order_step, intervals, step_orders
from .engine import register_sampler


def _coefficients(hh: float, rks: list[float], order: int, variant: str):
    """B(h), the Vandermonde system R and right-hand side b of UniPC."""
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
    return b_h, torch.stack(rows), torch.tensor(rhs, dtype=torch.float64)


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

    From s to t (λ = log(α/σ), h = λ_t − λ_s), with m_k the model output at the earlier
    nodes s_k, r_k = (λ_{s_k} − λ_s)/h and D_k = (m_k − m_s)/r_k, the predictor is

        data  (m = x̂₀):   x_t = (σ_t/σ_s) x_s − α_t (e^{−h} − 1) m_s − α_t B(−h) Σ_k ρ_k D_k,
        noise (m = L ε̂):  x_t = (α_t/α_s) x_s − σ_t (e^{h} − 1) m_s − σ_t B(h) Σ_k ρ_k D_k,

    B(h) = h (bh1) or e^h − 1 (bh2), ρ from UniPC's Vandermonde system. Once ε̂ is
    evaluated at x_t, the corrector redoes the step including D = m_t − m_s (raising the
    order by one at no extra model evaluation); the new ε̂ is kept, as in the paper. With
    ``lower_order_final`` (UniPC's default) the k-th step from the end is at most of order k
    whatever the number of steps, as in UniPC's code (DPM-Solver only lowers them below 15
    steps: :func:`~sdekit.sampling._multistep.step_orders`); at 10 steps it can cost 100× in
    accuracy, see docs/samplers.md.
    """
    if order not in (1, 2, 3):
        raise InputError(f"order must be 1, 2 or 3, got {order!r}")
    if variant not in ("bh1", "bh2"):
        raise InputError(f"variant must be 'bh1' or 'bh2', got {variant!r}")
    if prediction not in ("data", "noise"):
        raise InputError(f"prediction must be 'data' or 'noise', got {prediction!r}")
    noise = prediction == "noise"
    steps = intervals(grid)
    orders = step_orders(len(steps), order, grid.denoise, lower_order_final, below=None)
    ms: list = []  # model output history, newest last
    prev_x, prev_order = None, 0
    for i, (step, this_order) in enumerate(zip(steps, orders, strict=True)):
        eps = model(x, step.s)
        m = sde.covariance.sqrt_apply(eps) if noise else sde.eps_to_x0(eps, x, step.s)
        if corrector and i > 0:  # correct x_i with the new evaluation m_i
            x = _update(prev_x, ms, steps, i - 1, prev_order, variant, noise, m_new=m)
        ms = (ms + [m])[-order:]
        prev_x, prev_order = x, this_order
        x = _update(x, ms, steps, i, this_order, variant, noise)
    return x


def _update(x, ms, steps, i, order, variant, noise, m_new=None):
    """UniP (``m_new`` None) or UniC (``m_new`` = the model output at node i+1) over
    ``steps[i]``, from node i to node i+1; ``ms`` holds the outputs at nodes ..., i-1, i
    (newest last)."""
    step = steps[i]
    m0 = ms[-1]
    h = step.h
    hh = h if noise else -h
    rks = [(steps[i - k].lam_s - step.lam_s) / h for k in range(1, order)]
    d1s = [(ms[-1 - k] - m0) / r for k, r in zip(range(1, order), rks, strict=True)]
    b_h, R, b = _coefficients(hh, rks, order, variant)
    c = step.sigma_t if noise else step.alpha_t
    out = first_order_step(x, m0, step, noise)
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
