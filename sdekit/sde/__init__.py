"""Forward SDEs with covariance-shaped noise, their reverse processes and discrete chains."""

from .aligned import (
    AlignedLogSNR,
    chain_log_snr,
    crossing_log_snrs,
    fourier_eigenvalues,
    snr_crossing_times,
)
from .base import SDE, DiscreteChain, ReverseProcess, as_time, batch_time, expand_to
from .gaussian_oracle import GaussianOracle
from .parameterization import eps_from_score, eps_from_v, eps_from_x0
from .schedules import CosineSchedule, DiscreteSchedule, LinearSchedule, VPSchedule
from .ve import NIVESDE, VESDE
from .vp import NIVPSDE, VPSDE, NISubVPSDE, SubVPSDE

__all__ = [
    "SDE",
    "NIVPSDE",
    "NIVESDE",
    "NISubVPSDE",
    "VPSDE",
    "VESDE",
    "SubVPSDE",
    "ReverseProcess",
    "DiscreteChain",
    "VPSchedule",
    "LinearSchedule",
    "CosineSchedule",
    "DiscreteSchedule",
    "eps_from_x0",
    "eps_from_v",
    "eps_from_score",
    "as_time",
    "batch_time",
    "expand_to",
    "AlignedLogSNR",
    "chain_log_snr",
    "crossing_log_snrs",
    "fourier_eigenvalues",
    "snr_crossing_times",
    "GaussianOracle",
]
