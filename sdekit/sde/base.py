"""The abstract SDE: a forward noising process x_t = α_t x_0 + σ_t L ε with Σ = L Lᵀ.

Every SDE in sdekit is linear with scalar coefficients and noise shaped by a
covariance operator:

    dx = f(t) x dt + g(t) L dW,   f = d log α / dt,   g² = dσ²/dt - 2 f σ².

Its marginals are x_t | x_0 ~ N(α_t x_0, σ_t² Σ). The network predicts the
*whitened* noise ε (model(x_t, t) ≈ ε), from which

    score       ∇log p_t(x) = -L⁻ᵀ ε / σ_t,       Σ∇log p_t(x) = -L ε / σ_t,
    reverse SDE dx = [f x + (g²/σ_t) L ε] dt + g L dW̄,
    PF ODE      dx/dt = f x + (g²/(2σ_t)) L ε.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..covariance import CovarianceOperator
from ..errors import InputError, InputTypeError

__all__ = ["SDE", "ReverseProcess", "DiscreteChain", "as_time", "batch_time", "expand_to"]


def as_time(t, dtype=torch.float64) -> Tensor:
    """``t`` as a floating tensor (Python numbers become float64)."""
    if isinstance(t, Tensor):
        return t if t.is_floating_point() else t.to(dtype)
    return torch.as_tensor(t, dtype=dtype)


def batch_time(t, x: Tensor) -> Tensor:
    """``t`` per sample: a scalar time broadcast to ``(n,)`` in x's dtype and device (a
    per-sample ``t`` is returned as it is)."""
    t = as_time(t)
    return t.to(device=x.device, dtype=x.dtype).expand(x.shape[0]) if t.ndim == 0 else t


def expand_to(c: Tensor, x: Tensor) -> Tensor:
    """Reshape per-sample coefficients ``(n,)`` (or a scalar) to broadcast over ``x``."""
    c = c.to(dtype=x.dtype, device=x.device)
    if c.ndim == 0:
        return c
    return c.reshape(*c.shape, *([1] * (x.ndim - c.ndim)))


@dataclass(frozen=True)
class DiscreteChain:
    """A discrete diffusion chain: times ``t`` (N,) with marginals α_i, σ_i (float64).

    For VP, ``betas`` are DDPM's β_i = 1 - α_i²/α_{i-1}² (α_0 = 1); for VE the
    chain is SMLD's geometric σ grid.
    """

    t: Tensor
    alpha: Tensor
    sigma: Tensor

    @property
    def alphas_cumprod(self) -> Tensor:
        """ᾱ_i = α_i²."""
        return self.alpha.square()

    @property
    def betas(self) -> Tensor:
        """β_i = 1 - ᾱ_i / ᾱ_{i-1} with ᾱ_0 = 1 (the DDPM transition variances)."""
        prev = torch.cat([self.alpha.new_ones(1), self.alpha[:-1]])
        return -torch.expm1(2 * (self.alpha.log() - prev.log()))

    def __len__(self) -> int:
        return self.t.numel()


class SDE(abc.ABC):
    """Abstract linear SDE with covariance-shaped noise (see the module docstring).

    Subclasses implement :meth:`_marginal`, :meth:`_drift_coef`, :meth:`_diffusion` (on
    times already checked to lie in [0, T]), :meth:`t_of_log_snr` and :meth:`_chain_times`;
    everything else is derived, and every public method taking a time rejects one outside
    [0, T] with a ``ValueError``.

    Attributes: ``covariance`` (a :class:`CovarianceOperator`), ``T`` (the time
    horizon), ``default_eps`` (the smallest time samplers integrate to).
    """

    covariance: CovarianceOperator
    T: float
    default_eps: float

    def __init__(self, covariance: CovarianceOperator, T: float):
        if not isinstance(covariance, CovarianceOperator):
            raise InputTypeError(
                f"covariance must be a CovarianceOperator (e.g. GFFCovariance), "
                f"got {type(covariance).__name__}"
            )
        if not (isinstance(T, (int, float)) and T > 0):
            raise InputError(f"T must be a positive number, got {T!r}")
        self.covariance = covariance
        self.T = float(T)

    # ------------------------------------------------------------- the core
    @abc.abstractmethod
    def _marginal(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """(α_t, σ_t) for a checked time tensor ``t``."""

    @abc.abstractmethod
    def _drift_coef(self, t: Tensor) -> Tensor:
        """f(t) for a checked time tensor ``t``."""

    @abc.abstractmethod
    def _diffusion(self, t: Tensor) -> Tensor:
        """g(t) for a checked time tensor ``t``."""

    def marginal(self, t) -> tuple[Tensor, Tensor]:
        """(α_t, σ_t) such that x_t = α_t x_0 + σ_t L ε; ``ValueError`` unless t ∈ [0, T]."""
        return self._marginal(self.check_time(t))

    def drift_coef(self, t) -> Tensor:
        """f(t) = d log α_t / dt; ``ValueError`` unless t ∈ [0, T]."""
        return self._drift_coef(self.check_time(t))

    def diffusion(self, t) -> Tensor:
        """g(t) = sqrt(dσ²/dt - 2 f σ²); ``ValueError`` unless t ∈ [0, T]."""
        return self._diffusion(self.check_time(t))

    @abc.abstractmethod
    def t_of_log_snr(self, log_snr) -> Tensor:
        """The inverse of :meth:`log_snr`."""

    @abc.abstractmethod
    def _chain_times(self, num_steps: int) -> Tensor:
        """The times of the classical discrete chain with ``num_steps`` steps."""

    # ------------------------------------------------------------ derived
    @property
    def event_shape(self) -> tuple[int, ...]:
        return self.covariance.event_shape

    @property
    def prior_scale(self) -> float:
        """s such that the prior is N(0, s² Σ): σ_T."""
        return float(self.marginal(torch.tensor(self.T, dtype=torch.float64))[1])

    def log_snr(self, t) -> Tensor:
        """The log-SNR log(α_t² / σ_t²), decreasing in t (twice the solvers' λ = log(α/σ))."""
        alpha, sigma = self.marginal(t)
        return 2 * (alpha.log() - sigma.log())

    def check_time(self, t, name: str = "t") -> Tensor:
        """``t`` as a tensor, or a ValueError unless every entry lies in [0, T]."""
        t = as_time(t)
        if t.numel() and (bool((t < 0).any()) or bool((t > self.T * (1 + 1e-12)).any())):
            raise InputError(
                f"{name} must lie in [0, T={self.T}], got values in "
                f"[{float(t.min()):.6g}, {float(t.max()):.6g}]"
            )
        if not bool(torch.isfinite(t).all()):
            raise InputError(f"{name} must be finite")
        return t

    def perturb(
        self, x0: Tensor, t, noise: Tensor | None = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Sample x_t = α_t x_0 + σ_t L ε from the forward marginal.

        **Arguments:** ``x0`` of shape ``(n, *event_shape)``; ``t`` a scalar or
        ``(n,)``; ``noise`` the whitened ε (drawn if ``None``).

        **Returns:** ``(x_t, ε)``.
        """
        self.covariance.check_input(x0, "x0")
        t = self.check_time(t).to(x0.device)
        if noise is None:
            noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        elif noise.shape != x0.shape:
            raise InputError(
                f"noise must have the shape of x0 {tuple(x0.shape)}, got {tuple(noise.shape)}"
            )
        alpha, sigma = self.marginal(t)
        xt = expand_to(alpha, x0) * x0 + expand_to(sigma, x0) * self.covariance.sqrt_apply(noise)
        return xt, noise

    def prior_sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        *,
        dtype: torch.dtype | None = None,
        device=None,
    ) -> Tensor:
        """x_T = σ_T L z, z ~ N(0, I): a draw from the prior N(0, σ_T² Σ)."""
        return self.prior_scale * self.covariance.sample(
            n, generator=generator, dtype=dtype, device=device
        )

    def prior_logp(self, x: Tensor) -> Tensor:
        """log N(x; 0, σ_T² Σ) = log N(x/σ_T; 0, Σ) - d log σ_T, shape ``batch``."""
        s = self.prior_scale
        return self.covariance.log_prob(x / s) - self.covariance.dim * math.log(s)

    def eps_to_score(self, eps: Tensor, t) -> Tensor:
        """∇log p_t(x) = -L⁻ᵀ ε / σ_t."""
        sigma = self.marginal(as_time(t))[1]
        return -self.covariance.inv_sqrt_apply_t(eps) / expand_to(sigma, eps)

    def eps_to_x0(self, eps: Tensor, x: Tensor, t) -> Tensor:
        """x̂₀ = (x - σ_t L ε) / α_t (Tweedie's denoiser for the exact ε).

        ``t`` is a scalar time or one per sample ``(n,)``; every sampler's data
        prediction and the final denoising step go through here.
        """
        alpha, sigma = self.marginal(as_time(t))
        return (x - expand_to(sigma, x) * self.covariance.sqrt_apply(eps)) / expand_to(alpha, x)

    def x0_to_eps(self, x0: Tensor, x: Tensor, t) -> Tensor:
        """ε = L⁻¹ (x - α_t x₀) / σ_t, the inverse of :meth:`eps_to_x0`."""
        alpha, sigma = self.marginal(as_time(t))
        resid = x - expand_to(alpha, x) * x0
        return self.covariance.inv_sqrt_apply(resid) / expand_to(sigma, x)

    def reverse_drift(self, x: Tensor, t, eps: Tensor, probability_flow: bool = False) -> Tensor:
        """f(t) x + c (g(t)²/σ_t) L ε̂ with c = 1 (reverse SDE) or ½ (probability-flow ODE).

        The drift for time running forward (dx = drift dt + g L dW): a reverse-time
        solver steps it with dt < 0. ``t`` is a scalar time or one per sample ``(n,)``;
        every sampler and backend that integrates the drift calls this.
        """
        t = as_time(t)
        c = 0.5 if probability_flow else 1.0
        coef = c * self.diffusion(t).square() / self.marginal(t)[1]
        return expand_to(self.drift_coef(t), x) * x + expand_to(coef, x) * (
            self.covariance.sqrt_apply(eps)
        )

    def reverse(self, model, probability_flow: bool = False) -> ReverseProcess:
        """The reverse-time SDE (or the probability-flow ODE) driven by ``model``."""
        return ReverseProcess(self, model, probability_flow)

    def discretize(self, num_steps: int) -> DiscreteChain:
        """The classical discrete chain: DDPM for VP (t_i = iT/N), SMLD for VE."""
        if not (isinstance(num_steps, int) and num_steps >= 1):
            raise InputError(f"num_steps must be a positive int, got {num_steps!r}")
        t = self._chain_times(num_steps)
        alpha, sigma = self.marginal(t)
        return DiscreteChain(t=t, alpha=alpha, sigma=sigma)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(covariance={self.covariance!r}, T={self.T})"


class ReverseProcess:
    """The reverse-time process of an SDE, driven by an ε-prediction model.

    ``drift(x, t)`` = f x + c (g²/σ_t) L ε̂(x, t), with c = 1 for the reverse SDE
    and c = ½ for the probability-flow ODE; ``diffusion_apply(z, t)`` = g L z
    (zero for the ODE). Both are written for time running *forward*
    (dx = drift dt + g L dW); integrate them from T down to eps.
    """

    def __init__(self, sde: SDE, model, probability_flow: bool = False):
        if not callable(model):
            raise InputTypeError(
                f"model must be callable as model(x, t), got {type(model).__name__}"
            )
        self.sde = sde
        self.model = model
        self.probability_flow = bool(probability_flow)

    def drift(self, x: Tensor, t) -> Tensor:
        """The drift at ``x`` and time ``t`` (scalar or per sample), calling the model once."""
        t = self.sde.check_time(t)
        return self.sde.reverse_drift(x, t, self.model(x, batch_time(t, x)), self.probability_flow)

    def diffusion_apply(self, z: Tensor, t) -> Tensor:
        if self.probability_flow:
            return torch.zeros_like(z)
        return expand_to(self.sde.diffusion(as_time(t)), z) * self.sde.covariance.sqrt_apply(z)
