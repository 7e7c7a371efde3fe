"""Σ = diag(v): independent elements with individual variances."""

from __future__ import annotations

from torch import Tensor

from ..errors import InputError
from ._validation import as_float_tensor, check_positive
from .base import CovarianceOperator

__all__ = ["DiagonalCovariance"]


class DiagonalCovariance(CovarianceOperator):
    """Σ = diag(v), L = diag(√v), log det Σ = Σᵢ log vᵢ.

    **Arguments:**
    - ``variances``: a tensor of per-element variances; its shape is the event
      shape. Every entry must be finite and > 0.
    """

    def __init__(self, variances):
        v = as_float_tensor(variances, "variances")
        if v.ndim == 0:
            raise InputError("variances must have at least one dimension (the event shape)")
        check_positive(v, "variances", "variances")
        self.event_shape = tuple(v.shape)
        self.variances = v
        self.scale = v.sqrt()

    def _sqrt_apply(self, x: Tensor) -> Tensor:
        return x * self.scale

    def _inv_sqrt_apply(self, x: Tensor) -> Tensor:
        return x / self.scale

    def logdet(self) -> Tensor:
        return self.variances.log().sum()

    def diagonal(self) -> Tensor:
        return self.variances
