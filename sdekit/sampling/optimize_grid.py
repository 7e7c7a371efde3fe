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

The result is a grid from T (or a teleport's hand-over time) to eps;
``sample(..., sampler=sampler, steps=steps, grid=t)`` with the same ``denoise`` (default:
the sampler's own choice, as in :func:`~sdekit.sample`) and teleport spends the same budget
as ``sample(..., steps=steps)``: ``steps`` means model evaluations in both
(:mod:`sdekit.sampling.spec`).
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
from .engine import resolve_sampler
from .entry_point import sample
from .grids import half_log_snr, t_of_half_log_snr
from .spec import SamplingSpec, resolve

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
    teleport=None,
    clip_x0: float | None = None,
    model_kwargs: dict | None = None,
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
    - ``teleport``: a :class:`~sdekit.sampling.GaussianTeleport`: the draws are teleported
      first and the grid runs from its hand-over time (pass the same one to ``sample``).
    - ``clip_x0``: the x̂₀ clamp the grid will be sampled with (the reference solve too).
    - ``model_kwargs``: as for :func:`~sdekit.sample`, for the ``n`` draws (per-sample
      tensors have ``n`` rows), in the reference solve and every search run.

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
    spec = SamplingSpec(
        sampler=sampler, steps=steps, grid=start_grid, denoise=denoise, eps=eps,
        clip_x0=clip_x0, options=options,
    )  # fmt: skip
    start = resolve(spec, sde, teleport=teleport).grid  # the search starts from this grid
    if start.budget is None:
        raise InputError(
            f"optimize_grid needs a fixed number of model calls per step ({sampler!r})"
        )
    if start.num_intervals < 1:
        raise InputError(f"steps={steps} leaves no interval for {sampler!r} to optimise")
    if not (isinstance(n, int) and n >= 1):
        raise InputError(f"n must be an int >= 1, got {n!r}")
    denoise, eps = start.denoise, float(start.t[-1])
    t_start = sde.T if teleport is None else teleport.time  # exactly where sampling starts

    x_T = sde.prior_sample(n, generator=generator, dtype=dtype, device=device)
    shared = dict(
        eps=eps, denoise=denoise, teleport=teleport, clip_x0=clip_x0, return_info=True,
        model_kwargs=model_kwargs,
    )  # fmt: skip
    with torch.no_grad():
        ref, ref_info = sample(
            sde, model, x_T=x_T, sampler="dpm_solver_3m", steps=reference_steps, grid="logsnr",
            lower_order_final=False, **shared,
        )  # fmt: skip
    ref_w = sde.covariance.inv_sqrt_apply(ref)
    ends = half_log_snr(*sde.marginal(torch.tensor([t_start, eps], dtype=torch.float64)))
    lam_T, lam_eps = float(ends[0]), float(ends[1])
    calls = {"nfe": 0, "evaluations": 0}

    def grid_of(theta: np.ndarray) -> Tensor:
        w = torch.softmax(torch.as_tensor(theta, dtype=torch.float64), 0)
        lam = lam_T + (lam_eps - lam_T) * torch.cat([w.new_zeros(1), torch.cumsum(w, 0)])
        t = t_of_half_log_snr(sde, lam).clamp(eps, t_start)
        t[0], t[-1] = t_start, eps
        return t

    def objective(theta: np.ndarray) -> float:
        t = grid_of(theta)
        if not bool((t[1:] < t[:-1]).all()):
            return math.inf
        with torch.no_grad():
            x, info = sample(
                sde, model, x_T=x_T, sampler=sampler, steps=steps, grid=t, **shared, **options
            )
        calls["nfe"] += info.nfe * n
        calls["evaluations"] += 1
        err = (sde.covariance.inv_sqrt_apply(x) - ref_w).square().mean()
        value = float(err)
        return value if math.isfinite(value) else math.inf

    lam0 = half_log_snr(*sde.marginal(start.t))
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
