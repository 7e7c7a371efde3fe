"""Stationary periodic covariances: diagonal in the orthonormal N-D DFT (N = 1, 2 or 3)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import InputError
from ._validation import (
    as_event_shape,
    as_float_tensor,
    check_float_dtype,
    check_positive,
    symmetry_tolerance,
)
from .base import CovarianceOperator

__all__ = [
    "FourierCovariance",
    "SPATIAL_DIMS",
    "check_spatial_dims",
    "fourier_filter",
    "fourier_transform",
    "shared_spatial_dims",
    "spatial_dims_of",
    "squared_frequencies",
    "mirror_frequencies",
    "power_spectrum",
]

SPATIAL_DIMS = (1, 2, 3)  # signals (C, L), images (C, H, W), volumes / video (C, D, H, W)
GRID_NAMES = {1: "L", 2: "H, W", 3: "D, H, W"}


def check_spatial_dims(spatial_dims, event_shape=None, name: str = "event_shape") -> int:
    """``spatial_dims`` as an int in :data:`SPATIAL_DIMS`; with ``event_shape``, also that the
    event has at least that many dims (``InputError`` naming the argument otherwise)."""
    if isinstance(spatial_dims, bool) or spatial_dims not in SPATIAL_DIMS:
        raise InputError(f"spatial_dims must be one of {SPATIAL_DIMS}, got {spatial_dims!r}")
    if event_shape is not None and len(event_shape) < spatial_dims:
        raise InputError(
            f"{name} must be (..., {GRID_NAMES[spatial_dims]}) for spatial_dims="
            f"{spatial_dims}, got {tuple(event_shape)}"
        )
    return int(spatial_dims)


def shared_spatial_dims(operators, event_shape) -> int | None:
    """The one DFT in which every operator of ``operators`` is diagonal, as its number of
    trailing dims, or ``None`` when there is none (an operator without a
    ``fourier_spectrum()``, or operators diagonal over different dims).

    White noise (``spatial_dims`` ``None``) is diagonal in every such basis; when all are
    white the basis is the images' 2-D DFT, or the 1-D one for a one-dimensional event.
    """
    dims = set()
    for op in operators:
        if op.fourier_spectrum() is None:
            return None
        if op.spatial_dims is not None:
            dims.add(op.spatial_dims)
    if len(dims) > 1:
        return None
    k = dims.pop() if dims else min(2, len(event_shape))
    return k if 1 <= k <= len(event_shape) else None


def spatial_dims_of(operator) -> int:
    """The grid dims a stationary fit beside ``operator`` runs over: its own
    ``spatial_dims``, or for white noise every event dim after the first (the channel),
    between 1 and 3 — (C, H, W) images 2, (C, L) signals 1, (C, D, H, W) volumes 3."""
    if operator.spatial_dims is not None:
        return operator.spatial_dims
    return max(1, min(3, len(operator.event_shape) - 1))


def squared_frequencies(grid, dtype=torch.float64, device=None) -> Tensor:
    """|k|² = Σ_i k_i² on the N-D grid of integer frequencies (``fftfreq(n, 1/n)`` per dim),
    shape ``grid``, DC at index 0."""
    grid = tuple(int(n) for n in grid)
    k2 = torch.zeros(grid, dtype=dtype, device=device)
    for i, n in enumerate(grid):
        k = torch.fft.fftfreq(n, 1.0 / n, dtype=dtype, device=device)
        k2 = k2 + k.square().reshape([n if j == i else 1 for j in range(len(grid))])
    return k2


def _axes(spatial_dims: int) -> tuple[int, ...]:
    return tuple(range(-spatial_dims, 0))


def fourier_transform(x: Tensor, spatial_dims: int = 2) -> Tensor:
    """F x, the orthonormal DFT over the last ``spatial_dims`` dims (complex)."""
    return torch.fft.fftn(x, dim=_axes(spatial_dims), norm="ortho")


def fourier_filter(x: Tensor, half_gain: Tensor, spatial_dims: int = 2) -> Tensor:
    """F⁻¹(g · F x) for a real, symmetric gain g (g[-k] = g[k]) given on the ``rfftn``
    half-grid (last dim k ≤ n // 2): one real FFT pair over the last ``spatial_dims`` dims."""
    axes = _axes(spatial_dims)
    spec = torch.fft.rfftn(x, dim=axes, norm="ortho") * half_gain
    return torch.fft.irfftn(spec, s=x.shape[-spatial_dims:], dim=axes, norm="ortho")


def mirror_frequencies(spectrum: Tensor, spatial_dims: int = 2) -> Tensor:
    """The spectrum at -k over the last ``spatial_dims`` dims, e.g. in 2-D
    ``out[..., ky, kx] = spectrum[..., -ky mod H, -kx mod W]``."""
    axes = _axes(spatial_dims)
    return torch.roll(torch.flip(spectrum, dims=axes), shifts=(1,) * spatial_dims, dims=axes)


def power_spectrum(
    images, *, center: bool = True, batch_size: int = 4096, spatial_dims: int = 2
) -> Tensor:
    """The mean power spectrum of ``images`` ``(n, C, *grid)`` per channel, shape ``(C, *grid)``.

        P_c[k] = (1/n) Σ_i |F(x_i[c] - m_c)|²_k,   F the orthonormal DFT over the grid,

    with ``grid`` the last ``spatial_dims`` dims (2: ``(n, C, H, W)`` images; 1: signals
    ``(n, C, L)``; 3: volumes ``(n, C, D, H, W)``), in ``torch.fft.fftfreq`` order (DC at
    index 0); m_c is the channel's mean over all images and grid points (``center=True``),
    so P_c[0] is the variance of the image-mean brightness, not the square of a constant
    offset. Σ_k P_c[k] / |grid| is the channel's pixel variance (Parseval). Exactly
    symmetric, P[-k] = P[k]. float64; processed in chunks of ``batch_size`` images.
    """
    spatial_dims = check_spatial_dims(spatial_dims)
    x = torch.as_tensor(images)
    if x.ndim != 2 + spatial_dims or x.shape[0] == 0 or not x.is_floating_point():
        layout = ("(n, C, L)", "(n, C, H, W)", "(n, C, D, H, W)")[spatial_dims - 1]
        raise InputError(
            f"images must be a non-empty float tensor {layout} for spatial_dims="
            f"{spatial_dims}, got {x.dtype} of shape {tuple(x.shape)}"
        )
    pixels = (0, *range(2, x.ndim))
    mean = x.to(torch.float64).mean(dim=pixels, keepdim=True) if center else 0.0
    total = torch.zeros(x.shape[1:], dtype=torch.float64)
    for chunk in x.split(batch_size):
        spec = fourier_transform(chunk.to(torch.float64) - mean, spatial_dims)
        total += spec.abs().square().sum(0).cpu()
    power = total / x.shape[0]
    return 0.5 * (power + mirror_frequencies(power, spatial_dims))


class FourierCovariance(CovarianceOperator):
    """Σ = F⁻¹ diag(λ) F over the last ``spatial_dims`` dims, F the orthonormal N-D DFT.

    Any stationary covariance on a periodic grid (a signal's L, an image's H×W, a volume's
    D×H×W) has this form. Leading event dims (channels) are independent, with their own or
    a shared spectrum. The factor is the symmetric square root L = Σ^{1/2} = F⁻¹ diag(√λ) F,
    which is real because λ_k = λ_{-k}; it is applied with ``rfftn`` / ``irfftn`` (norm
    ``"ortho"``) and never formed. log det Σ = Σ_k log λ_k over every channel.

    **Arguments:**
    - ``eigenvalues``: λ on the full frequency grid in ``torch.fft.fftfreq`` order (DC at
      index 0 of every spatial dim), shape ``(*lead, *grid)`` broadcastable to the event
      shape. Must be finite, > 0 and symmetric, λ[-k] = λ[k].
    - ``event_shape``: the event shape, e.g. ``(C, H, W)``; defaults to
      ``eigenvalues.shape``. Its last ``spatial_dims`` dims must equal the spectrum's.
    - ``spatial_dims``: how many trailing dims the DFT runs over: 1 (signals ``(C, L)``),
      2 (images, the default) or 3 (volumes and video ``(C, D, H, W)``).
    """

    def __init__(self, eigenvalues, event_shape=None, *, spatial_dims: int = 2):
        k = check_spatial_dims(spatial_dims)
        lam = as_float_tensor(eigenvalues, "eigenvalues")
        check_float_dtype(lam.dtype, "the eigenvalues' dtype")
        if lam.ndim < k:
            raise InputError(
                f"eigenvalues must have shape (..., {GRID_NAMES[k]}) on the full frequency "
                f"grid for spatial_dims={k}, got {tuple(lam.shape)}"
            )
        event_shape = tuple(lam.shape) if event_shape is None else as_event_shape(event_shape)
        if len(event_shape) < k or event_shape[-k:] != tuple(lam.shape[-k:]):
            raise InputError(
                f"event_shape {event_shape} must end with the spectrum's grid "
                f"{tuple(lam.shape[-k:])} (eigenvalues on the full frequency grid, "
                f"spatial_dims={k})"
            )
        pairs = zip(reversed(lam.shape), reversed(event_shape), strict=False)
        if lam.ndim > len(event_shape) or any(a not in (1, b) for a, b in pairs):
            raise InputError(
                f"eigenvalues of shape {tuple(lam.shape)} do not broadcast to "
                f"event_shape {event_shape}"
            )
        check_positive(lam, "eigenvalues", "eigenvalues")
        mirrored = mirror_frequencies(lam, k)
        tol = symmetry_tolerance(lam.dtype)
        if not torch.allclose(lam, mirrored, rtol=tol, atol=0.0):
            err = ((lam - mirrored).abs() / lam).max()
            raise InputError(
                "eigenvalues must be symmetric, λ[-k] = λ[k] (fftfreq order), so that the "
                f"covariance is real; max relative asymmetry {float(err):.3g} > {tol:.1e}"
            )
        self.event_shape = event_shape
        self.spatial_dims = k
        self.eigenvalues = lam
        half = lam.shape[-1] // 2 + 1
        self.sqrt_half = lam[..., :half].sqrt()  # √λ on the rfft half-spectrum
        self.inv_sqrt_half = self.sqrt_half.reciprocal()

    @classmethod
    def from_data(
        cls,
        images,
        *,
        normalize: bool = True,
        floor: float = 1e-3,
        center: bool = True,
        dtype: torch.dtype | None = None,
        spatial_dims: int = 2,
    ) -> CovarianceOperator:
        """Noise shaped like the data: λ = the images' mean power spectrum.

        For one channel, ``FourierCovariance(P)`` with P from :func:`power_spectrum`.
        With C > 1 channels, Σ = Σ_c ⊗ F⁻¹ diag(P̄) F (a
        :class:`~sdekit.covariance.KroneckerCovariance`): P̄ the channels' mean spectrum
        and Σ_c the C × C colour covariance of the pixels (scaled to unit mean variance when
        ``normalize``), so both the spatial spectrum and the colour correlation of the data
        are kept while the operator stays FFT-cheap.

        **Arguments:** ``images`` ``(n, C, *grid)``, e.g. a training set in [-1, 1], with
        ``spatial_dims`` grid dims (``(n, C, H, W)`` images by default);
        ``normalize``: scale so every pixel's noise variance averages 1 (mean λ = 1), as
        :class:`~sdekit.covariance.GFFCovariance` does; ``floor``: λ is clamped below at
        ``floor`` × mean λ before normalising (a frequency the data never excites would
        otherwise get no noise, and Σ would not be invertible); ``center``: see
        :func:`power_spectrum`; ``dtype``: of the operator (default: torch's default
        dtype; the statistics are computed in float64).
        """
        check_float_dtype(dtype)
        dtype = dtype or torch.get_default_dtype()
        if not floor > 0:
            raise InputError(f"floor must be > 0 (Σ must stay invertible), got {floor}")
        power = power_spectrum(images, center=center, spatial_dims=spatial_dims)
        channels, grid = power.shape[0], tuple(power.shape[1:])
        spatial = power.mean(0, keepdim=True)
        if not float(spatial.mean()) > 0:
            raise InputError(
                "images have no variance (constant images, or all equal to their mean when "
                "centred): their power spectrum is zero, so there is no covariance to fit"
            )
        spatial = spatial.clamp_min(floor * float(spatial.mean()))
        if normalize:
            spatial = spatial / spatial.mean()
        spatial = spatial.to(dtype)
        if channels == 1:
            return cls(spatial, (1, *grid), spatial_dims=spatial_dims)
        from .kronecker import KroneckerCovariance

        x = torch.as_tensor(images).to(torch.float64).movedim(1, -1).reshape(-1, channels)
        colour = torch.cov(x.T)
        if normalize:
            colour = colour / colour.diagonal().mean()
        spatial = cls(spatial, (1, *grid), spatial_dims=spatial_dims)
        return KroneckerCovariance(colour.to(dtype), spatial)

    @property
    def grid(self) -> tuple[int, ...]:
        """The spatial grid, the last ``spatial_dims`` event dims (e.g. (H, W))."""
        return tuple(self.event_shape[-self.spatial_dims :])

    def _filter(self, x: Tensor, gain: Tensor) -> Tensor:
        return fourier_filter(x, gain, self.spatial_dims)

    def _sqrt_apply(self, x: Tensor) -> Tensor:
        return self._filter(x, self.sqrt_half)

    def _inv_sqrt_apply(self, x: Tensor) -> Tensor:
        return self._filter(x, self.inv_sqrt_half)

    def apply(self, x: Tensor) -> Tensor:
        """Σ x with one FFT pair (λ instead of √λ twice)."""
        self.check_input(x)
        return self._filter(x, self.sqrt_half.square())

    def solve(self, x: Tensor) -> Tensor:
        """Σ⁻¹ x with one FFT pair."""
        self.check_input(x)
        return self._filter(x, self.inv_sqrt_half.square())

    def logdet(self) -> Tensor:
        return self.eigenvalues.log().expand(self.event_shape).sum()

    def fourier_spectrum(self) -> Tensor:
        """λ broadcast to the event shape (a view of :attr:`eigenvalues`)."""
        return self.eigenvalues.expand(self.event_shape)

    def diagonal(self) -> Tensor:
        """Stationary: every pixel of a channel has variance mean_k λ_k."""
        per_channel = self.eigenvalues.mean(dim=_axes(self.spatial_dims), keepdim=True)
        return per_channel.expand(self.event_shape)
