"""Fréchet distance between Gaussians, and streaming feature statistics."""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import InputError

__all__ = ["frechet_distance", "frechet_distance_bootstrap", "FeatureStats"]


def _sym_sqrt(c: Tensor) -> Tensor:
    w, v = torch.linalg.eigh(0.5 * (c + c.mT))
    return (v * w.clamp_min(0).sqrt()) @ v.mT


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    """‖μ₁ − μ₂‖² + tr C₁ + tr C₂ − 2 tr (C₁^{1/2} C₂ C₁^{1/2})^{1/2}, in float64.

    Stable for singular or near-singular covariances: both square roots are taken of
    symmetric positive semi-definite matrices by eigendecomposition with eigenvalues
    clamped at 0 (no complex parts, unlike ``scipy.linalg.sqrtm(C₁ C₂)``).
    """
    mu1, mu2 = (torch.as_tensor(m, dtype=torch.float64) for m in (mu1, mu2))
    c1, c2 = (torch.as_tensor(c, dtype=torch.float64) for c in (cov1, cov2))
    if mu1.shape != mu2.shape or mu1.ndim != 1:
        raise InputError(
            f"means must be 1-D of equal length, got {tuple(mu1.shape)}, {tuple(mu2.shape)}"
        )
    d = mu1.shape[0]
    for name, c in (("cov1", c1), ("cov2", c2)):
        if c.shape != (d, d):
            raise InputError(f"{name} must have shape ({d}, {d}), got {tuple(c.shape)}")
    return float(_frechet(mu1, c1, _sym_sqrt(c1), mu2, c2))


def _frechet(mu1: Tensor, c1: Tensor, s1: Tensor, mu2: Tensor, c2: Tensor) -> Tensor:
    """The Fréchet distance given ``s1 = C₁^{1/2}`` (reused across bootstrap replicates)."""
    m = s1 @ c2 @ s1
    inner = torch.linalg.eigvalsh(0.5 * (m + m.mT))
    fd = (mu1 - mu2).square().sum() + c1.trace() + c2.trace() - 2 * inner.clamp_min(0).sqrt().sum()
    return fd.clamp_min(0)


def frechet_distance_bootstrap(
    features: Tensor,
    reference: FeatureStats,
    n_boot: int = 200,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Fréchet distances of ``n_boot`` bootstrap resamples of ``features`` against fixed
    ``reference`` statistics, as a float64 tensor of shape ``(n_boot,)``.

    Resampling the n generated feature vectors with replacement and recomputing
    FD(μ*, C*; μ_ref, C_ref) estimates the sampling spread of the FID of n samples:
    its standard deviation is the "± one standard error" of an FID, and differences of two
    FIDs larger than twice the combined spread are not sample noise. (The replicates are
    biased upwards like any small-sample FID, so use their spread, not their mean.) The
    reference (typically 10 000 test images) is held fixed.
    """
    f = torch.as_tensor(features).detach().to("cpu", torch.float64)
    if f.ndim != 2 or f.shape[1] != reference.dim:
        raise InputError(f"features must have shape (n, {reference.dim}), got {tuple(f.shape)}")
    if f.shape[0] < 2:
        raise InputError(f"need at least 2 feature vectors, got {f.shape[0]}")
    if n_boot < 2:
        raise InputError(f"n_boot must be >= 2, got {n_boot}")
    c_ref = reference.covariance
    s_ref = _sym_sqrt(c_ref)
    out = torch.empty(n_boot, dtype=torch.float64)
    for b in range(n_boot):
        fb = f[torch.randint(f.shape[0], (f.shape[0],), generator=generator)]
        out[b] = _frechet(reference.mean, c_ref, s_ref, fb.mean(0), torch.cov(fb.T))
    return out


class FeatureStats:
    """Streaming mean and covariance of feature vectors, accumulated in float64.

    ``update(features)`` with ``(n, d)`` batches; ``mean``, ``covariance`` (unbiased)
    and ``frechet_distance(other)``. Uses shifted sums (shift = the first batch's mean)
    so that large offsets do not cancel catastrophically.
    """

    def __init__(self, dim: int):
        self.dim, self.n = dim, 0
        self._shift = None
        self._sum = torch.zeros(dim, dtype=torch.float64)
        self._outer = torch.zeros(dim, dim, dtype=torch.float64)

    def update(self, features: Tensor) -> None:
        f = torch.as_tensor(features).detach().to("cpu", torch.float64)
        if f.ndim != 2 or f.shape[1] != self.dim:
            raise InputError(f"features must have shape (n, {self.dim}), got {tuple(f.shape)}")
        if self._shift is None:
            self._shift = f.mean(0)
        g = f - self._shift
        self._sum += g.sum(0)
        self._outer += g.T @ g
        self.n += f.shape[0]

    @property
    def mean(self) -> Tensor:
        return self._shift + self._sum / self.n

    @property
    def covariance(self) -> Tensor:
        if self.n < 2:
            raise InputError("need at least 2 feature vectors for a covariance")
        m = self._sum / self.n
        return (self._outer - self.n * torch.outer(m, m)) / (self.n - 1)

    def frechet_distance(self, other: FeatureStats) -> float:
        return frechet_distance(self.mean, self.covariance, other.mean, other.covariance)
