"""The sampling engine: the registry of samplers, the grid they run on, NFE accounting.

Every sampler is a small pure function with one signature,

    sampler(sde, model, x, grid, *, generator=None, **options) -> x

that integrates from ``grid.t[0]`` (x = x_T) down to ``grid.t[-1]`` through
every grid time, calling ``model(x, t)`` with a scalar time. :func:`run_plan` draws
the prior, validates input, counts model evaluations (NFE) and, when asked,
takes the final denoising step x̂₀ = (x - σ L ε̂)/α at the last grid time
(Tweedie's formula; the σ → 0 limit of every sampler's update).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .._progress import progress_bar
from ..errors import InputError, InputTypeError
from ..models.conditioning import network_passes
from ..sde import SDE, batch_time
from .afs import AnalyticFirstStep
from .conditioning import conditioned_model

__all__ = [
    "Grid",
    "SampleInfo",
    "SamplerEntry",
    "NonFiniteModelOutput",
    "check_generator",
    "check_model_output",
    "check_tolerances",
    "run_plan",
    "register_sampler",
    "register_prefix",
    "resolve_sampler",
    "SAMPLERS",
    "available_samplers",
    "whitened_noise",
]


@dataclass(frozen=True)
class Grid:
    """Decreasing times t (K,) with their marginals α, σ and log-SNR log(α²/σ²) (float64).

    ``denoise`` says whether the engine takes a final denoising step after the
    last grid time (multistep samplers use it to pick their final orders).
    """

    t: Tensor
    alpha: Tensor
    sigma: Tensor
    denoise: bool = True
    #: model evaluations the sampler may spend on the intervals (the final denoising step
    #: excluded); ``None``: its full ``evals_per_step`` on every interval
    budget: int | None = None

    @classmethod
    def from_times(
        cls, sde: SDE, t: Tensor, denoise: bool = True, budget: int | None = None
    ) -> Grid:
        alpha, sigma = sde.marginal(t)
        return cls(t=t, alpha=alpha, sigma=sigma, denoise=denoise, budget=budget)

    @property
    def log_snr(self) -> Tensor:
        return 2 * (self.alpha.log() - self.sigma.log())

    @property
    def num_intervals(self) -> int:
        return self.t.numel() - 1

    @property
    def num_steps(self) -> int:
        """Intervals plus the final denoising step, if any."""
        return self.num_intervals + int(self.denoise)


@dataclass
class SampleInfo:
    """What a call to :func:`sample` did: model evaluations (``nfe``), the network passes
    they made (``network_passes``: ``nfe`` for a plain model, up to 2 × ``nfe`` under
    classifier-free guidance, whose evaluations run both branches), the grid used."""

    nfe: int
    grid: Grid
    sampler: str
    spec: object = None  # the SamplingSpec drawn with
    network_passes: int | None = None


@dataclass(frozen=True)
class SamplerEntry:
    """A registered sampler: its function, default grid, whether it draws noise, and
    the model evaluations per grid interval (``None``: not known in advance)."""

    fn: Callable
    default_grid: str
    stochastic: bool
    evals_per_step: int | None  # None: not known in advance
    default_denoise: bool = True
    #: ``intervals(budget, options)``: the grid intervals a budget of model evaluations
    #: buys (the final denoising step excluded); default ``budget // evals_per_step``
    intervals: Callable[[int, dict], int] | None = None


SAMPLERS: dict[str, SamplerEntry] = {}
_PREFIXED: dict[str, Callable[[str], SamplerEntry]] = {}


def register_sampler(
    name: str,
    *,
    default_grid: str = "time",
    stochastic: bool = False,
    evals_per_step: int | None = 1,
    default_denoise: bool = True,
    intervals: Callable[[int, dict], int] | None = None,
):
    """Decorator adding a sampler function to the registry under ``name`` (with the grid
    and the final-denoising choice :func:`sample` uses when not told otherwise, and how
    many grid intervals a budget of model evaluations buys)."""

    def deco(fn):
        SAMPLERS[name] = SamplerEntry(
            fn, default_grid, stochastic, evals_per_step, default_denoise, intervals
        )
        return fn

    return deco


def register_prefix(prefix: str, resolver: Callable[[str], SamplerEntry]) -> None:
    """Register ``"<prefix>:<method>"`` names resolved by ``resolver(method)``."""
    _PREFIXED[prefix] = resolver


def available_samplers() -> list[str]:
    """Registered names, plus the ``prefix:<method>`` families."""
    return sorted(SAMPLERS) + [f"{p}:<method>" for p in sorted(_PREFIXED)]


def resolve_sampler(name: str) -> SamplerEntry:
    """The registry entry of ``name``; ``ValueError`` naming the valid samplers otherwise."""
    if not isinstance(name, str):
        raise InputTypeError(f"sampler must be a name (str), got {type(name).__name__}")
    if name in SAMPLERS:
        return SAMPLERS[name]
    prefix, _, method = name.partition(":")
    if method and prefix in _PREFIXED:
        return _PREFIXED[prefix](method)
    raise InputError(f"unknown sampler {name!r}; valid samplers: {', '.join(available_samplers())}")


class NonFiniteModelOutput(FloatingPointError):
    """The model returned NaN or ±inf while sampling; the message names where."""


def check_generator(generator, name: str = "generator") -> None:
    """``InputTypeError`` unless ``generator`` is None or a ``torch.Generator``."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise InputTypeError(
            f"{name} must be a torch.Generator or None, got {type(generator).__name__} "
            f"{generator!r} (e.g. torch.Generator().manual_seed(0))"
        )


