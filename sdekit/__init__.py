"""sdekit: score-based diffusion with non-isotropic Gaussian noise N(0, Σ)."""

from .covariance import (
    CholeskyCovariance,
    CovarianceOperator,
    DiagonalCovariance,
    FourierCovariance,
    GFFCovariance,
    IdentityCovariance,
    KroneckerCovariance,
)

__version__ = "0.1.0"

__all__ = [
    "CovarianceOperator",
    "IdentityCovariance",
    "DiagonalCovariance",
    "FourierCovariance",
    "GFFCovariance",
    "CholeskyCovariance",
    "KroneckerCovariance",
]
