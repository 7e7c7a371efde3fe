"""Variance-exploding (VE) SDE with covariance-shaped noise (SMLD in the limit)."""

from __future__ import annotations

import math

import torch

from ..covariance import CovarianceOperator, IdentityCovariance
from ..errors import InputError
from .base import SDE, as_time

__all__ = ["NIVESDE", "VESDE"]


class NIVESDE(SDE):
    """VE SDE: α_t = 1, σ_t = σ_min (σ_max/σ_min)^t; dx = g(t) L dW,
    g(t) = σ_t sqrt(2 log(σ_max/σ_min)).

    The prior is N(0, σ_max² Σ); the discrete chain is SMLD's geometric grid of
    ``num_steps`` noise levels from σ_min to σ_max.
    """

    default_eps = 1e-5

    def __init__(
        self,
        covariance: CovarianceOperator,
        sigma_min: float = 0.01,
        sigma_max: float = 50.0,
        T: float = 1.0,
    ):
        if not (0 < sigma_min < sigma_max < math.inf):
            raise InputError(
                "need 0 < sigma_min < sigma_max, both finite, got "
                f"sigma_min={sigma_min}, sigma_max={sigma_max}"
            )
        super().__init__(covariance, T)
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)
        self._log_ratio = math.log(self.sigma_max / self.sigma_min)

    def _marginal(self, t):
        sigma = self.sigma_min * torch.exp(t / self.T * self._log_ratio)
        return torch.ones_like(sigma), sigma

    def _drift_coef(self, t):
        return torch.zeros_like(t)

    def _diffusion(self, t):
        return self._marginal(t)[1] * math.sqrt(2 * self._log_ratio / self.T)

    def t_of_log_snr(self, log_snr):
        return (-0.5 * as_time(log_snr) - math.log(self.sigma_min)) / self._log_ratio * self.T

    def _chain_times(self, num_steps: int):
        return torch.linspace(0, self.T, num_steps, dtype=torch.float64)


def VESDE(event_shape, **kwargs) -> NIVESDE:
    """Isotropic VE SDE: :class:`NIVESDE` with ``IdentityCovariance(event_shape)``."""
    return NIVESDE(IdentityCovariance(event_shape), **kwargs)
