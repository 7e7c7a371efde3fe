"""Radially averaged power spectra: how a sample set distributes energy over spatial
frequency — the property non-isotropic (GFF) noise changes."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["radial_power_spectrum", "log_spectrum_distance", "ring_mean"]


def ring_mean(values: Tensor) -> tuple[Tensor, Tensor]:
    """Mean of ``values`` (…, H, W), given on the ``fftfreq`` grid, over its leading dims
    and each ring of integer radius |k| (rounded). Returns (radii, means) for the radii
    present on the grid (float64)."""
    h, w = values.shape[-2:]
    flat = values.to(torch.float64).reshape(-1, h, w).mean(0).flatten()
    ky = torch.fft.fftfreq(h, 1 / h, dtype=torch.float64)
    kx = torch.fft.fftfreq(w, 1 / w, dtype=torch.float64)
    radius = (ky[:, None].square() + kx[None, :].square()).sqrt().round().long().flatten()
    radius = radius.to(flat.device)
    total = torch.zeros(int(radius.max()) + 1, dtype=torch.float64, device=flat.device)
    total.index_add_(0, radius, flat)
    count = torch.zeros_like(total).index_add_(0, radius, torch.ones_like(flat))
    keep = count > 0
    return torch.arange(len(total), device=flat.device)[keep], total[keep] / count[keep]


def radial_power_spectrum(x: Tensor) -> tuple[Tensor, Tensor]:
    """Mean |F x|² per integer radius |k| (orthonormal DFT), averaged over samples and
    channels. Returns (radii, power) for the radii present on the grid."""
    return ring_mean(torch.fft.fft2(x.double(), norm="ortho").abs().square())


def log_spectrum_distance(samples: Tensor, reference: Tensor) -> float:
    """Root-mean-square difference of the log radial power spectra (natural log; 0 when
    the two sets distribute energy over frequencies alike)."""
    _, p = radial_power_spectrum(samples)
    _, q = radial_power_spectrum(reference)
    return float((p.log() - q.log()).square().mean().sqrt())
