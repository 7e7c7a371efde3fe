"""Inverse problems with a diffusion prior: y = A x + n with structured measurement noise
n ~ N(0, Σ_y), solved by sampling p(x | y) with any sampler (docs/inverse.md).

- :class:`Measurement` — the operator A, its adjoint and pseudo-inverse, and Σ_y;
- :func:`posterior_model` — a prior ε-model turned into a model of p(x_t | y) in the
  non-isotropic form ε̂ − σ_t Lᵀ ∇ₓ log p(y | x_t): DPS, ΠGDM (isotropic or Tweedie
  covariance) and DDNM's projection;
- :func:`gaussian_kernel` — a blur kernel for :meth:`Measurement.blur`.

The exact referee for Gaussian data is :class:`sdekit.testing.GaussianPosterior`.
"""

from .._cg import CGResult, conjugate_gradients
from .measurement import Measurement
from .operators import LinearOperator, gaussian_kernel
from .posterior import METHODS, WEIGHTS, PosteriorModel, posterior_model

__all__ = [
    "Measurement",
    "posterior_model",
    "WEIGHTS",
    "PosteriorModel",
    "METHODS",
    "LinearOperator",
    "gaussian_kernel",
    "conjugate_gradients",
    "CGResult",
]
