"""sdekit: score-based diffusion with non-isotropic Gaussian noise N(0, Σ)."""

from . import guidance, inverse
from .covariance import (
    CholeskyCovariance,
    CovarianceOperator,
    DiagonalCovariance,
    FourierCovariance,
    GFFCovariance,
    IdentityCovariance,
    KroneckerCovariance,
    MatrixFreeCovariance,
    OffsetNoiseCovariance,
    ScaledCovariance,
)
from .errors import InputError, InputTypeError
from .likelihood import bits_per_dim, log_likelihood
from .sampling import GaussianTeleport, available_samplers, optimize_grid, sample
from .sde import (
    NIVESDE,
    NIVPSDE,
    SDE,
    VESDE,
    VPSDE,
    AlignedLogSNR,
    NISubVPSDE,
    SubVPSDE,
    eps_from_score,
    eps_from_v,
    eps_from_x0,
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
    "MatrixFreeCovariance",
    "OffsetNoiseCovariance",
    "ScaledCovariance",
    "SDE",
    "NIVPSDE",
    "NIVESDE",
    "NISubVPSDE",
    "VPSDE",
    "VESDE",
    "SubVPSDE",
    "AlignedLogSNR",
    "eps_from_x0",
    "eps_from_v",
    "eps_from_score",
    "sample",
    "available_samplers",
    "optimize_grid",
    "GaussianTeleport",
    "log_likelihood",
    "bits_per_dim",
    "InputError",
    "InputTypeError",
    "guidance",
    "inverse",
]
