"""Sample metrics: Fréchet distance with streaming statistics, spectral statistics."""

from .calibration import denoising_error_spectrum, noise_prediction_calibration
from .frechet import FeatureStats, frechet_distance, frechet_distance_bootstrap
from .precision_recall import knn_radii, precision_recall
from .spectrum import log_spectrum_distance, radial_power_spectrum

__all__ = [
    "radial_power_spectrum",
    "log_spectrum_distance",
    "frechet_distance",
    "frechet_distance_bootstrap",
    "FeatureStats",
    "precision_recall",
    "knn_radii",
    "noise_prediction_calibration",
    "denoising_error_spectrum",
]
