"""Tools for testing samplers and models: the analytic Gaussian oracle, its class-conditional
mixture (exact conditional and unconditional ε̂, the exact classifier) and the exact score
(no Monte-Carlo floor) of a deterministic sampler configuration, to the data law or to the
exact PF-ODE map's law."""

from ..sde.gaussian_oracle import GaussianOracle
from .gaussian_mixture import GaussianMixtureOracle
from .gaussian_posterior import (
    MEASUREMENT_KINDS,
    GaussianPosterior,
    posterior_kl,
    referee_measurements,
)
from .solver_score import (
    DEFAULT_SPECTRA,
    SolverScore,
    data_spectrum,
    fourier_gaussian_problem,
    population_kl,
    score_sampler,
)

__all__ = [
    "GaussianOracle",
    "GaussianMixtureOracle",
    "GaussianPosterior",
    "posterior_kl",
    "referee_measurements",
    "MEASUREMENT_KINDS",
    "DEFAULT_SPECTRA",
    "SolverScore",
    "data_spectrum",
    "fourier_gaussian_problem",
    "population_kl",
    "score_sampler",
]
