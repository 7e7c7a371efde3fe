"""Euler's method on the probability-flow ODE, in t."""

from __future__ import annotations

from .engine import register_sampler


@register_sampler("euler", default_grid="time")
def euler(sde, model, x, grid, *, generator=None):
    """x_s = x_t + (s - t) [f(t) x_t + g(t)²/(2σ_t) L ε̂(x_t, t)]  (first order)."""
    for i in range(grid.num_intervals):
        t, s = grid.t[i], grid.t[i + 1]
        x = x + float(s - t) * sde.reverse_drift(x, t, model(x, t), probability_flow=True)
    return x