def check_tolerances(rtol, atol) -> None:
    """``InputError`` unless ``rtol`` and ``atol`` are finite numbers >= 0 (an adaptive
    solver's error tolerances)."""
    for name, v in (("rtol", rtol), ("atol", atol)):
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        if not (ok and math.isfinite(v) and v >= 0):
            raise InputError(f"{name} must be a finite number >= 0, got {v!r}")


def check_model_output(
    out,
    x: Tensor,
    *,
    what: str,
    where: Callable[[], str],
    result: str,
    dtype_hint: str = "",
    differentiable: bool = False,
) -> Tensor:
    """``out`` if it is a valid ε̂ for the model's input ``x``: a tensor of x's shape,
    dtype and device, finite (one reduction) and, with ``differentiable``, attached to
    x's autograd graph when x requires grad. Sampling and the likelihood both check
    every model call with this. ``what`` names the caller (``"sampler 'euler'"``),
    ``where()`` the call, ``result`` what a NaN would spoil, ``dtype_hint`` a fix."""
    if not isinstance(out, Tensor) or out.shape != x.shape:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise InputError(
            f"model(x, t) must return ε̂ with the shape of x {tuple(x.shape)}, got {got}"
        )
    if out.dtype != x.dtype or out.device != x.device:
        fix = f"cast it in the model, or {dtype_hint}" if dtype_hint else "cast it in the model"
        raise InputTypeError(
            f"model(x, t) returned ε̂ of dtype {out.dtype} on {out.device} for x of dtype "
            f"{x.dtype} on {x.device}: the model's output must match its input ({fix})"
        )
    if differentiable and x.requires_grad and not out.requires_grad:
        raise InputError(
            f"{what}: model(x, t) returned ε̂ that does not depend on x through autograd "
            "(requires_grad is False, e.g. a model run under torch.no_grad() or returning a "
            "detached tensor): the divergence needs gradients of the model's output"
        )
    if not bool(torch.isfinite(out).all()):
        raise NonFiniteModelOutput(
            f"{what}: the model returned NaN or inf at {where()}; {result} would be "
            "non-finite (check the model, its weights and its inputs)"
        )
    return out


class _CountingModel:
    """Calls the user's model with t broadcast to (n,), checks its output (shape, dtype,
    device, finiteness: one reduction per call), counts the calls (NFE) and the network
    passes they made."""

    def __init__(self, model, sampler: str, grid: Grid, bar=None):
        self.model, self.sampler, self.grid, self.nfe, self.bar = model, sampler, grid, 0, bar
        self.passes = 0

    def __call__(self, x: Tensor, t) -> Tensor:
        t = torch.as_tensor(t, dtype=torch.float64)
        tvec = batch_time(t, x)
        out = self.model(x, tvec)
        self.nfe += 1
        self.passes += network_passes(self.model, tvec)
        if self.bar is not None:
            self.bar.update(1)
        return check_model_output(
            out,
            x,
            what=f"sampler {self.sampler!r}",
            where=lambda: self._where(t),
            result="the samples",
            dtype_hint=f"sample with dtype={out.dtype}" if isinstance(out, Tensor) else "",
        )

    def _where(self, t: Tensor) -> str:
        """'model evaluation k, t = …' plus the grid step when t is a grid time."""
        where = f"model evaluation {self.nfe}"
        if t.ndim == 0:
            where += f", t = {float(t):.6g}"
            hits = (self.grid.t == t).nonzero()
            if hits.numel():
                where += f" (grid step {int(hits[0]) + 1} of {self.grid.num_steps})"
        return where


