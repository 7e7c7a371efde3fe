"""A covariance times a positive scalar: Σ' = s² Σ, the noise *level* s of a noise *shape* Σ.

A measurement's noise is usually given as a level and a structure ("white noise of standard
deviation 0.05", "GFF-correlated noise of per-pixel size 0.1"): with L Lᵀ = Σ,

    L' = s L,   L'⁻¹ = L⁻¹ / s,   log det Σ' = log det Σ + 2 d log s,

and a Fourier-diagonal Σ stays Fourier-diagonal with eigenvalues s² λ.
"""

from __future__ import annotations

import math

from torch import Tensor

from ..errors import InputError, InputTypeError
from .base import CovarianceOperator

__all__ = ["ScaledCovariance"]


class ScaledCovariance(CovarianceOperator):
    """Σ' = std² · Σ for a :class:`CovarianceOperator` Σ and a standard deviation std > 0.

    **Arguments:**
    - ``base``: the covariance Σ (its structure; e.g. ``GFFCovariance`` with unit-mean
      eigenvalues, so that ``std`` is the root-mean-square per-element standard deviation).
    - ``std``: s > 0, a finite number.
    """

    def __init__(self, base: CovarianceOperator, std: float):
        if not isinstance(base, CovarianceOperator):
            raise InputTypeError(f"base must be a CovarianceOperator, got {type(base).__name__}")
        ok = isinstance(std, (int, float)) and not isinstance(std, bool) and math.isfinite(std)
        if not ok or std <= 0:
            raise InputError(f"std (the noise level) must be a finite number > 0, got {std!r}")
        self.base, self.std = base, float(std)
        self.event_shape = tuple(base.event_shape)
        self.spatial_dims = base.spatial_dims

    def _sqrt_apply(self, x: Tensor) -> Tensor:
        return self.std * self.base._sqrt_apply(x)

    def _sqrt_apply_t(self, x: Tensor) -> Tensor:
        return self.std * self.base._sqrt_apply_t(x)

    def _inv_sqrt_apply(self, x: Tensor) -> Tensor:
        return self.base._inv_sqrt_apply(x) / self.std

    def _inv_sqrt_apply_t(self, x: Tensor) -> Tensor:
        return self.base._inv_sqrt_apply_t(x) / self.std

    def logdet(self) -> Tensor:
        d = self.base.logdet()
        return d + 2 * self.dim * math.log(self.std)

    def diagonal(self) -> Tensor:
        return self.std**2 * self.base.diagonal()

    def fourier_spectrum(self) -> Tensor | None:
        lam = self.base.fourier_spectrum()
        return None if lam is None else self.std**2 * lam

    def __repr__(self) -> str:
        return f"ScaledCovariance({self.base!r}, std={self.std:g})"
