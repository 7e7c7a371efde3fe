"""Turn x₀-, v- and score-prediction models into sdekit's ε-prediction convention.

sdekit's samplers call ``model(x, t) -> ε̂``, the *whitened* noise of
x_t = α_t x₀ + σ_t L ε. In whitened coordinates y = L⁻¹ x the usual identities hold:

    ε = (y_t - α_t L⁻¹ x₀) / σ_t                     (from x₀)
    ε = (σ_t y_t + α_t v) / (α_t² + σ_t²),  v = α_t ε - σ_t L⁻¹x₀   (from v)
    ε = -σ_t Lᵀ ∇log p_t(x)                         (from the score)
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from .base import SDE, expand_to

__all__ = ["eps_from_x0", "eps_from_v", "eps_from_score", "v_to_eps"]

Model = Callable[[Tensor, Tensor], Tensor]


def eps_from_x0(model: Model, sde: SDE) -> Model:
    """Wrap ``model(x, t) -> x̂₀`` as an ε-prediction model."""

    def eps(x: Tensor, t: Tensor) -> Tensor:
        return sde.x0_to_eps(model(x, t), x, t)

    return eps


def v_to_eps(sde: SDE, v: Tensor, x: Tensor, t) -> Tensor:
    """ε = (σ_t L⁻¹x + α_t v) / (α_t² + σ_t²) for v = α_t ε − σ_t L⁻¹x₀ (whitened)."""
    alpha, sigma = sde.marginal(t)
    a, s = expand_to(alpha, x), expand_to(sigma, x)
    return (s * sde.covariance.inv_sqrt_apply(x) + a * v) / (a * a + s * s)


def eps_from_v(model: Model, sde: SDE) -> Model:
    """Wrap ``model(x, t) -> v̂`` (v = α ε - σ L⁻¹x₀, whitened) as an ε-prediction model."""

    def eps(x: Tensor, t: Tensor) -> Tensor:
        return v_to_eps(sde, model(x, t), x, t)

    return eps


def eps_from_score(model: Model, sde: SDE) -> Model:
    """Wrap ``model(x, t) -> ∇log p_t(x)`` as an ε-prediction model."""

    def eps(x: Tensor, t: Tensor) -> Tensor:
        sigma = sde.marginal(t)[1]
        return -expand_to(sigma, x) * sde.covariance.sqrt_apply_t(model(x, t))

    return eps
