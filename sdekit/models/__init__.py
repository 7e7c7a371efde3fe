"""Networks: the DDPM U-Net (ε-prediction)."""

from .parameterization import CorrelatedNoiseModel
from .unet import UNet, timestep_embedding

__all__ = ["UNet", "timestep_embedding", "CorrelatedNoiseModel"]
