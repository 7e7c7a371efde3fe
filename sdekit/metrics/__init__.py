"""Sample metrics (spectral statistics; Fréchet distance etc. to follow)."""

from .spectrum import log_spectrum_distance, radial_power_spectrum

__all__ = ["radial_power_spectrum", "log_spectrum_distance"]
