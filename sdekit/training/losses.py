"""Denoising score matching in ε-form for any SDE and covariance.

With x_t = α_t x₀ + σ_t L ε (ε whitened), the per-sample loss is

    ℓ(x₀) = w(t) · mean_i (ε_θ(x_t, t) - ε)_i²,

w = 1 (DDPM's "simple" loss), or the likelihood weighting w = g(t)²/σ_t², which
makes the time integral of ℓ the score-matching bound on -log p: for the noise
g L dW the Girsanov term is ‖Lᵀ(s_θ - ∇log p)‖² g² = ‖ε_θ - ε‖² g²/σ² (Song et
al. 2021, in NI form).

``loss_space="correlated"`` measures the error of the correlated noise instead,
mean_i (L ε_θ - L ε)_i² — DDPM's loss on the noise actually added, and the natural
loss for a network that outputs L ε (:class:`~sdekit.models.CorrelatedNoiseModel`).
With Σ = I both spaces coincide. Networks that predict x₀, v or EDM's F train on their
own loss through ``weight`` (:mod:`sdekit.models.parameterization`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import InputError
from ..sde import SDE, expand_to

__all__ = ["sample_training_times", "global_batch_noise", "drop_labels", "denoising_loss"]


def sample_training_times(
    sde: SDE,
    n: int,
    *,
    eps: float | None = None,
    discrete_steps: int | None = None,
    generator: torch.Generator | None = None,
    device=None,
) -> Tensor:
    """Training times: t ~ U(eps, T) (continuous), or t = iT/N with i ~ U{1..N}
    (``discrete_steps=N``: DDPM's integer timesteps on the chain's grid). float64."""
    if discrete_steps is not None:
        i = torch.randint(1, discrete_steps + 1, (n,), generator=generator, device=device)
        return i.to(torch.float64) * (sde.T / discrete_steps)
    eps = sde.default_eps if eps is None else eps
    u = torch.rand(n, generator=generator, device=device, dtype=torch.float64)
    return eps + (sde.T - eps) * u


def global_batch_noise(
    sde: SDE,
    x0: Tensor,
    generator: torch.Generator,
    *,
    rank: int,
    world_size: int,
    discrete_steps: int | None,
    device,
) -> tuple[Tensor, Tensor]:
    """t and ε for the global batch (``world_size`` shards like ``x0``) drawn from
    ``generator``, and this ``rank``'s shard of them: every rank draws the same numbers, so N
    processes train on exactly the noise one process would draw for the global batch."""
    n = x0.shape[0] * world_size
    t = sample_training_times(
        sde, n, discrete_steps=discrete_steps, generator=generator, device=device
    )
    noise = torch.randn((n, *x0.shape[1:]), generator=generator, device=device, dtype=x0.dtype)
    lo = rank * x0.shape[0]
    return t[lo : lo + x0.shape[0]], noise[lo : lo + x0.shape[0]]


def drop_labels(
    labels: Tensor,
    probability: float,
    null_label: int,
    generator: torch.Generator,
    *,
    rank: int,
    world_size: int,
) -> Tensor:
    """Label dropout for classifier-free guidance (Ho & Salimans 2022): each label of the
    global batch is replaced by ``null_label`` with ``probability``, drawn from
    ``generator`` for the whole global batch (``world_size`` shards like ``labels``) and
    cut to this ``rank``'s shard, so N processes drop exactly the labels one would."""
    n = labels.shape[0] * world_size
    u = torch.rand(n, generator=generator, device=generator.device, dtype=torch.float64)
    lo = rank * labels.shape[0]
    drop = (u[lo : lo + labels.shape[0]] < probability).to(labels.device)
    return torch.where(drop, torch.full_like(labels, null_label), labels)


def denoising_loss(
    sde: SDE,
    model,
    x0: Tensor,
    t: Tensor,
    noise: Tensor,
    *,
    likelihood_weighting: bool = False,
    loss_space: str = "whitened",
    weight=None,
    model_kwargs: dict | None = None,
) -> Tensor:
    """Per-sample ε-prediction losses, shape ``(n,)`` (see the module docstring).

    **Arguments:** ``x0`` data ``(n, *event_shape)``; ``t`` times ``(n,)``; ``noise`` the
    whitened ε (same shape as ``x0``); ``model(x_t, t) -> ε̂``; ``weight``: a callable
    ``t -> (n,)`` multiplying each sample's loss, e.g. a parameterisation's w(t) J(t)²
    (:meth:`sdekit.models.Parameterization.eps_loss_weight`), which makes this the
    network's own loss w ‖out − target‖². ``model_kwargs`` (e.g. ``{"y": labels}`` for a
    class-conditional net) are passed to every call, ``model(x_t, t, **model_kwargs)``.
    """
    if noise.shape != x0.shape:
        raise InputError(
            f"noise must have the shape of x0 {tuple(x0.shape)}, got {tuple(noise.shape)}"
        )
    if t.shape != (x0.shape[0],):
        raise InputError(f"t must have shape ({x0.shape[0]},), got {tuple(t.shape)}")
    xt, _ = sde.perturb(x0, t, noise=noise)
    eps_hat = model(xt, t.to(x0.dtype), **(model_kwargs or {}))
    if loss_space not in ("whitened", "correlated"):
        raise InputError(f"loss_space must be 'whitened' or 'correlated', got {loss_space!r}")
    err = eps_hat - noise
    if loss_space == "correlated":
        err = sde.covariance.sqrt_apply(err.to(noise.dtype))
    per = err.float().square().flatten(1).mean(1)
    if likelihood_weighting:
        sigma = sde.marginal(t)[1]
        per = per * expand_to(sde.diffusion(t).square() / sigma.square(), per)
    if weight is not None:
        per = per * expand_to(weight(t), per)
    return per