class _ClippedModel:
    """ε̂' = L⁻¹(x - α clamp(x̂₀, -c, c))/σ: the ε̂ of the clipped data prediction."""

    def __init__(self, model, sde: SDE, c: float):
        self.model, self.sde, self.c = model, sde, c

    def __call__(self, x: Tensor, t) -> Tensor:
        eps = self.model(x, t)  # the checked, counted model
        tvec = batch_time(torch.as_tensor(t, dtype=torch.float64), x).to(torch.float64)  # as seen
        x0 = self.sde.eps_to_x0(eps, x, tvec).clamp(-self.c, self.c)
        return self.sde.x0_to_eps(x0, x, tvec)


def run_plan(
    plan,
    model,
    *,
    x_T: Tensor | None = None,
    n: int | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
    dtype: torch.dtype | None = None,
    device=None,
    model_kwargs: dict | None = None,
) -> tuple[Tensor, SampleInfo]:
    """Execute a :class:`~sdekit.sampling.spec.SamplingPlan`: draw x_T (or take it), apply
    the teleport, run the sampler over the plan's grid with the conditioned (the spec's
    classes and guidance, ``model_kwargs`` bound to the batch:
    :func:`~sdekit.sampling.conditioning.conditioned_model`), checked, counted (and, with
    ``clip_x0``, clamped) model, and take the final denoising step.

    **Returns:** ``(x₀, SampleInfo)``.
    """
    sde, spec, g = plan.sde, plan.spec, plan.grid
    check_generator(generator)
    if x_T is None:
        n = spec.n if n is None else n
        if not (isinstance(n, int) and not isinstance(n, bool) and n >= 1):
            raise InputError(f"give n (an int >= 1) or x_T; got n={n!r}")
        if plan.teleport is None and abs(float(g.t[0]) - sde.T) > 1e-9 * max(1.0, sde.T):
            raise InputError(
                f"the grid starts at t = {float(g.t[0]):.6g}, not at T = {sde.T:g}, but the "
                "prior N(0, σ_T² Σ) is drawn at T: give x_T drawn at the grid's first time"
            )
        x = sde.prior_sample(n, generator=generator, dtype=dtype, device=device)
    else:
        sde.covariance.check_input(x_T, "x_T")
        if x_T.ndim != len(sde.event_shape) + 1:
            dims = ", ".join(map(str, sde.event_shape))
            raise InputError(f"x_T must have shape (n, {dims}), got {tuple(x_T.shape)}")
        if x_T.shape[0] == 0:
            raise InputError(f"x_T must hold at least one sample, got shape {tuple(x_T.shape)}")
        if n is not None and n != x_T.shape[0]:
            raise InputError(f"n={n} disagrees with x_T's batch size {x_T.shape[0]}")
        x = x_T
    conditioned = conditioned_model(spec, model, model_kwargs, x.shape[0], x.device)
    if plan.teleport is not None:
        x = plan.teleport(x)
    evals = plan.entry.evals_per_step
    total = g.budget if g.budget is not None else None if evals is None else evals * g.num_intervals
    total = None if total is None else total - int(plan.afs)
    bar = progress_bar(
        progress, total=None if total is None else total + int(g.denoise), desc=spec.sampler,
        unit="nfe",
    )  # fmt: skip
    counted = _CountingModel(conditioned, spec.sampler, g, bar)
    eps_model = counted if spec.clip_x0 is None else _ClippedModel(counted, sde, spec.clip_x0)
    if plan.afs:  # the first call analytic, uncounted (sampling/afs.py)
        eps_model = AnalyticFirstStep(eps_model, sde)
    try:
        x = plan.entry.fn(sde, eps_model, x, g, generator=generator, **plan.options)
        if g.denoise:
            x = sde.eps_to_x0(eps_model(x, g.t[-1]), x, g.t[-1])
    finally:
        if bar is not None:
            bar.close()
    info = SampleInfo(counted.nfe, g, spec.sampler, spec, network_passes=counted.passes)
    return x, info


def whitened_noise(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """z ~ N(0, I) shaped like x (samplers apply L themselves)."""
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
