"""A step schedule calibrated to the model: :func:`optimize_grid`.

For a deterministic sampler and a budget of ``steps`` model calls, choose the times so that
the sampler's output is as close as possible to the exact probability-flow solution —
using the model alone, no data (in the spirit of Xue et al. 2024, "optimal stepsize"):

1. draw ``n`` prior samples x_T (a fixed set: common random numbers);
2. solve the PF ODE accurately from them: the reference x̂₀* (third-order multistep
   DPM-Solver, ``reference_steps`` steps on the log-SNR grid);
3. minimise  J(t) = mean ‖L⁻¹(x̂₀(t) − x̂₀*)‖² / d  over the grid t, where x̂₀(t) is the
   sampler's output on grid t. The grid is parameterised by its increments in
   λ = log(α/σ) (half the log-SNR) between λ(T) and λ(eps) (a softmax, so every candidate
   is a valid decreasing grid) and optimised with Powell's method
   (``scipy.optimize.minimize``), starting from the sampler's default grid.

The result is a grid from T to eps; ``sample(..., sampler=sampler, grid=t)`` with the same
``denoise`` (default: the sampler's own choice, as in :func:`~sdekit.sample`) makes exactly
``steps`` model calls per sample (its intervals, plus the final denoising step if any).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..errors import InputError
from ..sde import SDE
from .engine import resolve_sampler, sample
from .grids import GRIDS, half_log_snr, t_of_half_log_snr

log = logging.getLogger(__name__)

__all__ = ["GridOptimization", "optimize_grid"]


@dataclass(frozen=True)
class GridOptimization:
    """What :func:`optimize_grid` did: the grid, the objective before and after (whitened
    mean squared error per dimension to the reference), and the model calls it spent."""

    grid: Tensor
    start_error: float
    error: float
    reference_nfe: int
    search_nfe: int
    evaluations: int


def optimize_grid(
    sde: SDE,
    model,
    *,
    sampler: str,
    steps: int,
    denoise: bool | None = None,
    n: int = 8,
    generator: torch.Generator | None = None,
    eps: float | None = None,
    start_grid: str | None = None,
    reference_steps: int = 400,
    max_evaluations: int = 600,
    return_info: bool = False,
    dtype: torch.dtype | None = None,
    device=None,
    **options,
):
    """The grid of ``steps`` model calls that brings ``sampler``'s output closest to the
    exact probability-flow solution for ``model`` (see the module docstring).

    **Arguments:**
    - ``sde``, ``model``: as for :func:`~sdekit.sample`.
    - ``sampler``: a deterministic sampler name; ``**options`` its options.
    - ``steps``: the budget in model calls per sample (the final denoising step included
      when ``denoise``); samplers with several calls per step get ``steps`` calls too.
    - ``n``: prior draws the schedule is fitted on; ``generator`` draws them.
    - ``eps``: the last time (default ``sde.default_eps``); ``start_grid``: the grid the
      search starts from (default: the sampler's own).
    - ``reference_steps``: steps of the reference solve (third-order multistep).
    - ``max_evaluations``: objective evaluations the search may spend (each is one run
      of the sampler on the ``n`` draws).
    - ``return_info``: return a :class:`GridOptimization` instead of the grid alone.

    **Returns:** the grid tensor (float64, decreasing), or a :class:`GridOptimization`.

    **Raises:** ``ValueError`` for a stochastic sampler, a budget too small for the
    sampler, or bad numbers.
    """
    from scipy.optimize import minimize

    entry = resolve_sampler(sampler)
    if entry.stochastic:
        raise InputError(
            f"optimize_grid needs a deterministic sampler; {sampler!r} draws noise, so its "
            "output has no fixed target"
        )
    denoise = entry.default_denoise if denoise is None else bool(denoise)
    evals = entry.evals_per_step
    if evals is None:
        raise InputError(
            f"optimize_grid needs a fixed number of model calls per step ({sampler!r})"
        )
    if not (isinstance(steps, int) and steps >= 1):
        raise InputError(f"steps must be an int >= 1, got {steps!r}")
    intervals = (steps - int(denoise)) // evals
    if intervals < 1:
        raise InputError(
            f"steps={steps} leaves no interval for {sampler!r} ({evals} calls per interval"
            f"{' plus the final denoising step' if denoise else ''})"
        )
    if not (isinstance(n, int) and n >= 1):
        raise InputError(f"n must be an int >= 1, got {n!r}")
    eps = sde.default_eps if eps is None else float(eps)
    if not (0 < eps < sde.T):
        raise InputError(f"eps must lie in (0, T={sde.T}), got {eps}")

    x_T = sde.prior_sample(n, generator=generator, dtype=dtype, device=device)
    with torch.no_grad():
        ref, ref_info = sample(
            sde,
            model,
            x_T=x_T,
            sampler="dpm_solver_3m",
            steps=reference_steps,
            grid="logsnr",
            eps=eps,
            denoise=denoise,
            lower_order_final=False,
            return_info=True,
        )
    ref_w = sde.covariance.inv_sqrt_apply(ref)
    ends = half_log_snr(*sde.marginal(torch.tensor([sde.T, eps], dtype=torch.float64)))
    lam_T, lam_eps = float(ends[0]), float(ends[1])
    calls = {"nfe": 0, "evaluations": 0}

    def grid_of(theta: np.ndarray) -> Tensor:
        w = torch.softmax(torch.as_tensor(theta, dtype=torch.float64), 0)
        lam = lam_T + (lam_eps - lam_T) * torch.cat([w.new_zeros(1), torch.cumsum(w, 0)])
        t = t_of_half_log_snr(sde, lam).clamp(eps, sde.T)
        t[0], t[-1] = sde.T, eps
        return t

    def objective(theta: np.ndarray) -> float:
        t = grid_of(theta)
        if not bool((t[1:] < t[:-1]).all()):
            return math.inf
        with torch.no_grad():
            x, info = sample(
                sde, model, x_T=x_T, sampler=sampler, steps=steps, grid=t, eps=eps,
                denoise=denoise, return_info=True, **options,
            )  # fmt: skip
        calls["nfe"] += info.nfe * n
        calls["evaluations"] += 1
        err = (sde.covariance.inv_sqrt_apply(x) - ref_w).square().mean()
        value = float(err)
        return value if math.isfinite(value) else math.inf

    start = GRIDS[start_grid or entry.default_grid](sde, intervals + 1, eps)
    lam0 = half_log_snr(*sde.marginal(start))
    theta0 = torch.log(torch.diff(lam0).clamp_min(1e-12)).numpy()
    start_error = objective(theta0)
    result = minimize(
        objective,
        theta0,
        method="Powell",
        options={"maxfev": max_evaluations, "xtol": 1e-3, "ftol": 1e-6},
    )
    best_theta = result.x if result.fun <= start_error else theta0
    t = grid_of(best_theta)
    error = min(float(result.fun), start_error)
    log.info(
        "optimize_grid(%s, %d steps): error %.3g -> %.3g with %d evaluations "
        "(%d model calls on %d draws, plus %d for the reference)",
        sampler,
        steps,
        start_error,
        error,
        calls["evaluations"],
        calls["nfe"],
        n,
        ref_info.nfe * n,
    )
    if not return_info:
        return t
    return GridOptimization(
        grid=t,
        start_error=start_error,
        error=error,
        reference_nfe=ref_info.nfe * n,
        search_nfe=calls["nfe"],
        evaluations=calls["evaluations"],
    )
