"""Radially averaged power spectra: how a sample set distributes energy over spatial
frequency — the property non-isotropic (GFF) noise changes."""

from __future__ import annotations

import torch
from torch import Tensor

from ..covariance.fourier import check_spatial_dims, fourier_transform, squared_frequencies

__all__ = ["radial_power_spectrum", "log_spectrum_distance", "ring_mean"]


def ring_mean(values: Tensor, spatial_dims: int = 2) -> tuple[Tensor, Tensor]:
    """Mean of ``values`` (…, *grid), given on the ``fftfreq`` grid of the last
    ``spatial_dims`` dims ((…, H, W) by default), over its leading dims and each ring (shell)
    of integer radius |k| (rounded). Returns (radii, means) for the radii present on the
    grid (float64)."""
    k = check_spatial_dims(spatial_dims, values.shape, "values' shape")
    grid = tuple(values.shape[-k:])
    flat = values.to(torch.float64).reshape(-1, *grid).mean(0).flatten()
    radius = squared_frequencies(grid).sqrt().round().long().flatten().to(flat.device)
    total = torch.zeros(int(radius.max()) + 1, dtype=torch.float64, device=flat.device)
    total.index_add_(0, radius, flat)
    count = torch.zeros_like(total).index_add_(0, radius, torch.ones_like(flat))
    keep = count > 0
    return torch.arange(len(total), device=flat.device)[keep], total[keep] / count[keep]


def radial_power_spectrum(x: Tensor, spatial_dims: int = 2) -> tuple[Tensor, Tensor]:
    """Mean |F x|² per integer radius |k| (orthonormal DFT over the last ``spatial_dims``
    dims), averaged over samples and channels. Returns (radii, power) for the radii present
    on the grid."""
    power = fourier_transform(x.double(), spatial_dims).abs().square()
    return ring_mean(power, spatial_dims)


def log_spectrum_distance(samples: Tensor, reference: Tensor, spatial_dims: int = 2) -> float:
    """Root-mean-square difference of the log radial power spectra (natural log; 0 when
    the two sets distribute energy over frequencies alike)."""
    _, p = radial_power_spectrum(samples, spatial_dims)
    _, q = radial_power_spectrum(reference, spatial_dims)
    return float((p.log() - q.log()).square().mean().sqrt())
