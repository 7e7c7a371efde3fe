"""Shared problems for the sampler tests: Gaussian data under VP / VE / sub-VP with
Identity, GFF and Cholesky noise, solved exactly by the oracle."""

from __future__ import annotations

import torch
from conftest import F64, random_spd

from sdekit import (
    NIVESDE,
    NIVPSDE,
    CholeskyCovariance,
    GFFCovariance,
    IdentityCovariance,
    NISubVPSDE,
)
from sdekit.testing import GaussianOracle

SHAPE = (1, 6, 6)
D = 36


def noise(kind: str):
    if kind == "identity":
        return IdentityCovariance(SHAPE)
    if kind == "gff":
        return GFFCovariance(SHAPE, dtype=F64)
    if kind == "cholesky":
        return CholeskyCovariance(random_spd(D, 11, cond=20.0), SHAPE)
    raise KeyError(kind)


def make_sde(kind: str, cov):
    if kind == "vp":
        return NIVPSDE(cov)
    if kind == "subvp":
        return NISubVPSDE(cov)
    if kind == "ve":
        return NIVESDE(cov, sigma_min=0.01, sigma_max=20.0)
    raise KeyError(kind)


def problem(sde_kind: str, noise_kind: str) -> GaussianOracle:
    """Data with a natural-image-like spectrum (GFF, α = 1.5) around a non-zero mean."""
    sde = make_sde(sde_kind, noise(noise_kind))
    mean = 0.3 * torch.cos(torch.arange(D, dtype=F64) / 5).reshape(SHAPE)
    data = GFFCovariance(SHAPE, alpha=1.5, dtype=F64)
    if noise_kind == "cholesky":
        data = random_spd(D, 12, cond=50.0)
    return GaussianOracle(sde, mean, data)


SDE_KINDS = ["vp", "subvp", "ve"]
NOISE_KINDS = ["identity", "gff", "cholesky"]
