"""Time grids for samplers: decreasing times from T (or a later ``start``) to eps, and the
time variable λ of the exponential integrators.

**λ = log(α/σ), half the log-SNR** (DPM-Solver's convention), throughout
``sdekit.sampling``; the log-SNR itself, log(α²/σ²) = 2λ, is :meth:`SDE.log_snr` and
:attr:`Grid.log_snr`. :func:`half_log_snr` computes λ and :func:`t_of_half_log_snr`
inverts it.

Each grid is uniform in some function of t: t itself, λ(t), or the EDM noise level
σ̃ = σ_t/α_t = e^{−λ} raised to 1/ρ (Karras et al. 2022). ``start`` (default T) begins the
grid later, e.g. where a :class:`~sdekit.sampling.GaussianTeleport` hands over to the model.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import InputError
from ..sde import SDE

__all__ = [
    "GRIDS",
    "time_uniform",
    "time_quadratic",
    "logsnr_uniform",
    "karras",
    "transfer_grid",
    "half_log_snr",
    "t_of_half_log_snr",
]


def half_log_snr(alpha: Tensor, sigma: Tensor) -> Tensor:
    """λ = log(α/σ) = log α − log σ, half the log-SNR (the module docstring)."""
    return alpha.log() - sigma.log()


def t_of_half_log_snr(sde: SDE, lam) -> Tensor:
    """The time at which λ(t) = ``lam``: the inverse of :func:`half_log_snr` on ``sde``."""
    return sde.t_of_log_snr(2 * lam)


def _start(sde: SDE, start: float | None, eps: float) -> float:
    """The grid's first time: T, or ``start`` in (eps, T]."""
    if start is None:
        return sde.T
    start = float(start)
    if not (eps < start <= sde.T):
        raise InputError(f"start must lie in (eps={eps:g}, T={sde.T:g}], got {start:g}")
    return start


def time_uniform(sde: SDE, num: int, eps: float, start: float | None = None) -> Tensor:
    """t_i uniform from T (or ``start``) to eps."""
    return torch.linspace(_start(sde, start, eps), eps, num, dtype=torch.float64)


def logsnr_uniform(sde: SDE, num: int, eps: float, start: float | None = None) -> Tensor:
    """λ(t_i) (equivalently the log-SNR) uniform from λ(T) (or λ(start)) to λ(eps)
    (DPM-Solver's default)."""
    t0 = _start(sde, start, eps)
    lo, hi = sde.log_snr(torch.tensor([t0, eps], dtype=torch.float64))
    return _pin(sde.t_of_log_snr(torch.linspace(lo, hi, num, dtype=torch.float64)), t0, eps)


def time_quadratic(sde: SDE, num: int, eps: float, start: float | None = None) -> Tensor:
    """√t_i uniform from √T (or √start) to √eps (DPM-Solver's "time_quadratic" steps for VP
    models): small steps near the data, where the solution bends."""
    t0 = _start(sde, start, eps)
    return torch.linspace(t0**0.5, eps**0.5, num, dtype=torch.float64).square().clamp(eps, t0)


#: the largest σ̃ = σ/α that the Karras grid spreads its nodes from: beyond it the data's
#: share of x̃ = x/α is below 1/1000 of the noise's (unit-scale data), so one step from T
#: to it is the exact Gaussian map to that accuracy; steep schedules (σ̃_T ≫ 1000, e.g. VP
#: with β_max = 100) would otherwise spend every node at huge σ̃ and jump to the data in one
KARRAS_SIGMA_MAX = 1000.0


def karras(
    sde: SDE,
    num: int,
    eps: float,
    start: float | None = None,
    rho: float = 7.0,
    sigma_max: float = KARRAS_SIGMA_MAX,
) -> Tensor:
    """σ̃_i^(1/ρ) uniform, σ̃ = σ/α = e^{−λ} (EDM's schedule, ρ = 7), from
    min(σ̃(start), ``sigma_max``) to σ̃(eps). Where σ̃(start) exceeds ``sigma_max``, the
    first node stays at ``start`` and the other ``num − 1`` follow the schedule from
    ``sigma_max`` (:data:`KARRAS_SIGMA_MAX`)."""
    if not (math.isfinite(rho) and rho > 0):
        raise InputError(f"rho must be a finite number > 0, got {rho!r}")
    if not (math.isfinite(sigma_max) and sigma_max > 0):
        raise InputError(f"sigma_max must be a finite number > 0, got {sigma_max!r}")
    t0 = _start(sde, start, eps)
    ends = sde.marginal(torch.tensor([t0, eps], dtype=torch.float64))
    s_top, s_min = torch.exp(-half_log_snr(*ends))
    capped = bool(s_top > sigma_max) and num > 2 and float(s_min) < sigma_max
    s_max = torch.tensor(sigma_max, dtype=torch.float64) if capped else s_top
    ramp = torch.linspace(0, 1, num - 1 if capped else num, dtype=torch.float64)
    s = (s_max ** (1 / rho) + ramp * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** rho
    if capped:
        s = torch.cat([s_top.reshape(1), s])
    return _pin(t_of_half_log_snr(sde, -torch.log(s)), t0, eps)


def transfer_grid(times, source: SDE, target: SDE) -> Tensor:
    """The times at which ``target``'s log-SNR equals ``source``'s at ``times``.

    For VP SDEs the marginal at t, and so every step of every sampler here, depends on t
    only through the log-SNR log(α²/σ²): a grid moved with this function makes a sampler on
    ``target`` take exactly the steps it takes on ``source`` — e.g. DDPM's grid on a
    chain from :class:`sdekit.AlignedLogSNR` (whose ends are pinned to DDPM's).
    ``ValueError`` if a noise level lies outside ``target``'s range.
    """
    t = torch.as_tensor(times, dtype=torch.float64)
    log_snr = source.log_snr(t)
    lo, hi = target.log_snr(torch.tensor([target.T, 1e-300], dtype=torch.float64)).tolist()
    if bool((log_snr < lo - 1e-9).any() or (log_snr > hi + 1e-9).any()):
        raise InputError(
            f"the grid's log-SNRs {float(log_snr.min()):.3g} … {float(log_snr.max()):.3g} leave "
            f"the target's range {lo:.3g} … {hi:.3g}"
        )
    return target.t_of_log_snr(log_snr.clamp(lo, hi)).clamp(0.0, target.T)


def _pin(t: Tensor, T: float, eps: float) -> Tensor:
    """Set the end points exactly (the inverse map is exact only to rounding)."""
    t = t.clone()
    t[0] = T
    if t.numel() > 1:
        t[-1] = eps
    return t.clamp(eps, T)


GRIDS = {
    "time": time_uniform,
    "logsnr": logsnr_uniform,
    "karras": karras,
    "time_quadratic": time_quadratic,
}
