"""Pyramid (multi-resolution) noise made exact: the covariance of a sum of upsampled noises.

Multi-resolution noise (kohya's ``multires_noise``, Whitaker's "pyramid noise") adds coarse
white noises, bilinearly upsampled, to a fine one. With a fixed factor 2 per level it is
Gaussian,

    x = z₀ + Σ_{i=1..K} dⁱ U_i z_i,   z_i ~ N(0, I) on the (H/2ⁱ) × (W/2ⁱ) grid,
    Σ = c · (I + Σ_i d^{2i} U_i U_iᵀ),

U_i the bilinear upsampling (``align_corners=False``, separable: U_i = U_i^H ⊗ U_i^W), d the
discount and c the constant that makes the mean per-pixel variance 1 (kohya rescales by the
sample's std; kohya also draws the factor at random in [2, 4) per level, which makes the noise
a mixture, not a Gaussian — here the factor is 2). Two operators:

- ``exact=True``: :class:`~sdekit.covariance.MatrixFreeCovariance` with the matvec above
  (applied with the 1-D upsampling matrices); Σ is not stationary (bilinear upsampling treats
  the border and the pixel phase within a block differently);
- ``exact=False``: its **stationary Fourier equivalent**, a :class:`FourierCovariance` with
  λ_k = (F Σ Fᴴ)_kk, Σ's diagonal in the Fourier basis (the closest circulant in Frobenius
  norm), cheap (FFT) for training. :func:`pyramid_stationarity_gap` measures the difference:
  KL(N(0, Σ) ‖ N(0, Σ_stationary)) per dimension.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import InputError
from ._validation import as_event_shape
from .fourier import FourierCovariance
from .matrix_free import MatrixFreeCovariance

__all__ = ["pyramid_covariance", "pyramid_stationarity_gap"]

F64 = torch.float64


def _upsample_matrix(n: int, m: int) -> Tensor:
    """The (n, m) matrix of 1-D linear upsampling from m to n points (align_corners=False),
    column j = the upsampled unit vector e_j (bilinear is this in each dimension)."""
    eye = torch.eye(m, dtype=F64)[:, None, :]  # (m, 1, m): m signals of length m
    return F.interpolate(eye, size=n, mode="linear", align_corners=False)[:, 0, :].T


def _levels(h: int, w: int, levels) -> int:
    most = int(math.floor(math.log2(min(h, w))))
    k = most if levels is None else levels
    if not (isinstance(k, int) and 1 <= k <= most):
        raise InputError(f"levels must be an int in [1, {most}] for a {h}×{w} grid, got {levels!r}")
    return k


def _factors(shape, discount: float, levels):
    h, w = shape[-2:]
    ok = isinstance(discount, (int, float)) and math.isfinite(discount) and 0 < discount < 1
    if not ok:
        raise InputError(f"discount must be a number in (0, 1), got {discount!r}")
    k = _levels(h, w, levels)
    ups = [
        (
            discount ** (2 * i),
            _upsample_matrix(h, max(1, h >> i)),
            _upsample_matrix(w, max(1, w >> i)),
        )
        for i in range(1, k + 1)
    ]
    n = h * w
    trace = n + sum(c * (uh.square().sum()) * (uw.square().sum()) for c, uh, uw in ups)
    return ups, float(n / trace)  # scale making tr Σ / n = 1


def pyramid_covariance(event_shape, discount: float = 0.8, levels: int | None = None, *,
                       exact: bool = False, dtype=F64, **matrix_free):  # fmt: skip
    """The pyramid-noise covariance over ``event_shape`` (..., H, W) (module docstring):
    ``discount`` d ∈ (0, 1), ``levels`` K (default: as many as halve the grid down to 1),
    ``exact`` the non-stationary Σ (matrix-free) or its stationary Fourier equivalent."""
    shape = as_event_shape(event_shape)
    if len(shape) < 2:
        raise InputError(f"event_shape must be (..., H, W), got {shape}")
    ups, scale = _factors(shape, discount, levels)
    if not exact:
        h, w = shape[-2:]
        fh, fw = (torch.fft.fft(torch.eye(n, dtype=F64), norm="ortho") for n in (h, w))
        lam = torch.ones(h, w, dtype=F64)
        for c, uh, uw in ups:  # diag(F U Uᵀ Fᴴ) per dimension, separable
            a = (fh @ uh.to(torch.complex128)).abs().square().sum(1)
            b = (fw @ uw.to(torch.complex128)).abs().square().sum(1)
            lam = lam + c * a[:, None] * b[None, :]
        return FourierCovariance((scale * lam).to(dtype), shape)

    def matvec(x: Tensor) -> Tensor:
        out = x.clone()
        for c, uh, uw in ups:
            uh_, uw_ = uh.to(x), uw.to(x)
            coarse = uh_.T @ x @ uw_  # Uᵀ x on each (H, W) image
            out = out + c * (uh_ @ coarse @ uw_.T)
        return scale * out

    return MatrixFreeCovariance(matvec, shape, dtype=dtype, **matrix_free)


def pyramid_stationarity_gap(
    event_shape, discount: float = 0.8, levels: int | None = None
) -> float:
    """KL(N(0, Σ_exact) ‖ N(0, Σ_stationary)) per dimension, dense (one channel, small grids)."""
    shape = (1, *as_event_shape(event_shape)[-2:])
    d = math.prod(shape)
    if d > 4096:
        raise InputError(f"the dense gap needs H·W <= 4096, got {d}")
    basis = torch.eye(d, dtype=F64).reshape(d, *shape)
    exact = pyramid_covariance(shape, discount, levels, exact=True)
    S = exact.matvec(basis).reshape(d, d)
    Q = pyramid_covariance(shape, discount, levels).to_dense()
    S, Q = 0.5 * (S + S.T), 0.5 * (Q + Q.T)
    chol = torch.linalg.cholesky(Q)
    trace = torch.cholesky_solve(S, chol).diagonal().sum()
    logdet_q = 2 * chol.diagonal().log().sum()
    return float(0.5 * (trace - d + logdet_q - torch.logdet(S))) / d
