"""Tools for testing samplers and models: the analytic Gaussian oracle."""

from .gaussian_oracle import GaussianOracle

__all__ = ["GaussianOracle"]
