"""Stationary periodic covariances: diagonal in the orthonormal 2-D DFT."""

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

__all__ = ["FourierCovariance", "mirror_frequencies", "power_spectrum"]


def mirror_frequencies(spectrum: Tensor) -> Tensor:
    """The spectrum at -k: ``out[..., ky, kx] = spectrum[..., -ky mod H, -kx mod W]``."""
    flipped = torch.flip(spectrum, dims=(-2, -1))
    return torch.roll(flipped, shifts=(1, 1), dims=(-2, -1))


def power_spectrum(images, *, center: bool = True, batch_size: int = 4096) -> Tensor:
    """The mean power spectrum of ``images`` ``(n, C, H, W)`` per channel, shape ``(C, H, W)``.

        P_c[k] = (1/n) Σ_i |F(x_i[c] - m_c)|²_k,   F the orthonormal 2-D DFT,

    in ``torch.fft.fftfreq`` order (DC at (0, 0)); m_c is the channel's mean over all
    images and pixels (``center=True``), so P_c[0] is the variance of the image-mean
    brightness, not the square of a constant offset. Σ_k P_c[k] / (H W) is the channel's
    pixel variance (Parseval). Exactly symmetric, P[-k] = P[k]. float64; processed in
    chunks of ``batch_size`` images.
    """
    x = torch.as_tensor(images)
    if x.ndim != 4 or x.shape[0] == 0 or not x.is_floating_point():
        raise InputError(
            f"images must be a non-empty float tensor (n, C, H, W), got "
            f"{x.dtype} of shape {tuple(x.shape)}"
        )
    mean = x.to(torch.float64).mean(dim=(0, 2, 3), keepdim=True) if center else 0.0
    total = torch.zeros(x.shape[1:], dtype=torch.float64)
    for chunk in x.split(batch_size):
        spec = torch.fft.fft2(chunk.to(torch.float64) - mean, norm="ortho")
        total += spec.abs().square().sum(0).cpu()
    power = total / x.shape[0]
    return 0.5 * (power + mirror_frequencies(power))


class FourierCovariance(CovarianceOperator):
    """Σ = F⁻¹ diag(λ) F over the last two dims, F the orthonormal 2-D DFT.

    Any stationary covariance on a periodic H×W grid has this form. Leading
    event dims (channels) are independent, with their own or a shared spectrum.
    The factor is the symmetric square root L = Σ^{1/2} = F⁻¹ diag(√λ) F, which is
    real because λ_k = λ_{-k}; it is applied with ``rfft2`` / ``irfft2`` (norm
    ``"ortho"``) and never formed. log det Σ = Σ_k log λ_k over every channel.

    **Arguments:**
    - ``eigenvalues``: λ on the full H×W frequency grid in ``torch.fft.fftfreq``
      order (DC at index (0, 0)), shape ``(*lead, H, W)`` broadcastable to the
      event shape. Must be finite, > 0 and symmetric, λ[-k] = λ[k].
    - ``event_shape``: the event shape, e.g. ``(C, H, W)``; defaults to
      ``eigenvalues.shape``. Its last two dims must equal the spectrum's.
    """

    def __init__(self, eigenvalues, event_shape=None):
        lam = as_float_tensor(eigenvalues, "eigenvalues")
        check_float_dtype(lam.dtype, "the eigenvalues' dtype")
        if lam.ndim < 2:
            raise InputError(
                f"eigenvalues must have shape (..., H, W) on the full frequency grid, "
                f"got {tuple(lam.shape)}"
            )
        event_shape = tuple(lam.shape) if event_shape is None else as_event_shape(event_shape)
        if len(event_shape) < 2 or event_shape[-2:] != tuple(lam.shape[-2:]):
            raise InputError(
                f"event_shape {event_shape} must end with the spectrum's grid "
                f"{tuple(lam.shape[-2:])} (eigenvalues on the full H×W grid)"
            )
        pairs = zip(reversed(lam.shape), reversed(event_shape), strict=False)
        if lam.ndim > len(event_shape) or any(a not in (1, b) for a, b in pairs):
            raise InputError(
                f"eigenvalues of shape {tuple(lam.shape)} do not broadcast to "
                f"event_shape {event_shape}"
            )
        check_positive(lam, "eigenvalues", "eigenvalues")
        mirrored = mirror_frequencies(lam)
        tol = symmetry_tolerance(lam.dtype)
        if not torch.allclose(lam, mirrored, rtol=tol, atol=0.0):
            err = ((lam - mirrored).abs() / lam).max()
            raise InputError(
                "eigenvalues must be symmetric, λ[-k] = λ[k] (fftfreq order), so that the "
                f"covariance is real; max relative asymmetry {float(err):.3g} > {tol:.1e}"
            )
        self.event_shape = event_shape
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
    ) -> CovarianceOperator:
        """Noise shaped like the data: λ = the images' mean power spectrum.

        For one channel, ``FourierCovariance(P)`` with P from :func:`power_spectrum`.
        With C > 1 channels, Σ = Σ_c ⊗ F⁻¹ diag(P̄) F (a
        :class:`~sdekit.covariance.KroneckerCovariance`): P̄ the channels' mean spectrum
        and Σ_c the C × C colour covariance of the pixels (scaled to unit mean variance when
        ``normalize``), so both the spatial spectrum and the colour correlation of the data
        are kept while the operator stays FFT-cheap.

        **Arguments:** ``images`` ``(n, C, H, W)``, e.g. a training set in [-1, 1];
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
        power = power_spectrum(images, center=center)
        channels, h, w = power.shape
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
            return cls(spatial, (1, h, w))
        from .kronecker import KroneckerCovariance

        x = torch.as_tensor(images).to(torch.float64).movedim(1, -1).reshape(-1, channels)
        colour = torch.cov(x.T)
        if normalize:
            colour = colour / colour.diagonal().mean()
        return KroneckerCovariance(colour.to(dtype), cls(spatial, (1, h, w)))

    @property
    def grid(self) -> tuple[int, int]:
        """(H, W), the spatial grid."""
        return self.event_shape[-2], self.event_shape[-1]

    def _filter(self, x: Tensor, gain: Tensor) -> Tensor:
        spec = torch.fft.rfft2(x, norm="ortho")
        return torch.fft.irfft2(spec * gain, s=self.grid, norm="ortho")

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
        per_channel = self.eigenvalues.mean(dim=(-2, -1), keepdim=True)
        return per_channel.expand(self.event_shape)
