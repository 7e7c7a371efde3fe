"""Calibration of a noise-prediction model against its own training target.

For the exact model ε̂ = E[ε | x_t] the projection of the true noise on the prediction
equals the prediction's own energy, at every t:

    E⟨ε̂, ε⟩ = E⟨ε̂, E[ε | x_t]⟩ = E‖ε̂‖²,

so ``ratio(t) = E⟨ε̂, ε⟩ / E‖ε̂‖²`` is 1 for a calibrated model, > 1 when ε̂ is too
small (shrunk towards 0) and < 1 when it is too large. At high noise the error of
x̂₀ = (x − σ L ε̂)/α is the ε̂ error times σ/α, so a ratio of 1.03 near t = T is an x̂₀
error of the order of the data itself, which deterministic samplers carry to the end.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..sde import SDE

__all__ = ["noise_prediction_calibration"]


@torch.no_grad()
def noise_prediction_calibration(
    sde: SDE,
    model,
    x0: Tensor,
    times,
    generator: torch.Generator | None = None,
) -> list[dict]:
    """Per time t in ``times``: ``mse`` = E‖ε̂ − ε‖²/d, ``projection`` = E⟨ε̂, ε⟩/d,
    ``energy`` = E‖ε̂‖²/d and ``ratio`` = projection / energy (1 for the exact
    E[ε | x_t]), from one draw x_t = α_t x₀ + σ_t L ε per data point in ``x0``.

    ``model(x, t) -> ε̂`` is the whitened noise prediction (sdekit's convention);
    ``times`` must lie in (0, T].
    """
    out = []
    for t in times:
        tt = torch.full((x0.shape[0],), float(t), dtype=x0.dtype, device=x0.device)
        xt, eps = sde.perturb(x0, tt, generator=generator)
        e = model(xt, tt)
        d = eps[0].numel() * eps.shape[0]
        proj, energy = float((e * eps).sum()) / d, float((e * e).sum()) / d
        out.append(
            {
                "t": float(t),
                "mse": float((e - eps).square().sum()) / d,
                "projection": proj,
                "energy": energy,
                "ratio": proj / energy,
            }
        )
    return out
