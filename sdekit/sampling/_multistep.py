"""Shared by the DPM-Solver++ family: step orders and the half log-SNR."""

from __future__ import annotations

LOWER_ORDER_BELOW = 15  # as DPM-Solver++ / diffusers: few steps → lower-order final steps


def step_orders(
    num_intervals: int, order: int, denoise: bool, lower_order_final: bool = True
) -> list[int]:
    """The order of each step: warm-up min(order, i + 1); with ``lower_order_final`` and
    fewer than 15 steps in total the last step is first order and the one before it at
    most second.

    The engine's final denoising step (if any) counts as the last step; it is
    first order by construction (x̂₀ at the last time).
    """
    orders = [min(order, i + 1) for i in range(num_intervals)]
    total = num_intervals + int(denoise)
    if lower_order_final and total < LOWER_ORDER_BELOW:
        for k, cap in ((total - 1, 1), (total - 2, 2)):
            if 0 <= k < num_intervals:
                orders[k] = min(orders[k], cap)
    return orders


def half_log_snr(grid) -> list[float]:
    """λ_i = log(α_i/σ_i), DPM-Solver's time variable (half the log-SNR)."""
    return [float(v) for v in 0.5 * grid.log_snr]


def midpoint_estimate(x0, prev, lam: list[float], i: int, order: int):
    """D = x̂₀ + (x̂₀ − x̂₀_prev)/(2r), r = (λ_i − λ_{i−1})/(λ_{i+1} − λ_i): the
    second-order ("midpoint") data estimate of DPM-Solver++(2M); x̂₀ itself at order 1."""
    if order < 2:
        return x0
    r = (lam[i] - lam[i - 1]) / (lam[i + 1] - lam[i])
    return x0 + (x0 - prev) / (2 * r)
