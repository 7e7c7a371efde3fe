"""Noise schedules of the variance-preserving family: log α(t) and its inverse.

A VP schedule is a decreasing log α(t) with α(0) = 1; then σ² = 1 - α² (VP) or
σ = 1 - α² (sub-VP), the drift coefficient is f(t) = d log α / dt and the
"instantaneous β" is β(t) = -2 f(t).
"""

from __future__ import annotations

import abc
import math

import torch
from torch import Tensor

from ..errors import InputError

__all__ = ["VPSchedule", "LinearSchedule", "CosineSchedule", "DiscreteSchedule"]


class VPSchedule(abc.ABC):
    """log α(t) on [0, T] with α(0) = 1, strictly decreasing."""

    #: the largest time at which the schedule is usable (α > 0)
    t_max: float = 1.0

    @abc.abstractmethod
    def log_alpha(self, t: Tensor) -> Tensor:
        """log α(t)."""

    @abc.abstractmethod
    def d_log_alpha(self, t: Tensor) -> Tensor:
        """f(t) = d log α / dt (≤ 0)."""

    @abc.abstractmethod
    def t_of_log_alpha(self, log_alpha: Tensor) -> Tensor:
        """The inverse of :meth:`log_alpha`."""


class LinearSchedule(VPSchedule):
    """β(t) = β_min + t (β_max - β_min): log α(t) = -¼ t² (β_max - β_min) - ½ t β_min.

    The continuous limit of DDPM's β = linspace(1e-4, 0.02, 1000) with
    β_min = 0.1, β_max = 20 (Song et al. 2021).
    """

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0):
        if not (0 <= beta_min < beta_max < math.inf):
            raise InputError(
                "need 0 <= beta_min < beta_max, both finite, got "
                f"beta_min={beta_min}, beta_max={beta_max}"
            )
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)

    def log_alpha(self, t):
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def d_log_alpha(self, t):
        return -0.5 * (self.beta_min + t * (self.beta_max - self.beta_min))

    def t_of_log_alpha(self, log_alpha):
        # solve ¼ Δβ t² + ½ β_min t + log α = 0 for t ≥ 0 (stable form of the root)
        db = self.beta_max - self.beta_min
        c = -log_alpha
        return 2 * c / (0.5 * self.beta_min + torch.sqrt(0.25 * self.beta_min**2 + db * c))

    def __repr__(self):
        return f"LinearSchedule(beta_min={self.beta_min}, beta_max={self.beta_max})"


class CosineSchedule(VPSchedule):
    """ᾱ(t) = cos²(π/2 · (t + s)/(1 + s)) / cos²(π/2 · s/(1 + s)) (Nichol & Dhariwal 2021).

    α(1) = 0 exactly, so the usable horizon is ``t_max`` = 0.9946 (as in DPM-Solver),
    where log-SNR ≈ -10.
    """

    t_max = 0.9946

    def __init__(self, s: float = 0.008):
        if s <= 0:
            raise InputError(f"s must be > 0, got {s}")
        self.s = float(s)
        self._log_c0 = math.log(math.cos(0.5 * math.pi * self.s / (1 + self.s)))

    def _angle(self, t):
        return 0.5 * math.pi * (t + self.s) / (1 + self.s)

    def log_alpha(self, t):
        return torch.log(torch.cos(self._angle(t))) - self._log_c0

    def d_log_alpha(self, t):
        return -torch.tan(self._angle(t)) * 0.5 * math.pi / (1 + self.s)

    def t_of_log_alpha(self, log_alpha):
        angle = torch.arccos(torch.exp(log_alpha + self._log_c0))
        return angle * (1 + self.s) * 2 / math.pi - self.s

    def __repr__(self):
        return f"CosineSchedule(s={self.s})"


def _pchip_slopes(y: Tensor, dx: float) -> Tensor:
    """Fritsch–Carlson derivatives of monotone data y on a uniform grid of spacing dx:
    the weighted harmonic mean of neighbouring secants (0 where they change sign), and
    the adjacent secant at the two ends."""
    secant = torch.diff(y) / dx
    a, b = secant[:-1], secant[1:]
    inner = torch.where(a * b > 0, 2 * a * b / (a + b), torch.zeros_like(a))
    return torch.cat([secant[:1], inner, secant[-1:]])


