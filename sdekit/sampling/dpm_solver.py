"""DPM-Solver (Lu et al. 2022a) and DPM-Solver++ (Lu et al. 2022b), in NI form.

Exponential integrators of the probability-flow ODE in λ = log(α/σ) (half the log-SNR),
with the model output taken as

- ``prediction="noise"`` (DPM-Solver): m = L ε̂, the correlated noise of x = α x̂₀ + σ L ε̂;
- ``prediction="data"`` (DPM-Solver++): m = x̂₀ = (x − σ L ε̂)/α.

Step from s to t, h = λ_t − λ_s (D₁, D₂ divided differences of m in λ, see below):

    noise:  x_t = (α_t/α_s) x_s − σ_t φ₁ m_s − σ_t φ₂ D₁ − σ_t φ₃ D₂,
            φ₁ = e^h − 1,  φ₂ = φ₁/h − 1,  φ₃ = φ₂/h − ½;
    data:   x_t = (σ_t/σ_s) x_s − α_t φ₁ m_s + α_t φ₂ D₁ − α_t φ₃ D₂,
            φ₁ = e^{−h} − 1,  φ₂ = φ₁/h + 1,  φ₃ = φ₂/h − ½.

**Multistep** (one model call per step) takes D from earlier steps: with r₀ = h₀/h,
r₁ = h₁/h (the previous two λ steps), D₁⁰ = (m₀ − m₁)/r₀, D₁¹ = (m₁ − m₂)/r₁; order 2 uses
the term −½ σ_t φ₁ D₁⁰ (noise) or −½ α_t φ₁ D₁⁰ (data) in place of the φ₂ term; order 3
uses D₁ = D₁⁰ + r₀/(r₀+r₁)(D₁⁰ − D₁¹), D₂ = (D₁⁰ − D₁¹)/(r₀+r₁). The first steps warm up
with lower orders.

**Singlestep** (``order`` model calls per step) evaluates the model inside the step at
λ_s + r h (r = ½ for order 2; ⅓, ⅔ for order 3), the "DPM-Solver-2/3" updates of the paper.

``lower_order_final``: with fewer than 15 steps in all, the last step is first order and
the one before it at most second (DPM-Solver's and diffusers' default; it can cost 100×
in accuracy at 10 steps on smooth problems — the benchmark in docs/samplers.md shows when).
"""

from __future__ import annotations

import math

from ..errors import InputError
from ._multistep import first_order_step, intervals, step_orders
from .engine import register_sampler

__all__ = ["dpm_solver_multistep", "dpm_solver_singlestep", "singlestep_orders", "PREDICTIONS"]

PREDICTIONS = ("noise", "data")


def _check(order: int, prediction: str, orders=(1, 2, 3)) -> None:
    if order not in orders:
        raise InputError(f"order must be one of {orders}, got {order!r}")
    if prediction not in PREDICTIONS:
        raise InputError(f"prediction must be 'noise' or 'data', got {prediction!r}")


def _output(sde, model, x, t, prediction: str):
    """m = L ε̂ (noise prediction) or x̂₀ (data prediction) at (x, t)."""
    eps = model(x, t)
    return sde.covariance.sqrt_apply(eps) if prediction == "noise" else sde.eps_to_x0(eps, x, t)


def _coefficients(h: float, prediction: str) -> tuple[float, float, float]:
    """φ₁, φ₂, φ₃ of the module docstring."""
    if prediction == "noise":
        phi1 = math.expm1(h)
        phi2 = phi1 / h - 1
    else:
        phi1 = math.expm1(-h)
        phi2 = phi1 / h + 1
    return phi1, phi2, phi2 / h - 0.5


