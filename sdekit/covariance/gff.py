"""The Gaussian Free Field covariance of Voleti, Oberman & Pal (2022)."""

from __future__ import annotations

import torch

from ..errors import InputError
from ._validation import as_event_shape
from .fourier import FourierCovariance

__all__ = ["GFFCovariance", "gff_eigenvalues"]


def gff_eigenvalues(
    height: int,
    width: int,
    alpha: float = 1.0,
    dc_frequency: float = 1.0,
    normalize: bool = True,
    dtype: torch.dtype | None = None,
    device=None,
) -> torch.Tensor:
    """λ_k = |k|^(-2α) on the H×W grid of integer frequencies (``fftfreq(n, 1/n)``).

    The DC mode uses |k| = ``dc_frequency`` (default 1, the smallest non-zero
    frequency) so that Σ is positive definite. With ``normalize`` the spectrum is
    divided by its mean, which gives every pixel unit variance (the paper's σ_N
    is the square root of that mean: 0.14555 at 32×32).
    """
    dtype = dtype or torch.get_default_dtype()
    ky = torch.fft.fftfreq(height, 1.0 / height, dtype=dtype, device=device)
    kx = torch.fft.fftfreq(width, 1.0 / width, dtype=dtype, device=device)
    k2 = ky[:, None].square() + kx[None, :].square()
    k2[0, 0] = dc_frequency**2
    lam = k2.pow(-alpha)
    return lam / lam.mean() if normalize else lam


class GFFCovariance(FourierCovariance):
    """Gaussian Free Field noise: a :class:`FourierCovariance` with λ_k ∝ |k|^(-2α).

    α = 1 gives the GFF of the paper (Fourier amplitude 1/|k|). The spectrum is
    shared by all channels; channels are independent.

    **Arguments:**
    - ``event_shape``: ``(..., H, W)``, e.g. ``(3, 32, 32)``.
    - ``alpha``: the spectral exponent (≥ 0; 0 gives white noise).
    - ``dc_frequency``: the |k| used for the DC mode (> 0). A zero DC would make
      Σ singular (no score, no likelihood, no change of mean colour).
    - ``normalize``: divide λ by its mean so every pixel has unit variance.
    - ``dtype`` / ``device``: where the spectrum lives.
    """

    def __init__(
        self,
        event_shape,
        alpha: float = 1.0,
        dc_frequency: float = 1.0,
        normalize: bool = True,
        dtype: torch.dtype | None = None,
        device=None,
    ):
        event_shape = as_event_shape(event_shape)
        if len(event_shape) < 2:
            raise InputError(f"event_shape must be (..., H, W), got {event_shape}")
        if not (isinstance(alpha, (int, float)) and alpha >= 0):
            raise InputError(f"alpha must be a real number >= 0, got {alpha!r}")
        if not (isinstance(dc_frequency, (int, float)) and dc_frequency > 0):
            raise InputError(
                f"dc_frequency must be > 0 (a zero DC makes Σ singular), got {dc_frequency!r}"
            )
        lam = gff_eigenvalues(*event_shape[-2:], alpha, dc_frequency, normalize, dtype, device)
        super().__init__(lam, event_shape)
        self.alpha = float(alpha)
        self.dc_frequency = float(dc_frequency)
        self.normalize = bool(normalize)

    def __repr__(self) -> str:
        return (
            f"GFFCovariance(event_shape={self.event_shape}, alpha={self.alpha}, "
            f"dc_frequency={self.dc_frequency}, normalize={self.normalize})"
        )
