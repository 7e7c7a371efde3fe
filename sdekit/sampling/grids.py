"""Time grids for samplers: decreasing times from T (or a later ``start``) to eps.

Each grid is uniform in some function of t: t itself, the log-SNR λ(t), or the
EDM noise level σ̃ = σ_t/α_t = exp(-λ/2) raised to 1/ρ (Karras et al. 2022). ``start``
(default T) begins the grid later, e.g. where a :class:`~sdekit.sampling.GaussianTeleport`
hands over to the model.
"""

from __future__ import annotations

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
]


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
    """λ(t_i) uniform from λ(T) (or λ(start)) to λ(eps) (DPM-Solver's default)."""
    t0 = _start(sde, start, eps)
    lo, hi = sde.log_snr(torch.tensor([t0, eps], dtype=torch.float64))
    return _pin(sde.t_of_log_snr(torch.linspace(lo, hi, num, dtype=torch.float64)), t0, eps)


def time_quadratic(sde: SDE, num: int, eps: float, start: float | None = None) -> Tensor:
    """√t_i uniform from √T (or √start) to √eps (DPM-Solver's "time_quadratic" steps for VP
    models): small steps near the data, where the solution bends."""
    t0 = _start(sde, start, eps)
    return torch.linspace(t0**0.5, eps**0.5, num, dtype=torch.float64).square().clamp(eps, t0)


def karras(sde: SDE, num: int, eps: float, start: float | None = None, rho: float = 7.0) -> Tensor:
    """σ̃_i^(1/ρ) uniform, σ̃ = exp(-λ/2) (EDM's schedule, ρ = 7)."""
    t0 = _start(sde, start, eps)
    lam = sde.log_snr(torch.tensor([t0, eps], dtype=torch.float64))
    s_max, s_min = torch.exp(-0.5 * lam)
    ramp = torch.linspace(0, 1, num, dtype=torch.float64)
    s = (s_max ** (1 / rho) + ramp * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** rho
    return _pin(sde.t_of_log_snr(-2 * torch.log(s)), t0, eps)


def transfer_grid(times, source: SDE, target: SDE) -> Tensor:
    """The times at which ``target``'s log-SNR equals ``source``'s at ``times``.

    For VP SDEs the marginal at t, and so every step of every sampler here, depends on t
    only through λ(t) = log(α²/σ²): a grid moved with this function makes a sampler on
    ``target`` take exactly the steps it takes on ``source`` — e.g. DDPM's grid on a
    chain from :class:`sdekit.AlignedLogSNR` (whose ends are pinned to DDPM's).
    ``ValueError`` if a noise level lies outside ``target``'s range.
    """
    t = torch.as_tensor(times, dtype=torch.float64)
    lam = source.log_snr(t)
    lo, hi = target.log_snr(torch.tensor([target.T, 1e-300], dtype=torch.float64)).tolist()
    if bool((lam < lo - 1e-9).any() or (lam > hi + 1e-9).any()):
        raise InputError(
            f"the grid's log-SNRs {float(lam.min()):.3g} … {float(lam.max()):.3g} leave the "
            f"target's range {lo:.3g} … {hi:.3g}"
        )
    return target.t_of_log_snr(lam.clamp(lo, hi)).clamp(0.0, target.T)


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
