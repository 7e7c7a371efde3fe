"""``"torchdiffeq:<method>"``: the probability-flow ODE solved by ``torchdiffeq.odeint``.

dx/dt = f(t) x + (g(t)²/(2σ_t)) L ε̂(x, t), integrated from T down to eps on any
tensor shape (torchdiffeq handles decreasing time). Fixed-grid methods follow
sdekit's grid exactly (a ``grid_constructor``); adaptive methods use ``rtol`` /
``atol``, start with a given first step (torchdiffeq's own initial-step probe
evaluates the drift at t₀ + h₀ with an h₀ that can leave [eps, T] by far) and are
told to end a step exactly at eps (``step_t``), so the model is never evaluated
outside [eps, T] (the drift asserts it).
"""

from __future__ import annotations

import torch

from ..errors import InputError
from .engine import SamplerEntry, check_tolerances, register_prefix

FIXED_METHODS = ("euler", "midpoint", "heun2", "heun3", "rk4", "explicit_adams")
ADAPTIVE_METHODS = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")
#: model calls per interval of the fixed-grid methods
_EVALS = {"euler": 1, "midpoint": 2, "heun2": 2, "heun3": 3, "rk4": 4, "explicit_adams": 1}
#: torchdiffeq's explicit Adams method starts with extra calls (measured: 6, at any grid)
_ADAMS_START = 6


def _adams_intervals(budget: int, options: dict) -> int:
    return budget - _ADAMS_START


class _PFODE(torch.nn.Module):
    def __init__(self, sde, model, t_lo: float, t_hi: float):
        super().__init__()
        self.sde, self.model = sde, model
        self.t_lo, self.t_hi = t_lo, t_hi
        self.tol = 1e-9 * max(1.0, abs(t_hi))

    def forward(self, t, x):
        tt = float(t)
        if not (self.t_lo - self.tol <= tt <= self.t_hi + self.tol):
            raise RuntimeError(
                f"torchdiffeq asked for the drift at t={tt:.6g}, outside [{self.t_lo}, {self.t_hi}]"
            )
        t64 = torch.tensor(min(max(tt, self.t_lo), self.t_hi), dtype=torch.float64)
        return self.sde.reverse_drift(x, t64, self.model(x, t64), probability_flow=True)


def adaptive_options(t_start: float, t_end: float, x) -> dict:
    """Options that keep an adaptive torchdiffeq method inside [t_end, t_start] (either
    order): a first step of 1 % of the span instead of the initial-step probe, and a step
    boundary at ``t_end``."""
    return {
        "first_step": 0.01 * abs(t_end - t_start),
        "step_t": torch.tensor([t_end], dtype=x.dtype, device=x.device),
    }


def _make(method: str):
    import torchdiffeq

    adaptive = method in ADAPTIVE_METHODS

    def torchdiffeq_sampler(
        sde,
        model,
        x,
        grid,
        *,
        generator=None,
        rtol: float = 1e-5,
        atol: float = 1e-5,
        options: dict | None = None,
    ):
        """The probability-flow ODE by ``torchdiffeq.odeint`` (see the module docstring)."""
        check_tolerances(rtol, atol)
        if grid.num_intervals == 0:
            return x
        t0, t1 = float(grid.t[0]), float(grid.t[-1])
        func = _PFODE(sde, model, t1, t0)
        span = torch.tensor([t0, t1], dtype=x.dtype, device=x.device)
        opts = dict(options or {})
        if adaptive:
            opts.update(adaptive_options(t0, t1, x))
        else:
            nodes = grid.t.to(dtype=x.dtype, device=x.device)
            opts.setdefault("grid_constructor", lambda f, y0, t: nodes)
        out = torchdiffeq.odeint(func, x, span, rtol=rtol, atol=atol, method=method, options=opts)
        return out[-1]

    torchdiffeq_sampler.__name__ = f"torchdiffeq_{method}"
    return torchdiffeq_sampler


def _resolve(method: str) -> SamplerEntry:
    if method not in FIXED_METHODS + ADAPTIVE_METHODS:
        raise InputError(
            f"unknown torchdiffeq method {method!r}; valid: "
            + ", ".join(f"torchdiffeq:{m}" for m in FIXED_METHODS + ADAPTIVE_METHODS)
        )
    intervals = _adams_intervals if method == "explicit_adams" else None
    return SamplerEntry(_make(method), "time", False, _EVALS.get(method), intervals=intervals)


register_prefix("torchdiffeq", _resolve)
