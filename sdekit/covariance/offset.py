"""Offset noise made exact: the covariance of diffusers' ``noise_offset`` trick.

diffusers' training scripts draw the forward noise as ``randn(b, C, H, W) + s · randn(b, C,
1, 1)`` (``noise_offset = s``): white noise plus a per-channel constant. Its covariance is,
per channel, over the n = H·W pixels of an image,

    Σ = I + s² 1 1ᵀ,

identity plus a rank-one term, channels independent. It has the eigenvector u = 1/√n
(the image mean) with eigenvalue 1 + s² n and eigenvalue 1 on its complement — u is the DC
basis vector of the orthonormal DFT, so Σ is Fourier-diagonal with λ_DC = 1 + s² n and
λ_k = 1 elsewhere. Closed forms (a = √(1 + s² n)):

    L x   = x + (a − 1) · mean(x) · 1          (the symmetric square root)
    L⁻¹ x = x + (1/a − 1) · mean(x) · 1,       log det Σ = C · log(1 + s² n).

Used inside isotropic formulas, as in those scripts, the score and likelihood are those of
white noise — wrong by exactly this rank-one term; here they are exact.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import InputError
from ._validation import as_event_shape
from .fourier import FourierCovariance

__all__ = ["OffsetNoiseCovariance"]


class OffsetNoiseCovariance(FourierCovariance):
    """Σ = I + s² 1 1ᵀ per channel over the last two dims (module docstring).

    **Arguments:**
    - ``event_shape``: ``(..., H, W)``.
    - ``strength``: s ≥ 0, diffusers' ``noise_offset`` (e.g. 0.1); 0 is white noise.
    - ``dtype`` / ``device``: of the (Fourier) spectrum.
    """

    def __init__(self, event_shape, strength: float = 0.1, dtype=None, device=None):
        event_shape = as_event_shape(event_shape)
        if len(event_shape) < 2:
            raise InputError(f"event_shape must be (..., H, W), got {event_shape}")
        ok = isinstance(strength, (int, float)) and not isinstance(strength, bool)
        if not (ok and math.isfinite(strength) and strength >= 0):
            raise InputError(
                f"strength (diffusers' noise_offset) must be a finite number >= 0, got {strength!r}"
            )
        h, w = event_shape[-2:]
        n = h * w
        lam = torch.ones(h, w, dtype=dtype or torch.get_default_dtype(), device=device)
        lam[0, 0] = 1 + strength**2 * n
        super().__init__(lam, event_shape)
        self.strength = float(strength)
        self._a = math.sqrt(1 + strength**2 * n)

    def _rank_one(self, x: Tensor, coef: float) -> Tensor:
        return x + coef * x.mean(dim=(-2, -1), keepdim=True)

    def _sqrt_apply(self, x: Tensor) -> Tensor:
        return self._rank_one(x, self._a - 1)

    def _inv_sqrt_apply(self, x: Tensor) -> Tensor:
        return self._rank_one(x, 1 / self._a - 1)

    def apply(self, x: Tensor) -> Tensor:
        return self._checked(lambda v: self._rank_one(v, self._a**2 - 1), x)

    def solve(self, x: Tensor) -> Tensor:
        return self._checked(lambda v: self._rank_one(v, 1 / self._a**2 - 1), x)

    def __repr__(self) -> str:
        return f"OffsetNoiseCovariance(event_shape={self.event_shape}, strength={self.strength})"
