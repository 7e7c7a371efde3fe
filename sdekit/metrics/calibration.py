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

from ..covariance import GaussianStatistics
from ..sde import SDE, fourier_eigenvalues
from .spectrum import ring_mean

__all__ = ["noise_prediction_calibration", "denoising_error_spectrum"]


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


@torch.no_grad()
def denoising_error_spectrum(
    sde: SDE,
    model,
    x0: Tensor,
    times,
    generator: torch.Generator | None = None,
) -> list[dict]:
    """Where a noise-prediction model's error lands in pixel space, per spatial frequency.

    For each t in ``times``, one draw x_t = α x₀ + σ L ε per image, the model's denoised
    image x̂₀ = (x_t − σ L ε̂)/α, and per integer radius |k| of the orthonormal 2-D DFT:

    - ``error``: E|F(x̂₀ − x₀)|²_k, the model's pixel-space error (note x̂₀ − x₀ =
      −(σ/α) L (ε̂ − ε): a whitened error is amplified by √λ_k in mode k);
    - ``linear``: the error of the best *linear* denoiser for data with ``x0``'s per-mode
      power P_k (Wiener, Σ diagonal in the Fourier basis with eigenvalues λ_k; P from the
      stationary :meth:`~sdekit.covariance.GaussianStatistics.from_images` around each
      channel's mean):
      P_k σ²λ_k / (α² P_k + σ² λ_k), the error of the exact model for Gaussian data;
    - ``data``: P_k itself (what x̂₀ = mean would lose).

    ``ratio = error / linear`` below 1 means the net uses structure beyond second moments;
    comparing it across noise models at equal t shows which frequencies a model learned
    worse. Radii are averaged over their ring and over channels. Needs Σ diagonal in the
    Fourier basis (white noise or a :class:`~sdekit.covariance.FourierCovariance`).
    Returns one dict per t with ``t``, ``radius`` (the radii on the grid), ``error``,
    ``linear``, ``data``, ``ratio`` (float64 tensors, one entry per radius).
    """
    lam = fourier_eigenvalues(sde.covariance)
    # the data's stationary Gaussian around each channel's mean, unridged: P_k per mode
    gaussian = GaussianStatistics.from_images(x0, "stationary", ridge=0.0, mean="channel")
    power = gaussian.covariance.fourier_spectrum().expand_as(lam)
    radius, data = ring_mean(power)
    out = []
    for t in times:
        tt = torch.full((x0.shape[0],), float(t), dtype=x0.dtype, device=x0.device)
        alpha, sigma = (float(v) for v in sde.marginal(torch.tensor(float(t))))
        xt, _ = sde.perturb(x0, tt, generator=generator)
        x0_hat = sde.eps_to_x0(model(xt, tt), xt, tt)
        spec = torch.fft.fft2((x0_hat - x0).to(torch.float64), norm="ortho")
        error = ring_mean(spec.abs().square().cpu())[1]
        noise = sigma**2 * lam
        linear = ring_mean(power * noise / (alpha**2 * power + noise))[1]
        out.append(
            {
                "t": float(t),
                "radius": radius,
                "error": error,
                "linear": linear,
                "data": data,
                "ratio": error / linear,
            }
        )
    return out
