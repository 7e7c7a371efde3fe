"""Gaussian noise covariances Σ = L Lᵀ: the operators every SDE and sampler uses."""

from .base import CovarianceOperator
from .cholesky import CholeskyCovariance
from .diagonal import DiagonalCovariance
from .fourier import (
    SPATIAL_DIMS,
    FourierCovariance,
    fourier_filter,
    fourier_transform,
    mirror_frequencies,
    power_spectrum,
    shared_spatial_dims,
)
from .gff import GFFCovariance, gff_eigenvalues, gff_spectrum
from .identity import IdentityCovariance
from .kronecker import KroneckerCovariance
from .matrix_free import MatrixFreeCovariance
from .offset import OffsetNoiseCovariance
from .registry import COVARIANCES, NOISE_NAMES, make_covariance, register_covariance
from .scaled import ScaledCovariance
from .statistics import DENSE_LIMIT, GaussianStatistics

__all__ = [
    "CovarianceOperator",
    "IdentityCovariance",
    "DiagonalCovariance",
    "FourierCovariance",
    "GFFCovariance",
    "CholeskyCovariance",
    "KroneckerCovariance",
    "MatrixFreeCovariance",
    "OffsetNoiseCovariance",
    "ScaledCovariance",
    "gff_eigenvalues",
    "gff_spectrum",
    "SPATIAL_DIMS",
    "fourier_transform",
    "fourier_filter",
    "shared_spatial_dims",
    "mirror_frequencies",
    "power_spectrum",
    "make_covariance",
    "NOISE_NAMES",
    "COVARIANCES",
    "register_covariance",
    "GaussianStatistics",
    "DENSE_LIMIT",
]
