"""``"torchsde:<method>"``: the reverse SDE solved by ``torchsde.sdeint``.

Wiring (measured facts about torchsde):

* **time change** u ∈ [0, K-1] with t(u) piecewise linear through the grid,
  t(i) = t_i: time increases, steps are exactly u = 0, 1, 2, … (float64,
  dt = 1, so no spurious extra step), and any grid (uniform or not) is
  followed exactly. On step i, dt/du = Δ_i = t_{i+1} - t_i < 0, so
      dx = Δ_i [f x + (g²/σ) L ε̂] du + g sqrt(-Δ_i) L dW_u.
* **additive noise**: only ``g_prod`` (g(t) sqrt(-Δ_i) L v) is given, so L is
  applied by the covariance operator and no d×d matrix is ever formed; Itô and
  Stratonovich coincide, so Stratonovich methods are valid too.
* **fresh-increment Brownian motion** drawn from the caller's generator, one
  N(0, I) draw per unit step in the order the native loops use (plus the
  space-time Lévy area H ~ N(0, h/12) for ``srk``); it also tells the SDE which
  step is current, so evaluations at a step's end use that step's Δ_i.
* flattening to ``(n, d)`` happens only at this boundary; torchsde's shape-check
  call of ``f`` is served from a one-entry cache, so it costs no NFE.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import InputError
from .engine import SamplerEntry, register_prefix

#: methods torchsde offers for additive noise with a diffusion-vector product
TORCHSDE_METHODS = {
    "euler": "ito",
    "milstein": "ito",
    "srk": "ito",
    "heun": "stratonovich",
    "midpoint": "stratonovich",
    "euler_heun": "stratonovich",
}
#: model calls per grid interval (measured; torchsde's shape-check call is cached)
_EVALS = {"euler": 1, "milstein": 1, "srk": 2, "heun": 2, "midpoint": 2, "euler_heun": 1}
_UNSUPPORTED = {
    "reversible_heun": "it needs the dense diffusion matrix g (d×d), which sdekit never forms",
    "adjoint_reversible_heun": "it is for adjoint (backward) solves",
    "log_ode": "it needs a Davie/Foster Lévy-area approximation (whose term vanishes "
    "for additive noise; use 'midpoint')",
}


class _FreshBrownian:
    """Brownian increments for fixed steps, drawn fresh from a torch.Generator."""

    def __init__(self, shape, dtype, device, generator, on_step, levy: bool):
        self.shape, self._dtype, self._device = torch.Size(shape), dtype, device
        self.generator, self.on_step = generator, on_step
        self._levy = "space-time" if levy else "none"

    def _randn(self):
        return torch.randn(
            self.shape, generator=self.generator, dtype=self._dtype, device=self._device
        )

    def __call__(self, ta, tb=None, return_U=False, return_A=False):
        if tb is None or return_A:
            raise RuntimeError(
                "sdekit's fixed-step Brownian motion gives increments W(tb) - W(ta) only"
            )
        self.on_step(float(ta))
        h = float(tb - ta)
        W = math.sqrt(h) * self._randn()
        if return_U:
            H = math.sqrt(h / 12) * self._randn()
            return W, h * (0.5 * W + H)
        return W

    @property
    def dtype(self):
        return self._dtype

    @property
    def device(self):
        return self._device

    @property
    def levy_area_approximation(self):
        return self._levy

    def size(self):
        return self.shape

    def __repr__(self):
        return f"_FreshBrownian(shape={tuple(self.shape)})"


class _ReverseSDEInU:
    """The reverse SDE of ``sde`` in the step-index time u, for torchsde."""

    noise_type = "additive"

    def __init__(self, sde, model, grid, event_shape, sde_type: str):
        self.sde, self.model, self.event_shape = sde, model, tuple(event_shape)
        self.sde_type = sde_type
        self.t = grid.t
        self.delta = grid.t[1:] - grid.t[:-1]
        self.step = 0
        self._cache = None

    def set_step(self, u: float) -> None:
        self.step = min(int(round(u)), self.delta.numel() - 1)

    def _time(self, u) -> tuple[Tensor, float]:
        i = self.step
        d = self.delta[i]
        return self.t[i] + (float(u) - i) * d, float(d)

    def _x(self, y: Tensor) -> Tensor:
        return y.reshape(y.shape[0], *self.event_shape)

    def f(self, u, y):
        key = (float(u), self.step, id(y), y._version)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        t, d = self._time(u)
        x = self._x(y)
        out = (d * self.sde.reverse_drift(x, t, self.model(x, t))).reshape(y.shape)
        self._cache = (key, out)
        return out

    def g_prod(self, u, y, v):
        t, d = self._time(u)
        scale = float(self.sde.diffusion(t)) * math.sqrt(-d)
        return (scale * self.sde.covariance.sqrt_apply(self._x(v))).reshape(v.shape)


def _make(method: str):
    import torchsde

    sde_type = TORCHSDE_METHODS[method]

    def torchsde_sampler(sde, model, x, grid, *, generator=None):
        """The reverse SDE by ``torchsde.sdeint`` on the grid (see the module docstring)."""
        if grid.num_intervals == 0:
            return x
        rsde = _ReverseSDEInU(sde, model, grid, sde.event_shape, sde_type)
        n = x.shape[0]
        bm = _FreshBrownian(
            (n, sde.covariance.dim),
            x.dtype,
            x.device,
            generator,
            rsde.set_step,
            levy=(method == "srk"),
        )
        ts = torch.tensor([0.0, float(grid.num_intervals)], dtype=torch.float64, device=x.device)
        ys = torchsde.sdeint(rsde, x.reshape(n, -1), ts, bm=bm, method=method, dt=1.0)
        return ys[-1].reshape(x.shape)

    torchsde_sampler.__name__ = f"torchsde_{method}"
    return torchsde_sampler


def _resolve(method: str) -> SamplerEntry:
    if method in _UNSUPPORTED:
        raise InputError(f"torchsde:{method} is not supported: {_UNSUPPORTED[method]}")
    if method not in TORCHSDE_METHODS:
        raise InputError(
            f"unknown torchsde method {method!r}; valid: "
            + ", ".join(f"torchsde:{m}" for m in TORCHSDE_METHODS)
        )
    return SamplerEntry(_make(method), "time", True, _EVALS[method])


register_prefix("torchsde", _resolve)
