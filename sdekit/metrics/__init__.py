"""Sample metrics: Fréchet distance with streaming statistics, spectral statistics."""

from .frechet import FeatureStats, frechet_distance
from .spectrum import log_spectrum_distance, radial_power_spectrum

__all__ = ["radial_power_spectrum", "log_spectrum_distance", "frechet_distance", "FeatureStats"]
