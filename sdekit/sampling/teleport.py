"""Analytical teleportation: the high-noise part of the probability-flow ODE in closed form.

At high noise a trained model's ε̂ is, to first order in the signal-to-noise ratio, that of
Gaussian data N(μ, C) with the training set's mean and covariance (Wang & Vastola 2024,
"The Unreasonable Effectiveness of Gaussian Score Approximation for Diffusion Models and its
Applications", TMLR; they skip the first 15–30 % of a solver's steps this way). For that
Gaussian the PF ODE is solved exactly for any noise covariance Σ = L Lᵀ
(:class:`~sdekit.sde.GaussianOracle`): in whitened coordinates w = L⁻¹x with
C̃ = L⁻¹ C L⁻ᵀ = U diag(c) Uᵀ and k_t = α_t² c + σ_t²,

    x_s = α_s μ + L U diag(√(k_s / k_t)) Uᵀ (L⁻¹ x_t − α_t L⁻¹ μ).

:class:`GaussianTeleport` applies this map from T down to the time t_s at which the
largest whitened mode's SNR α² c_max / σ² reaches ``max_snr`` — while every mode is still
below it, the data's non-Gaussian structure is invisible to first order — and the model
takes over from there with all of the sampler's steps. It costs no model call.
:func:`~sdekit.sample` takes it as ``teleport=``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..covariance import GaussianStatistics, statistics
from ..covariance.fourier import spatial_dims_of
from ..errors import InputError, InputTypeError
from ..sde import SDE, GaussianOracle

__all__ = ["GaussianTeleport"]


class GaussianTeleport:
    """The closed-form PF-ODE flow of Gaussian data N(μ, C) from T to a hand-over time.

    **Arguments:**
    - ``sde``: the SDE the model was trained on (its Σ shapes the flow).
    - ``mean``: μ, a tensor of the event shape (or a scalar).
    - ``covariance``: C, a :class:`~sdekit.covariance.CovarianceOperator` or a dense SPD
      ``(d, d)`` matrix (d ≤ :data:`sdekit.covariance.DENSE_LIMIT`).
    - ``max_snr``: the hand-over rule, > 0: t_s is where the largest whitened per-mode SNR
      α_t² c_max / σ_t² equals it (T if it is already above at T). Default 1.

    ``teleport(x_T)`` maps prior samples at T to t_s (float64 in, the input's dtype out);
    ``teleport.time`` is t_s, ``teleport.max_snr_at(t)`` the largest mode SNR at t.
    """

    def __init__(self, sde: SDE, mean, covariance, max_snr: float = 1.0):
        max_snr = float(max_snr)
        if not (math.isfinite(max_snr) and max_snr > 0):
            raise InputError(f"max_snr must be a finite number > 0, got {max_snr}")
        self.sde, self.max_snr = sde, max_snr
        self.oracle = GaussianOracle(sde, mean, covariance)
        self.c_max = float(self.oracle.c_full.max())
        if not self.c_max > 0:
            raise InputError("covariance is zero: there is no Gaussian structure to flow along")
        # α²c/σ² = max_snr  ⇔  log-SNR log(α²/σ²) = log(max_snr / c_max)
        target = torch.tensor(math.log(max_snr / self.c_max), dtype=torch.float64)
        t = float(sde.t_of_log_snr(target)) if target > sde.log_snr(sde.T) else sde.T
        self.time = min(max(t, sde.default_eps), sde.T)

    @classmethod
    def from_data(
        cls, sde: SDE, images: Tensor, max_snr: float = 1.0, ridge: float = 1e-6
    ) -> GaussianTeleport:
        """μ and C from training images ``(n, *event_shape)`` in the model's data scale
        (:meth:`sdekit.covariance.GaussianStatistics.from_images`): the mean image and the
        dense sample covariance + ``ridge`` · I for d ≤ :data:`sdekit.covariance.DENSE_LIMIT`
        (4096), or for larger images the stationary one, the per-channel power spectrum
        around the mean image + ``ridge`` (over the noise's ``spatial_dims``, so signals and
        volumes work too)."""
        x = torch.as_tensor(images)
        if not x.is_floating_point():
            raise InputTypeError(
                f"images must be real floating-point images in the model's data scale "
                f"(e.g. [-1, 1]; sdekit.training.images.from_uint8 converts 8-bit ones), "
                f"got dtype {x.dtype}"
            )
        shape = tuple(sde.event_shape)
        if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape or x.shape[0] < 2:
            raise InputError(
                f"images must have shape (n >= 2, {', '.join(map(str, shape))}), "
                f"got {tuple(x.shape)}"
            )
        structure = "dense" if math.prod(shape) <= statistics.DENSE_LIMIT else "stationary"
        # the stationary fit runs over the noise's own grid, or every dim after the channel
        k = spatial_dims_of(sde.covariance)
        gaussian = GaussianStatistics.from_images(
            x.to(torch.float64), structure, ridge=ridge, spatial_dims=k
        )
        return cls(sde, gaussian.mean, gaussian.covariance, max_snr)

    def max_snr_at(self, t) -> float:
        """The largest whitened per-mode SNR α_t² c_max / σ_t² at time t."""
        alpha, sigma = (float(v) for v in self.sde.marginal(torch.tensor(float(t))))
        return alpha**2 * self.c_max / sigma**2

    def __call__(self, x_T: Tensor, t_from: float | None = None) -> Tensor:
        """x at t_s from x at ``t_from`` (default T), along the Gaussian PF ODE."""
        t0 = self.sde.T if t_from is None else float(t_from)
        out = self.oracle.flow(x_T.to(torch.float64), t0, self.time)
        return out.to(x_T.dtype)

    def __repr__(self) -> str:
        return (
            f"GaussianTeleport(max_snr={self.max_snr:g}, time={self.time:.4f}, "
            f"c_max={self.c_max:.4g}, path={self.oracle.path!r})"
        )
