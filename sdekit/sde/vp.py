"""Variance-preserving (VP) and sub-VP SDEs with covariance-shaped noise."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..covariance import CovarianceOperator, IdentityCovariance
from ..errors import InputError
from .base import SDE, as_time
from .schedules import CosineSchedule, DiscreteSchedule, LinearSchedule, VPSchedule

__all__ = ["NIVPSDE", "NISubVPSDE", "VPSDE", "SubVPSDE"]


def _make_schedule(schedule, beta_min, beta_max) -> VPSchedule:
    if isinstance(schedule, VPSchedule):
        return schedule
    if schedule == "linear":
        return LinearSchedule(beta_min, beta_max)
    if schedule == "cosine":
        return CosineSchedule()
    raise InputError(
        f"schedule must be 'linear', 'cosine' or a VPSchedule instance, got {schedule!r}"
    )


class _VPFamily(SDE):
    """Shared by VP and sub-VP: α_t from a :class:`VPSchedule`, f = d log α/dt."""

    default_eps = 1e-3

    def __init__(
        self,
        covariance: CovarianceOperator,
        beta_min: float = 0.1,
        beta_max: float = 20.0,
        schedule: str | VPSchedule = "linear",
        T: float | None = None,
    ):
        self.schedule = _make_schedule(schedule, beta_min, beta_max)
        T = self.schedule.t_max if T is None else T
        if T > self.schedule.t_max + 1e-12:
            raise InputError(f"T must be <= {self.schedule.t_max} for {self.schedule!r}, got {T}")
        super().__init__(covariance, T)

    @classmethod
    def from_betas(cls, covariance: CovarianceOperator, betas) -> _VPFamily:
        """The SDE whose marginals at t_i = i/N equal DDPM's chain ᾱ_i = Π_{j≤i}(1 - β_j)."""
        return cls(covariance, schedule=DiscreteSchedule(betas), T=1.0)

    def _log_alpha(self, t) -> Tensor:
        return self.schedule.log_alpha(t)

    def _drift_coef(self, t) -> Tensor:
        return self.schedule.d_log_alpha(t)

    def _chain_times(self, num_steps: int) -> Tensor:
        return torch.arange(1, num_steps + 1, dtype=torch.float64) * (self.T / num_steps)


class NIVPSDE(_VPFamily):
    """VP SDE: α_t = exp(∫ f), σ_t² = 1 - α_t²; dx = -½β(t) x dt + √β(t) L dW.

    **Arguments:**
    - ``covariance``: the noise covariance Σ (e.g. ``GFFCovariance((3, 32, 32))``).
    - ``beta_min``, ``beta_max``: the linear schedule β(t) = β_min + t(β_max - β_min).
    - ``schedule``: ``"linear"``, ``"cosine"`` or a :class:`VPSchedule`.
    - ``T``: the horizon (default 1, or 0.9946 for the cosine schedule).

    ``NIVPSDE.from_betas(covariance, betas)`` embeds DDPM's discrete chain exactly.
    """

    def _marginal(self, t):
        la = self._log_alpha(t)
        return la.exp(), torch.sqrt(-torch.expm1(2 * la))

    def _diffusion(self, t):
        return torch.sqrt(-2 * self._drift_coef(t))

    def t_of_log_snr(self, log_snr):
        # α² = sigmoid(λ)
        return self.schedule.t_of_log_alpha(0.5 * F.logsigmoid(as_time(log_snr)))


class NISubVPSDE(_VPFamily):
    """sub-VP SDE (Song et al. 2021): α_t as VP, σ_t = 1 - α_t²; g² = β(t)(1 - α_t⁴).

    Same arguments as :class:`NIVPSDE`.
    """

    def _marginal(self, t):
        la = self._log_alpha(t)
        return la.exp(), -torch.expm1(2 * la)

    def _diffusion(self, t):
        la = self._log_alpha(t)
        return torch.sqrt(-2 * self._drift_coef(t) * -torch.expm1(4 * la))

    def t_of_log_snr(self, log_snr):
        # α²/(1-α²)² = e^λ  →  α² = 2e^λ / (2e^λ + 1 + sqrt(4e^λ + 1))  (the root below 1)
        e = torch.exp(as_time(log_snr))
        a = 2 * e / (2 * e + 1 + torch.sqrt(4 * e + 1))
        return self.schedule.t_of_log_alpha(0.5 * torch.log(a))


def VPSDE(event_shape, **kwargs) -> NIVPSDE:
    """Isotropic VP SDE: :class:`NIVPSDE` with ``IdentityCovariance(event_shape)``."""
    return NIVPSDE(IdentityCovariance(event_shape), **kwargs)


def SubVPSDE(event_shape, **kwargs) -> NISubVPSDE:
    """Isotropic sub-VP SDE: :class:`NISubVPSDE` with ``IdentityCovariance(event_shape)``."""
    return NISubVPSDE(IdentityCovariance(event_shape), **kwargs)
