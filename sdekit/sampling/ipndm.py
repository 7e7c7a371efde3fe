"""iPNDM, the improved pseudo-numerical method (Zhang & Chen 2023, "Fast Sampling of Diffusion
Models with Exponential Integrator", DEIS paper §4; the few-step solver of Zhou et al. 2024),
in NI form.

In the scaled variables x̃ = x/α and ρ = σ/α = e^{−λ} the probability-flow ODE is
dx̃/dρ = L ε̂(α x̃, t) (EDM's dx/dσ = (x − D)/σ with α = 1). iPNDM is the Adams–Bashforth
method on that ODE with the fixed (equal-step) coefficients, whatever the grid:

    x̃_{i+1} = x̃_i + (ρ_{i+1} − ρ_i) Σ_j b_j L ε̂_{i−j},
    b = (1), (3/2, −1/2), (23/12, −16/12, 5/12), (55/24, −59/24, 37/24, −9/24),

the order rising 1, 2, 3, 4 over the first steps (the lower-order warm start that replaces
PNDM's Runge–Kutta start, hence "improved"). Order 1 is DDIM.
"""

from __future__ import annotations

from ..errors import InputError
from ._multistep import noise_multistep
from .engine import register_sampler

__all__ = ["ipndm", "AB_COEFFICIENTS"]

#: the Adams–Bashforth coefficients of orders 1–4, newest output first
AB_COEFFICIENTS = {
    1: (1.0,),
    2: (3 / 2, -1 / 2),
    3: (23 / 12, -16 / 12, 5 / 12),
    4: (55 / 24, -59 / 24, 37 / 24, -9 / 24),
}


@register_sampler("ipndm", default_grid="time_quadratic", default_denoise=False)
def ipndm(
    sde, model, x, grid, *, generator=None, order: int = 4, lower_order_final: bool = False
):
    """iPNDM of ``order`` 1–4 (module docstring): one model call per interval, the fixed
    Adams–Bashforth coefficients on ε̂ in ρ = σ/α, the order warming up from 1.
    ``lower_order_final``: the k-th step from the end at most of order k below 15 steps."""
    if order not in AB_COEFFICIENTS:
        raise InputError(f"order must be 1, 2, 3 or 4, got {order!r}")
    return noise_multistep(
        sde, model, x, grid, lambda steps, i, k: AB_COEFFICIENTS[k], order, lower_order_final
    )
