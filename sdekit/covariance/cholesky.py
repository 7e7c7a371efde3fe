"""Dense covariances through their Cholesky factor."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import InputError
from ._validation import as_event_shape, as_float_tensor, symmetry_tolerance
from .base import CovarianceOperator

__all__ = ["CholeskyCovariance"]


class CholeskyCovariance(CovarianceOperator):
    """A dense covariance Σ = L Lᵀ with L its lower Cholesky factor.

    L x is a matrix product, L⁻¹ x and L⁻ᵀ x are triangular solves
    (``torch.linalg.solve_triangular``, faster and more accurate than forming L⁻¹),
    log det Σ = 2 Σᵢ log Lᵢᵢ. Cost O(d²) per vector and d² memory: for image-sized
    stationary noise prefer :class:`FourierCovariance`.

    **Arguments:**
    - ``matrix``: Σ, a symmetric positive definite ``(d, d)`` tensor.
    - ``event_shape``: the event shape with prod(event_shape) = d; defaults to ``(d,)``.

    Use :meth:`from_factor` to start from a known factor instead.
    """

    def __init__(self, matrix, event_shape=None, *, _factor: Tensor | None = None):
        if _factor is not None:
            factor = _factor
        else:
            sigma = as_float_tensor(matrix, "matrix")
            self._check_square(sigma, "matrix")
            tol = symmetry_tolerance(sigma.dtype)
            scale = sigma.abs().max().clamp_min(torch.finfo(sigma.dtype).tiny)
            asym = (sigma - sigma.mT).abs().max() / scale
            if not bool(torch.isfinite(sigma).all()):
                raise InputError("matrix must contain only finite values")
            if asym > tol:
                raise InputError(
                    f"matrix must be symmetric; max |Σ - Σᵀ| / max |Σ| = {float(asym):.3g} "
                    f"exceeds {tol:.1e}"
                )
            factor, info = torch.linalg.cholesky_ex(0.5 * (sigma + sigma.mT))
            if int(info) != 0:
                raise InputError(
                    f"matrix must be positive definite; its Cholesky factorisation failed "
                    f"at leading minor {int(info)} of {sigma.shape[-1]}"
                )
        d = factor.shape[-1]
        event_shape = (d,) if event_shape is None else as_event_shape(event_shape)
        if math.prod(event_shape) != d:
            raise InputError(
                f"event_shape {event_shape} has {math.prod(event_shape)} elements but the "
                f"matrix is {d}×{d}"
            )
        self.event_shape = event_shape
        self.factor = factor

    @classmethod
    def from_factor(cls, factor, event_shape=None) -> CholeskyCovariance:
        """Build Σ = L Lᵀ from a lower-triangular ``factor`` L with positive diagonal."""
        L = as_float_tensor(factor, "factor")
        cls._check_square(L, "factor")
        if bool((L.triu(1) != 0).any()):
            raise InputError("factor must be lower triangular (zeros above the diagonal)")
        diag = L.diagonal()
        if not bool((torch.isfinite(L).all()) and (diag > 0).all()):
            raise InputError(
                "factor must be finite with a strictly positive diagonal "
                f"(min diagonal {float(diag.min()):.3g})"
            )
        return cls(None, event_shape, _factor=L)

    @staticmethod
    def _check_square(m: Tensor, name: str) -> None:
        if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
            raise InputError(f"{name} must be a square (d, d) matrix, got shape {tuple(m.shape)}")

    # Rows are vectors: (L x)ᵀ = xᵀ Lᵀ, and L⁻¹ x solves X Lᵀ = xᵀ from the right.
    def _rows(self, x: Tensor) -> Tensor:
        return x.reshape(-1, self.dim)

    def _back(self, rows: Tensor, like: Tensor) -> Tensor:
        return rows.reshape(like.shape)

    def _sqrt_apply(self, x: Tensor) -> Tensor:
        return self._back(self._rows(x) @ self.factor.mT, x)

    def _sqrt_apply_t(self, x: Tensor) -> Tensor:
        return self._back(self._rows(x) @ self.factor, x)

    def _inv_sqrt_apply(self, x: Tensor) -> Tensor:
        rows = torch.linalg.solve_triangular(self.factor.mT, self._rows(x), upper=True, left=False)
        return self._back(rows, x)

    def _inv_sqrt_apply_t(self, x: Tensor) -> Tensor:
        rows = torch.linalg.solve_triangular(self.factor, self._rows(x), upper=False, left=False)
        return self._back(rows, x)

    def logdet(self) -> Tensor:
        return 2.0 * self.factor.diagonal().log().sum()

    def to_dense(self) -> Tensor:
        return self.factor @ self.factor.mT

    def sqrt_to_dense(self) -> Tensor:
        return self.factor

    def diagonal(self) -> Tensor:
        return self.factor.square().sum(-1).reshape(self.event_shape)
