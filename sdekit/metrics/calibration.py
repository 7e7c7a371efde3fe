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

import math

import torch
from torch import Tensor

from ..covariance import GaussianStatistics, statistics
from ..covariance.fourier import fourier_transform, spatial_dims_of
from ..errors import InputError
from ..sde import SDE, fourier_eigenvalues
from .spectrum import ring_mean

__all__ = ["noise_prediction_calibration", "denoising_error_spectrum", "affine_error_per_mode"]


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


class _AffineError:
    """The dense pieces of :func:`affine_error_per_mode` — C, Σ and the DFT matrix — formed
    once, so a sweep over t solves one d × d system per t and builds nothing else."""

    def __init__(self, gaussian: GaussianStatistics, noise, spatial_dims: int):
        shape = tuple(gaussian.event_shape)
        if tuple(noise.event_shape) != shape:
            raise InputError(
                f"gaussian has event_shape {shape} but the noise covariance has "
                f"{tuple(noise.event_shape)}"
            )
        d = gaussian.covariance.dim
        if d > statistics.DENSE_LIMIT:
            raise InputError(
                f"the affine baseline forms d × d matrices and is limited to d <= "
                f"{statistics.DENSE_LIMIT} (got d={d})"
            )
        self.shape, self.d = shape, d
        self.C = gaussian.covariance.to_dense().to(torch.float64).cpu()
        self.S = noise.to(dtype=torch.float64).to_dense().cpu()
        grid = shape[-spatial_dims:]
        self.p = math.prod(grid)
        F = fourier_transform(torch.eye(self.p, dtype=torch.float64).reshape(self.p, *grid),
                              spatial_dims)  # fmt: skip
        self.F = F.reshape(self.p, self.p)  # row i = F e_i; the N-D DFT matrix is symmetric

    def __call__(self, alpha: float, sigma: float) -> Tensor:
        C, d, p = self.C, self.d, self.p
        E = C - alpha**2 * C @ torch.linalg.solve(alpha**2 * C + sigma**2 * self.S, C)
        E = 0.5 * (E + E.T)
        blocks = E.reshape(d // p, p, d // p, p).diagonal(dim1=0, dim2=2).movedim(-1, 0)
        per_mode = ((self.F @ blocks.to(self.F.dtype)) * self.F.conj()).sum(-1).real
        return per_mode.reshape(self.shape)  # diag(F E_cc Fᴴ) per channel c


def affine_error_per_mode(
    gaussian: GaussianStatistics, noise, alpha: float, sigma: float, spatial_dims: int
) -> Tensor:
    """E|F(x̂_W − x₀)|²_k per Fourier mode (event shape, float64) of the best *affine*
    denoiser of data with mean μ and covariance C (second moments only):

        x̂_W = μ + α C K⁻¹ (x_t − α μ),   K = α² C + σ² Σ,
        E[(x̂_W − x₀)(x̂_W − x₀)ᵀ] = C − α² C K⁻¹ C,

    read per channel in the orthonormal DFT over the grid (the diagonal of F E Fᴴ). Dense:
    d ≤ :data:`sdekit.covariance.DENSE_LIMIT` (``InputError`` above it, or when ``noise``
    Σ is on another event shape)."""
    return _AffineError(gaussian, noise, spatial_dims)(alpha, sigma)


@torch.no_grad()
def denoising_error_spectrum(
    sde: SDE,
    model,
    x0: Tensor,
    times,
    generator: torch.Generator | None = None,
    *,
    gaussian: GaussianStatistics | None = None,
) -> list[dict]:
    """Where a noise-prediction model's error lands in pixel space, per spatial frequency.

    For each t in ``times``, one draw x_t = α x₀ + σ L ε per image, the model's denoised
    image x̂₀ = (x_t − σ L ε̂)/α, and per integer radius |k| of the orthonormal DFT over Σ's
    grid (2-D for images):

    - ``error``: E|F(x̂₀ − x₀)|²_k, the model's pixel-space error (note x̂₀ − x₀ =
      −(σ/α) L (ε̂ − ε): a whitened error is amplified by √λ_k in mode k);
    - ``linear``: the error of the best *affine* denoiser for the data's mean image and
      dense covariance (:func:`affine_error_per_mode`: second moments only, any Σ), the
      exact model for Gaussian data; ``gaussian`` gives μ and C (e.g. from the training
      set), by default the dense :meth:`~sdekit.covariance.GaussianStatistics.from_images`
      of ``x0`` itself. Above d = :data:`~sdekit.covariance.DENSE_LIMIT` there is no dense
      C and ``linear`` is the stationary one (``baseline`` says which);
    - ``stationary``: the error of the best linear denoiser for a *stationary* Gaussian
      with ``x0``'s per-mode power P_k (Wiener, Σ diagonal in the Fourier basis with
      eigenvalues λ_k; P from the stationary ``from_images`` around each channel's mean):
      P_k σ²λ_k / (α² P_k + σ² λ_k) — a weaker baseline for non-stationary data;
    - ``data``: P_k itself (what x̂₀ = mean would lose).

    ``ratio = error / linear`` below 1 (with ``baseline == "affine"``) means the net uses
    structure beyond second moments
    (``ratio_stationary`` = error / stationary, beyond a stationary Gaussian); comparing it
    across noise models at equal t shows which frequencies a model learned worse. Radii are
    averaged over their ring and over channels. Needs Σ diagonal in the Fourier basis (white
    noise or a :class:`~sdekit.covariance.FourierCovariance`). Returns one dict per t with
    ``t``, ``radius`` (the radii on the grid), ``error``, ``linear``, ``stationary``,
    ``data``, ``ratio``, ``ratio_stationary`` (float64 tensors, one entry per radius) and
    ``baseline`` (``"affine"`` or ``"stationary"``).
    """
    lam = fourier_eigenvalues(sde.covariance)
    k = spatial_dims_of(sde.covariance)
    # the data's stationary Gaussian around each channel's mean, unridged: P_k per mode
    stationary_fit = GaussianStatistics.from_images(
        x0, "stationary", ridge=0.0, mean="channel", spatial_dims=k
    )
    power = stationary_fit.covariance.fourier_spectrum().expand_as(lam)
    radius, data = ring_mean(power, k)
    dense_ok = sde.covariance.dim <= statistics.DENSE_LIMIT
    if gaussian is None and dense_ok:
        gaussian = GaussianStatistics.from_images(x0, "dense")
    if gaussian is not None and tuple(gaussian.event_shape) != tuple(sde.event_shape):
        raise InputError(
            f"gaussian has event_shape {gaussian.event_shape}, expected the SDE's "
            f"{tuple(sde.event_shape)}"
        )
    affine_error = None if gaussian is None else _AffineError(gaussian, sde.covariance, k)
    out = []
    for t in times:
        tt = torch.full((x0.shape[0],), float(t), dtype=x0.dtype, device=x0.device)
        alpha, sigma = (float(v) for v in sde.marginal(torch.tensor(float(t))))
        xt, _ = sde.perturb(x0, tt, generator=generator)
        x0_hat = sde.eps_to_x0(model(xt, tt), xt, tt)
        spec = fourier_transform((x0_hat - x0).to(torch.float64), k)
        error = ring_mean(spec.abs().square().cpu(), k)[1]
        noise = sigma**2 * lam
        stationary = ring_mean(power * noise / (alpha**2 * power + noise), k)[1]
        if affine_error is not None:
            linear, baseline = ring_mean(affine_error(alpha, sigma), k)[1], "affine"
        else:
            linear, baseline = stationary, "stationary"
        out.append(
            {
                "t": float(t),
                "radius": radius,
                "error": error,
                "linear": linear,
                "stationary": stationary,
                "data": data,
                "ratio": error / linear,
                "ratio_stationary": error / stationary,
                "baseline": baseline,
            }
        )
    return out