def dpm_solver_multistep(
    sde,
    model,
    x,
    grid,
    *,
    generator=None,
    order: int = 2,
    prediction: str = "data",
    lower_order_final: bool = True,
):
    """Multistep DPM-Solver (``prediction="noise"``) or DPM-Solver++ (``"data"``) of
    ``order`` 1–3 (see the module docstring)."""
    _check(order, prediction)
    noise = prediction == "noise"
    hist: list = []  # m at the previous nodes, newest last
    steps = intervals(grid)
    orders = step_orders(len(steps), order, grid.denoise, lower_order_final)
    for i, (step, k) in enumerate(zip(steps, orders, strict=True)):
        m0 = _output(sde, model, x, step.s, prediction)
        h = step.h
        phi1, phi2, phi3 = _coefficients(h, prediction)
        c = step.sigma_t if noise else step.alpha_t
        out = first_order_step(x, m0, step, noise)
        if k >= 2:
            r0 = steps[i - 1].h / h
            d1_0 = (m0 - hist[-1]) / r0
            if k == 2:
                out = out - (0.5 * c * phi1) * d1_0
            else:
                r1 = steps[i - 2].h / h
                d1_1 = (hist[-1] - hist[-2]) / r1
                d1 = d1_0 + (r0 / (r0 + r1)) * (d1_0 - d1_1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                sign = -1.0 if noise else 1.0
                out = out + (sign * c * phi2) * d1 - (c * phi3) * d2
        x = out
        hist = (hist + [m0])[-2:]
    return x


def singlestep_orders(num_intervals: int, order: int, budget: int | None) -> list[int]:
    """The order of each of the ``num_intervals`` intervals of a singlestep solver of
    ``order`` (an interval of order k costs k model evaluations).

    ``budget`` ``None``: ``order`` on every interval. Otherwise orders from 1 to ``order``
    adding up to ``budget``, the highest first: ``order`` while every later interval can
    still get one evaluation, then what is left, then 1. On the K = ⌈budget/order⌉
    intervals a budget buys (the samplers' ``intervals`` rule) that is
    [order]·(K−1) + [budget − order·(K−1)], the last interval taking the remainder (1 to
    ``order``): the official DPM-Solver code's mixed-order ("adaptive") singlestep solver
    for order 2; for order 3 and a budget divisible by 3 that code instead takes one
    interval more and ends on [2, 1].

    **Raises:** ``InputError`` unless ``budget`` is an int from K to order·K
    (K = ``num_intervals``).
    """
    if budget is None:
        return [order] * num_intervals
    ok = isinstance(budget, int) and not isinstance(budget, bool)
    if not (ok and num_intervals <= budget <= order * num_intervals):
        raise InputError(
            f"budget={budget!r} model evaluations cannot be spent on {num_intervals} "
            f"intervals of 1 to {order} evaluations each (singlestep order {order}): it "
            f"must be an int from {num_intervals} to {order * num_intervals}"
        )
    orders = []
    for i in range(num_intervals):
        k = min(order, budget - (num_intervals - 1 - i))  # leave 1 for each later interval
        orders.append(k)
        budget -= k
    return orders


def dpm_solver_singlestep(
    sde,
    model,
    x,
    grid,
    *,
    generator=None,
    order: int = 2,
    prediction: str = "data",
):
    """Singlestep DPM-Solver-2/3 (``prediction="noise"``) or DPM-Solver++(2S/3S)
    (``"data"``): ``order`` model evaluations per grid interval, or, when the grid has a
    ``budget``, exactly that many in all (orders from :func:`singlestep_orders`: an
    interval of order 1 takes the first-order step, one of order 2 in a third-order solver
    DPM-Solver-2's update, r = ½)."""
    _check(order, prediction, orders=(2, 3))
    noise = prediction == "noise"
    sign = 1.0 if noise else -1.0  # e^{±r h} in the φ's
    steps = intervals(grid)
    for step, k in zip(steps, singlestep_orders(len(steps), order, grid.budget), strict=True):
        h = step.h
        m_s = _output(sde, model, x, step.s, prediction)
        base = first_order_step(x, m_s, step, noise)
        if k == 1:
            x = base
            continue
        phi1, phi2, _ = _coefficients(h, prediction)
        c = step.sigma_t if noise else step.alpha_t
        if k == 2:
            r1 = 0.5
            mid = step.part(sde, r1)
            m1 = _output(sde, model, first_order_step(x, m_s, mid, noise), mid.t, prediction)
            x = base - (0.5 / r1) * (c * phi1) * (m1 - m_s)
            continue
        r1, r2 = 1 / 3, 2 / 3
        mid1, mid2 = step.part(sde, r1), step.part(sde, r2)
        m1 = _output(sde, model, first_order_step(x, m_s, mid1, noise), mid1.t, prediction)
        phi22 = math.expm1(sign * r2 * h) / (r2 * h) - sign
        c2 = mid2.sigma_t if noise else mid2.alpha_t
        x2 = first_order_step(x, m_s, mid2, noise) + (-sign) * (r2 / r1) * (c2 * phi22) * (m1 - m_s)
        m2 = _output(sde, model, x2, mid2.t, prediction)
        x = base + (-sign) * (1 / r2) * (c * phi2) * (m2 - m_s)
    return x


def _register_multistep(name: str, order: int, prediction: str, grid: str, lof: bool):
    def fn(sde, model, x, grid, *, generator=None, lower_order_final: bool = lof, **opts):
        opts.setdefault("order", order)
        opts.setdefault("prediction", prediction)
        return dpm_solver_multistep(
            sde, model, x, grid, lower_order_final=lower_order_final, **opts
        )

    fn.__name__ = name
    fn.__doc__ = f"Multistep DPM-Solver{'++' if prediction == 'data' else ''}, order {order}."
    register_sampler(name, default_grid=grid, default_denoise=prediction == "data")(fn)


def _register_singlestep(name: str, order: int, prediction: str, grid: str):
    def fn(sde, model, x, grid, *, generator=None, **opts):
        opts.setdefault("prediction", prediction)
        return dpm_solver_singlestep(sde, model, x, grid, order=order, **opts)

    fn.__name__ = name
    fn.__doc__ = f"Singlestep DPM-Solver{'++' if prediction == 'data' else ''}-{order}."
    register_sampler(
        name,
        default_grid=grid,
        evals_per_step=order,
        default_denoise=prediction == "data",
        intervals=lambda budget, options: math.ceil(budget / order),
    )(fn)


for _order in (2, 3):
    # DPM-Solver++ keeps diffusers' defaults (lower-order final steps, a final denoising
    # step); DPM-Solver takes its official code's: time-quadratic steps, no denoising step,
    # no lower-order final steps at >= 10 steps (measured best, docs/samplers.md)
    _register_multistep(f"dpmpp_{_order}m", _order, "data", "logsnr", True)
    _register_multistep(f"dpm_solver_{_order}m", _order, "noise", "time_quadratic", False)
    _register_singlestep(f"dpmpp_{_order}s", _order, "data", "logsnr")
    _register_singlestep(f"dpm_solver_{_order}s", _order, "noise", "time_quadratic")