class DiscreteSchedule(VPSchedule):
    """DDPM's discrete chain embedded in continuous time.

    With ᾱ_i = Π_{j≤i} (1 - β_j) at t_i = i/N (i = 0..N, ᾱ_0 = 1), log α(t) is the
    monotone cubic Hermite interpolant (PCHIP, Fritsch–Carlson slopes) of the knots
    log α_i = ½ log ᾱ_i. The SDE reproduces the DDPM chain exactly on its grid,
    α(t_i)² = ᾱ_i, and its drift f = d log α/dt is continuous, so adaptive ODE solvers
    are not stopped at every knot (a piecewise-linear log α has a drift that jumps at all
    N knots: an exact-trace likelihood took 10× the model calls of the continuous linear
    schedule).
    """

    def __init__(self, betas):
        b = torch.as_tensor(betas, dtype=torch.float64)
        if b.ndim != 1 or b.numel() < 1:
            raise InputError(f"betas must be a non-empty 1-D sequence, got shape {tuple(b.shape)}")
        if not bool(((b > 0) & (b < 1)).all()):
            raise InputError("betas must lie in (0, 1)")
        self.betas = b
        self.num_steps = b.numel()
        zero = torch.zeros(1, dtype=torch.float64)
        # log ᾱ_i / 2 = log α at t_i = i/N
        self._knots = torch.cat([zero, 0.5 * torch.cumsum(torch.log1p(-b), 0)])
        self._slopes = _pchip_slopes(self._knots, 1.0 / self.num_steps)

    def _locate(self, t):
        u = (t.to(torch.float64) * self.num_steps).clamp(0, self.num_steps)
        i = torch.clamp(torch.ceil(u).long(), 1, self.num_steps)  # interval (t_{i-1}, t_i]
        return u, i

    def _hermite(self, i, s):
        """The cubic on interval i at local coordinate s ∈ [0, 1]: value and d/ds."""
        k, m = self._knots.to(s.device), self._slopes.to(s.device)
        y0, y1 = k[i - 1], k[i]
        d0, d1 = m[i - 1] / self.num_steps, m[i] / self.num_steps  # slopes per unit s
        h00, h10 = (1 + 2 * s) * (1 - s) ** 2, s * (1 - s) ** 2
        h01, h11 = s * s * (3 - 2 * s), s * s * (s - 1)
        value = h00 * y0 + h10 * d0 + h01 * y1 + h11 * d1
        slope = (
            (6 * s * s - 6 * s) * (y0 - y1)
            + (3 * s * s - 4 * s + 1) * d0
            + (3 * s * s - 2 * s) * d1
        )
        return value, slope

    def log_alpha(self, t):
        t = torch.as_tensor(t)
        u, i = self._locate(t)
        return self._hermite(i, u - (i - 1))[0].to(t.dtype)

    def d_log_alpha(self, t):
        t = torch.as_tensor(t)
        u, i = self._locate(t)
        return (self._hermite(i, u - (i - 1))[1] * self.num_steps).to(t.dtype)

    def t_of_log_alpha(self, log_alpha):
        """The inverse (log α is strictly decreasing): the knot interval by search, then
        bisection on the monotone cubic to float64 resolution."""
        la = torch.as_tensor(log_alpha)
        k = self._knots.to(la.device)
        neg = (-k).contiguous()  # increasing
        x = (-la.to(torch.float64)).contiguous()
        i = torch.searchsorted(neg, x).clamp(1, self.num_steps)
        lo, hi = torch.zeros_like(x), torch.ones_like(x)
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            above = -self._hermite(i, mid)[0] < x  # not yet decreased enough
            lo, hi = torch.where(above, mid, lo), torch.where(above, hi, mid)
        s = 0.5 * (lo + hi)
        return ((i - 1 + s) / self.num_steps).clamp(0, 1).to(la.dtype)

    def __repr__(self):
        return f"DiscreteSchedule(num_steps={self.num_steps})"
