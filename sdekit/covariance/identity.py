"""Σ = I: ordinary white noise."""

from __future__ import annotations

import torch
from torch import Tensor

from ._validation import as_event_shape
from .base import CovarianceOperator

__all__ = ["IdentityCovariance"]


class IdentityCovariance(CovarianceOperator):
    """The identity covariance Σ = L = I over ``event_shape``.

    It holds no tensors, so it accepts input of any floating dtype and device;
    :meth:`sample` takes ``dtype`` / ``device`` keywords.
    """

    spatial_dims = None  # diagonal in every Fourier basis

    def __init__(self, event_shape):
        self.event_shape = as_event_shape(event_shape)

    def _sqrt_apply(self, x: Tensor) -> Tensor:
        return x

    def _inv_sqrt_apply(self, x: Tensor) -> Tensor:
        return x

    def logdet(self) -> Tensor:
        return torch.zeros((), dtype=torch.get_default_dtype())

    def diagonal(self) -> Tensor:
        return torch.ones(self.event_shape)

    def fourier_spectrum(self) -> Tensor | None:
        """All ones (float64): white noise is diagonal in the DFT over any trailing dims
        (:attr:`spatial_dims` is ``None``)."""
        return torch.ones(self.event_shape, dtype=torch.float64)
