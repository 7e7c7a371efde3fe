"""Networks (the DDPM U-Net) and what they predict (:mod:`.parameterization`)."""

from .parameterization import (
    PARAMETERIZATIONS,
    CorrelatedEpsilonParameterization,
    CorrelatedNoiseModel,
    DataParameterization,
    EDMParameterization,
    EpsilonParameterization,
    GaussianResidualParameterization,
    Parameterization,
    ParameterizedModel,
    VelocityParameterization,
    gaussian_residual,
    gaussian_residual_from_data,
    make_parameterization,
    whitened_data_std,
)
from .unet import UNet, timestep_embedding

__all__ = [
    "UNet",
    "timestep_embedding",
    "CorrelatedNoiseModel",
    "Parameterization",
    "EpsilonParameterization",
    "CorrelatedEpsilonParameterization",
    "DataParameterization",
    "VelocityParameterization",
    "EDMParameterization",
    "GaussianResidualParameterization",
    "gaussian_residual",
    "gaussian_residual_from_data",
    "PARAMETERIZATIONS",
    "make_parameterization",
    "ParameterizedModel",
    "whitened_data_std",
]
