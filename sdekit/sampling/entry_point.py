""":func:`sample`, sdekit's one entry point for drawing samples: its keywords build a
:class:`~sdekit.sampling.spec.SamplingSpec`, resolved once and run by the engine."""

from __future__ import annotations

import torch
from torch import Tensor

from ..sde import SDE
from .engine import run_plan
from .spec import DEFAULT_SAMPLER, SamplingSpec, resolve

__all__ = ["sample"]


def sample(
    sde: SDE,
    model,
    *,
    n: int | None = None,
    x_T: Tensor | None = None,
    sampler: str = DEFAULT_SAMPLER,
    steps: int | None = None,
    grid: str | Tensor | None = None,
    eps: float | None = None,
    generator: torch.Generator | None = None,
    denoise: bool | None = None,
    progress: bool = False,
    return_info: bool = False,
    clip_x0: float | None = None,
    dtype: torch.dtype | None = None,
    device=None,
    teleport=None,
    spec: SamplingSpec | None = None,
    model_kwargs: dict | None = None,
    **options,
):
    """Draw x₀ by integrating the reverse SDE / probability-flow ODE of ``sde``.

    **Arguments:**
    - ``sde``: an :class:`~sdekit.sde.SDE` (its covariance shapes all noise).
    - ``model``: ``model(x, t) -> ε̂``, the whitened-noise prediction; ``t`` has shape ``(n,)``.
    - ``n`` / ``x_T``: the number of samples to draw from the prior N(0, σ_T² Σ), or
      the starting point itself (shape ``(n, *event_shape)``).
    - ``sampler``: a name from :func:`available_samplers`, e.g. ``"dpm_solver_2m"`` (the
      default: DPM-Solver-2M, noise prediction, on the time-quadratic grid without a final
      denoising step; docs/samplers.md compares the samplers per budget), ``"dpmpp_2m"``,
      ``"ddim"``, ``"ancestral"``, ``"torchsde:srk"``, ``"torchdiffeq:dopri5"``.
    - ``steps``: the budget of model evaluations per sample, the final denoising step
      included; each sampler spends exactly that many where its structure allows and the
      largest count below it otherwise (``info.nfe`` says what it used). Default 20, or
      what an explicit ``grid`` implies; ``None`` for adaptive torchdiffeq methods.
    - ``grid``: ``"time"``, ``"time_quadratic"``, ``"logsnr"``, ``"karras"``, or an explicit
      decreasing tensor of times in [0, T] (a final 0 with σ_0 = 0 means "denoise there";
      with ``steps`` given, the grid must be the one that budget buys); default: the
      sampler's own.
    - ``eps``: the last time of the grid (default ``sde.default_eps``).
    - ``generator``: a ``torch.Generator`` for the prior and all sampler noise.
    - ``denoise``: finish with x̂₀ = (x - σ L ε̂)/α at the last grid time (one model call,
      counted in ``steps``); default: the sampler's choice (``False`` for DPM-Solver's
      noise-prediction samplers, as in its official code; ``True`` otherwise).
    - ``progress``: show a tqdm bar of model evaluations.
    - ``return_info``: also return a :class:`SampleInfo` (NFE, network passes, grid, spec).
    - ``clip_x0``: for data in [-c, c], clamp the model's x̂₀ = (x - σ L ε̂)/α to
      [-c, c] at every evaluation and use the ε̂ consistent with it (DDPM's
      ``clip_denoised``, diffusers' ``clip_sample``); robust for images.
    - ``dtype`` / ``device``: for the prior draw when the covariance holds no tensors.
    - ``teleport``: a :class:`~sdekit.sampling.GaussianTeleport`: x_T is first carried to
      its hand-over time t_s in closed form along the PF ODE of the data's Gaussian
      approximation (no model call), and the sampler's grid (``steps`` model calls) runs
      from t_s instead of T; an explicit ``grid`` must start at t_s.
    - ``spec``: a whole :class:`~sdekit.sampling.SamplingSpec` instead of the keywords
      above that it holds (sampler, steps, grid, eps, denoise, clip_x0, options, n; and
      the conditioning: classes, guidance, guidance_interval, guidance_rescale).
    - ``model_kwargs``: keyword arguments of every model call, ``model(x, t, **model_kwargs)``
      (e.g. ``{"y": labels}`` for a class-conditional model or a guidance wrapper,
      docs/guidance.md); tensors with a first dimension are per sample, with x's batch
      (checked), and anything else passes unchanged.
    - ``**options``: sampler options (e.g. ``eta`` for DDIM, ``snr`` for PC,
      ``rtol``/``atol`` for adaptive torchdiffeq methods).

    **Returns:** x₀ of shape ``(n, *event_shape)``, and the :class:`SampleInfo`
    if ``return_info``.
    """
    if spec is None:
        if isinstance(grid, Tensor) or (grid is not None and not isinstance(grid, str)):
            grid = tuple(torch.as_tensor(grid, dtype=torch.float64).flatten().tolist())
        spec = SamplingSpec(
            sampler=sampler, steps=steps, grid=grid, options=options, denoise=denoise,
            clip_x0=clip_x0, eps=eps,
            teleport=None if teleport is None else teleport.max_snr,
        )  # fmt: skip
    plan = resolve(spec, sde, teleport=teleport)
    x, info = run_plan(
        plan, model, x_T=x_T, n=n, generator=generator, progress=progress, dtype=dtype,
        device=device, model_kwargs=model_kwargs,
    )  # fmt: skip
    return (x, info) if return_info else x

