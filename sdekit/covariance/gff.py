"""The Gaussian Free Field covariance of Voleti, Oberman & Pal (2022)."""

from __future__ import annotations

import math

import torch

from ..errors import InputError
from ._validation import as_event_shape, check_float_dtype
from .fourier import FourierCovariance, check_spatial_dims, squared_frequencies

__all__ = ["GFFCovariance", "gff_eigenvalues", "gff_spectrum"]


def gff_spectrum(
    grid,
    alpha: float = 1.0,
    dc_frequency: float = 1.0,
    normalize: bool = True,
    dtype: torch.dtype | None = None,
    device=None,
) -> torch.Tensor:
    """λ_k = |k|^(-2α) on the N-D grid of integer frequencies (``fftfreq(n, 1/n)`` per
    dim, |k|² = Σ_i k_i²), N = ``len(grid)``; shape ``grid``.

    The DC mode uses |k| = ``dc_frequency`` (default 1, the smallest non-zero
    frequency) so that Σ is positive definite. With ``normalize`` the spectrum is
    divided by its mean, which gives every pixel unit variance (the paper's σ_N
    is the square root of that mean: 0.14555 at 32×32).
    """
    check_float_dtype(dtype)
    dtype = dtype or torch.get_default_dtype()
    k2 = squared_frequencies(grid, dtype, device)
    k2[(0,) * k2.ndim] = dc_frequency**2
    lam = k2.pow(-alpha)
    return lam / lam.mean() if normalize else lam


def gff_eigenvalues(
    height: int,
    width: int,
    alpha: float = 1.0,
    dc_frequency: float = 1.0,
    normalize: bool = True,
    dtype: torch.dtype | None = None,
    device=None,
) -> torch.Tensor:
    """:func:`gff_spectrum` on the H×W grid of an image."""
    return gff_spectrum((height, width), alpha, dc_frequency, normalize, dtype, device)


def _check_representable(lam, grid, alpha, dc_frequency) -> None:
    """InputError naming ``alpha`` and ``dc_frequency`` (with the usable range) when
    |k|^(-2α) under- or overflows the spectrum's dtype on this grid."""
    if bool((torch.isfinite(lam) & (lam > 0)).all()):
        return
    budget = 0.5 * math.log(torch.finfo(lam.dtype).max)  # margin for the mean
    k2max = sum((n // 2) ** 2 for n in grid)
    spread = max(math.log(max(k2max, 1)), abs(2 * math.log(dc_frequency)), 1e-12)
    lo, hi = sorted(
        (math.exp(-budget / (2 * alpha)), math.exp(budget / (2 * alpha))) if alpha else (0, 0)
    )
    raise InputError(
        f"alpha={alpha} with dc_frequency={dc_frequency} on a {'×'.join(map(str, grid))} grid "
        "gives eigenvalues "
        f"|k|^(-2 alpha) that {lam.dtype} cannot hold (0, inf or NaN): the usable range "
        f"here is about |alpha| <= {budget / spread:.3g} at this dc_frequency, and "
        f"dc_frequency in [{lo:.3g}, {hi:.3g}] at this alpha (or use dtype=torch.float64)"
    )


class GFFCovariance(FourierCovariance):
    """Gaussian Free Field noise: a :class:`FourierCovariance` with λ_k ∝ |k|^(-2α).

    α = 1 gives the GFF of the paper (Fourier amplitude 1/|k|; the paper's images are 2-D).
    The spectrum is shared by all channels; channels are independent. Over N spatial dims
    (``spatial_dims``) |k| is the N-D frequency's length (:func:`gff_spectrum`).

    **Arguments:**
    - ``event_shape``: ``(..., H, W)``, e.g. ``(3, 32, 32)``; ``(..., L)`` or
      ``(..., D, H, W)`` with ``spatial_dims`` 1 or 3.
    - ``alpha``: the spectral exponent, of either sign: α > 0 weights low frequencies (1 the
      paper's GFF, ½ pink noise, power ∝ 1/|k|), 0 is white noise, α < 0 weights high
      frequencies (−½ blue noise, power ∝ |k|).
    - ``dc_frequency``: the |k| used for the DC mode (> 0). A zero DC would make
      Σ singular (no score, no likelihood, no change of mean colour).
    - ``normalize``: divide λ by its mean so every pixel has unit variance.
    - ``dtype`` / ``device``: where the spectrum lives.
    - ``spatial_dims``: 1, 2 (the default) or 3 trailing dims that the field lives on.
    """

    def __init__(
        self,
        event_shape,
        alpha: float = 1.0,
        dc_frequency: float = 1.0,
        normalize: bool = True,
        dtype: torch.dtype | None = None,
        device=None,
        *,
        spatial_dims: int = 2,
    ):
        event_shape = as_event_shape(event_shape)
        k = check_spatial_dims(spatial_dims, event_shape)
        if not (isinstance(alpha, (int, float)) and not isinstance(alpha, bool)
                and math.isfinite(alpha)):  # fmt: skip
            raise InputError(f"alpha must be a finite real number, got {alpha!r}")
        if not (
            isinstance(dc_frequency, (int, float))
            and math.isfinite(dc_frequency)
            and dc_frequency > 0
        ):
            raise InputError(
                f"dc_frequency must be > 0 (a zero DC makes Σ singular), got {dc_frequency!r}"
            )
        lam = gff_spectrum(event_shape[-k:], alpha, dc_frequency, normalize, dtype, device)
        _check_representable(lam, event_shape[-k:], alpha, dc_frequency)
        super().__init__(lam, event_shape, spatial_dims=k)
        self.alpha = float(alpha)
        self.dc_frequency = float(dc_frequency)
        self.normalize = bool(normalize)

    def __repr__(self) -> str:
        return (
            f"GFFCovariance(event_shape={self.event_shape}, alpha={self.alpha}, "
            f"dc_frequency={self.dc_frequency}, normalize={self.normalize}"
            + (f", spatial_dims={self.spatial_dims})" if self.spatial_dims != 2 else ")")
        )
