"""Exact log-likelihoods through the probability-flow ODE, under any covariance Σ.

For dx/dt = v(x, t) = f(t) x + (g(t)²/(2σ_t)) L ε̂(x, t) the instantaneous change of
variables gives d log p_t(x_t)/dt = -∇·v(x_t, t), so integrating from eps to T

    log p_eps(x) = log p_T(x_T) + ∫_eps^T ∇·v(x_t, t) dt,

with the prior term log N(x_T; 0, σ_T² Σ) = -½‖L⁻¹x_T‖²/σ_T² - ½ log det Σ
- (d/2) log(2π σ_T²): only L⁻¹ and log det Σ are needed. The divergence is exact
(d vector-Jacobian products, chunked) or Hutchinson's estimate E[zᵀ (∂v/∂x) z] with
fixed Rademacher or Gaussian probes (unbiased).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .errors import InputError, InputTypeError
from .models.conditioning import bind_model_kwargs
from .sampling.engine import check_generator, check_model_output, check_tolerances
from .sampling.torchdiffeq_backend import ADAPTIVE_METHODS, adaptive_options
from .sde import SDE

__all__ = ["log_likelihood", "bits_per_dim", "dequantize"]


def _divergence_exact(v_fn, x: Tensor, chunk: int) -> tuple[Tensor, Tensor]:
    """v(x) and its exact divergence per sample, with d VJPs in chunks of ``chunk``."""
    n = x.shape[0]
    d = x[0].numel()
    x = x.detach().requires_grad_(True)
    v = v_fn(x)
    div = torch.zeros(n, dtype=x.dtype, device=x.device)
    flat_v = v.reshape(n, d)
    for start in range(0, d, chunk):
        idx = torch.arange(start, min(start + chunk, d), device=x.device)
        for i in idx.tolist():
            (grad,) = torch.autograd.grad(flat_v[:, i].sum(), x, retain_graph=True)
            div = div + grad.reshape(n, d)[:, i]
    return v.detach(), div.detach()


def _divergence_hutchinson(v_fn, x: Tensor, probes: Tensor) -> tuple[Tensor, Tensor]:
    """v(x) and the mean over probes of zᵀ (∂v/∂x) z per sample."""
    x = x.detach().requires_grad_(True)
    v = v_fn(x)
    total = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for k, z in enumerate(probes):
        (vjp,) = torch.autograd.grad(v, x, grad_outputs=z, retain_graph=k + 1 < len(probes))
        total = total + (vjp * z).flatten(1).sum(1)
    return v.detach(), (total / len(probes)).detach()


def log_likelihood(
    sde: SDE,
    model,
    x: Tensor,
    *,
    method: str = "dopri5",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    trace: str = "hutchinson",
    probes: int = 1,
    noise: str = "rademacher",
    eps: float | None = None,
    generator: torch.Generator | None = None,
    exact_chunk: int = 64,
    model_kwargs: dict | None = None,
) -> tuple[Tensor, int]:
    """log p_eps(x) in nats per sample by the probability-flow ODE (module docstring).

    **Arguments:**
    - ``x``: data ``(n, *event_shape)`` (treated as a sample at time ``eps``).
    - ``method``, ``rtol``, ``atol``: torchdiffeq's solver; it is told to end a step
      exactly at T and never evaluates the model outside [eps, T].
    - ``trace``: ``"exact"`` (d VJPs per evaluation; small d) or ``"hutchinson"``.
    - ``probes``, ``noise``: number and kind (``"rademacher"``, ``"gaussian"``) of
      Hutchinson probes, fixed along the trajectory.
    - ``model_kwargs``: keyword arguments of every model call (e.g. ``{"y": labels}``:
      log p(x | y) of a class-conditional model); per-sample tensors have x's batch.

    **Returns:** ``(log_p, nfe)``: a float64-accumulated tensor ``(n,)`` and the number
    of model evaluations.
    """
    import torchdiffeq

    sde.covariance.check_input(x, "x")
    if x.ndim != len(sde.event_shape) + 1:
        raise InputError(f"x must have shape (n, {sde.event_shape}), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise InputError(f"x must hold at least one sample, got a batch of 0 {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise InputError("x holds NaN or inf values: log_likelihood needs finite data")
    if trace not in ("exact", "hutchinson"):
        raise InputError(f"trace must be 'exact' or 'hutchinson', got {trace!r}")
    if noise not in ("rademacher", "gaussian"):
        raise InputError(f"noise must be 'rademacher' or 'gaussian', got {noise!r}")
    if not (isinstance(probes, int) and probes >= 1):
        raise InputError(f"probes must be an int >= 1, got {probes!r}")
    check_generator(generator)
    check_tolerances(rtol, atol)
    eps = sde.default_eps if eps is None else float(eps)
    if not (0 < eps < sde.T):
        raise InputError(f"eps must lie in (0, T={sde.T}), got {eps}")

    n = x.shape[0]
    model = bind_model_kwargs(model, model_kwargs, n)  # model(x, t); checks it is callable
    nfe = 0

    def checked(y, t):
        return check_model_output(
            model(y, t),
            y,
            what="log_likelihood",
            where=lambda: f"model evaluation {nfe}, t = {float(t.flatten()[0]):.6g}",
            result="the log-likelihood",
            differentiable=True,
        )

    rev = sde.reverse(checked, probability_flow=True)
    if trace == "hutchinson":
        shape = (probes, *x.shape)
        z = torch.randn(shape, generator=generator, dtype=x.dtype, device=x.device)
        if noise == "rademacher":
            z = z.sign()

    def func(t, state):
        nonlocal nfe
        xt = state[0]
        tt = float(t)
        if not (eps - 1e-9 <= tt <= sde.T + 1e-9):
            raise RuntimeError(f"the ODE solver asked for t={tt:.6g}, outside [{eps}, {sde.T}]")
        tt = min(max(tt, eps), sde.T)  # rounding only
        nfe += 1

        def v_fn(y):
            return rev.drift(y, torch.tensor(tt, dtype=torch.float64))

        with torch.enable_grad():
            if trace == "exact":
                v, div = _divergence_exact(v_fn, xt, exact_chunk)
            else:
                v, div = _divergence_hutchinson(v_fn, xt, z)
        return v, div

    t_span = torch.tensor([eps, sde.T], dtype=x.dtype, device=x.device)
    state0 = (x.detach(), torch.zeros(n, dtype=x.dtype, device=x.device))
    opts = adaptive_options(eps, sde.T, x) if method in ADAPTIVE_METHODS else None
    xs, divs = torchdiffeq.odeint(
        func, state0, t_span, rtol=rtol, atol=atol, method=method, options=opts
    )
    x_T, integral = xs[-1], divs[-1]
    return sde.prior_logp(x_T) + integral, nfe


def dequantize(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Uniform dequantization of 8-bit images to [-1, 1]: x = (k + u)/128 - 1, u ~ U(0, 1).

    ``images``: uint8 pixel values k ∈ {0, …, 255} (any shape).
    """
    if images.dtype != torch.uint8:
        raise InputTypeError(f"images must be uint8 pixel values (0..255), got {images.dtype}")
    u = torch.rand(images.shape, generator=generator, device=images.device)
    return (images.float() + u) / 128.0 - 1.0


def bits_per_dim(
    sde: SDE, model, images: Tensor, *, generator: torch.Generator | None = None, **kwargs
) -> tuple[Tensor, int]:
    """Bits per dimension of 8-bit images (uint8), with uniform dequantization.

    Convention: data live in [-1, 1] in 256 bins of width 2/256; the dequantized density
    on [-1, 1] is converted to the 8-bit grid by the bin width, so

        bpd = -(log p(x) + d log(2/256)) / (d ln 2) = -log p(x) / (d ln 2) + 7,

    the same offset as score_sde for centred data (improved-diffusion instead uses a
    discretised Gaussian decoder at t = 0). ``kwargs`` go to :func:`log_likelihood`.
    """
    if images.dtype != torch.uint8:
        raise InputTypeError(f"images must be uint8 (0..255), got {images.dtype}")
    check_generator(generator)  # before the dequantization noise is drawn from it
    x = dequantize(images, generator).to(sde.covariance.dtype or torch.float32)
    logp, nfe = log_likelihood(sde, model, x, generator=generator, **kwargs)
    d = x[0].numel()
    return -logp / (d * math.log(2)) + 7.0, nfe
