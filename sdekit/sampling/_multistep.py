"""Shared by the exponential integrators (DPM-Solver, DPM-Solver++, UniPC, SDE-DPM-Solver++,
iPNDM, DEIS): the grid interval, the first-order step, the order of each step and the
Adams-type multistep loop of iPNDM and DEIS.

λ = log(α/σ), half the log-SNR (see :mod:`sdekit.sampling.grids`). A step goes from the
source time s to the target time t < s, h = λ_t − λ_s > 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from torch import Tensor

from .grids import half_log_snr, t_of_half_log_snr

LOWER_ORDER_BELOW = 15  # as DPM-Solver++ / diffusers: few steps → lower-order final steps


@dataclass(frozen=True)
class Interval:
    """One step of a sampler: from the source time ``s`` to the target time ``t``, with
    α, σ and λ at both ends and ``h``, the step in λ."""

    s: Tensor  # the source time (a scalar tensor, as the model is called with)
    t: Tensor  # the target time
    alpha_s: float
    sigma_s: float
    alpha_t: float
    sigma_t: float
    lam_s: float
    lam_t: float
    h: float  # λ_t − λ_s (for a part of an interval: the r·h its formulas use)

    @classmethod
    def of(cls, grid, i: int, lam: list[float] | None = None) -> Interval:
        """Interval ``i`` of ``grid``, from ``grid.t[i]`` to ``grid.t[i + 1]`` (``lam``: the
        grid's λ, if already at hand)."""
        lam = grid_half_log_snr(grid) if lam is None else lam
        return cls(
            s=grid.t[i],
            t=grid.t[i + 1],
            alpha_s=float(grid.alpha[i]),
            sigma_s=float(grid.sigma[i]),
            alpha_t=float(grid.alpha[i + 1]),
            sigma_t=float(grid.sigma[i + 1]),
            lam_s=lam[i],
            lam_t=lam[i + 1],
            h=lam[i + 1] - lam[i],
        )

    def part(self, sde, r: float) -> Interval:
        """From s to the time at λ_s + r·h (the inner nodes of singlestep solvers)."""
        lam = self.lam_s + r * self.h
        t = t_of_half_log_snr(sde, lam)
        alpha, sigma = sde.marginal(t)
        return replace(
            self, t=t, alpha_t=float(alpha), sigma_t=float(sigma), lam_t=lam, h=r * self.h
        )


def grid_half_log_snr(grid) -> list[float]:
    """λ_i = log(α_i/σ_i) at every grid time."""
    return [float(v) for v in half_log_snr(grid.alpha, grid.sigma)]


def intervals(grid) -> list[Interval]:
    """Every interval of ``grid``, in sampling order."""
    lam = grid_half_log_snr(grid)
    return [Interval.of(grid, i, lam) for i in range(grid.num_intervals)]


def first_order_step(x, m, step: Interval, noise: bool):
    """The exponential (DDIM) step from ``step.s`` to ``step.t`` with the model output m
    held fixed:

        noise (m = L ε̂):  x_t = (α_t/α_s) x_s − σ_t (e^h − 1) m,
        data  (m = x̂₀):   x_t = (σ_t/σ_s) x_s − α_t (e^{−h} − 1) m.

    Every higher-order update of DPM-Solver(++) and UniPC is this plus correction terms."""
    if noise:
        return (step.alpha_t / step.alpha_s) * x - (step.sigma_t * math.expm1(step.h)) * m
    return (step.sigma_t / step.sigma_s) * x - (step.alpha_t * math.expm1(-step.h)) * m


def step_orders(
    num_intervals: int,
    order: int,
    denoise: bool,
    lower_order_final: bool = True,
    below: int | None = LOWER_ORDER_BELOW,
) -> list[int]:
    """The order of each step of a multistep solver of ``order`` (1 to 3; iPNDM: 4).

    Warm-up: step i (from 0) is at most of order i + 1. With ``lower_order_final``, the
    k-th step from the end is at most of order k (the last first order, the one before at
    most second, ...), counting the engine's final denoising step (if any, ``denoise``) as
    the last (it is first order by construction: x̂₀ at the last time).

    ``below``: lower the final orders only with fewer steps than this in all (DPM-Solver++'s
    and diffusers' rule for DPM-Solver, 15, the default); ``None``: whatever the number of
    steps, as UniPC's code and diffusers' UniPC scheduler do. The two rules differ only from
    15 steps on, where DPM-Solver(++) keeps the full order and UniPC does not.
    """
    total = num_intervals + int(denoise)
    lower = lower_order_final and (below is None or total < below)
    return [
        min(order, i + 1, total - i) if lower else min(order, i + 1) for i in range(num_intervals)
    ]


def midpoint_estimate(x0, prev, h_prev: float | None, h: float, order: int):
    """D = x̂₀ + (x̂₀ − x̂₀_prev)/(2r), r = h_prev/h (the previous step in λ over this one):
    the second-order ("midpoint") data estimate of DPM-Solver++(2M); x̂₀ itself at order 1
    (``prev`` and ``h_prev`` unused)."""
    if order < 2:
        return x0
    return x0 + (x0 - prev) / (2 * (h_prev / h))


def noise_multistep(sde, model, x, grid, weights, order: int, lower_order_final: bool):
    """The multistep loop of iPNDM and DEIS: the DDIM step with the noise m = L ε̂ replaced
    by a combination of the last k outputs,

        x_t = (α_t/α_s) x_s + α_t (ρ_t − ρ_s) Σ_j w_j m_{i−j},   ρ = σ/α = e^{−λ},  Σ_j w_j = 1,

    i.e. x/α advanced along the probability-flow ODE d(x/α)/dρ = L ε̂ with m held at the
    combination (at k = 1, w = (1,): DDIM, :func:`first_order_step`). ``weights(steps, i, k)``
    gives w_0 … w_{k−1} for step i of order k, newest first; the orders come from
    :func:`step_orders` (warm-up, then ``order``; lower final orders with
    ``lower_order_final`` below 15 steps)."""
    steps = intervals(grid)
    orders = step_orders(len(steps), order, grid.denoise, lower_order_final)
    hist: list = []  # m at the earlier nodes, newest last
    for i, (step, k) in enumerate(zip(steps, orders, strict=True)):
        hist = (hist + [sde.covariance.sqrt_apply(model(x, step.s))])[-order:]
        w = weights(steps, i, k)
        m = w[0] * hist[-1]
        for j in range(1, k):
            m = m + w[j] * hist[-1 - j]
        x = first_order_step(x, m, step, noise=True)
    return x
