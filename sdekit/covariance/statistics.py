"""The data's Gaussian: the mean and covariance of a set of images, measured once.

Three parts of sdekit stand in for the data by a Gaussian N(μ, C) fitted to training
images: :meth:`sdekit.sampling.GaussianTeleport.from_data` (the closed-form flow at high
noise), the ``gaussian-residual`` target (:mod:`sdekit.models.parameterization`) and
:func:`sdekit.metrics.denoising_error_spectrum` (the best linear denoiser's error). All
three build it here, each naming its structure:

- ``"dense"``: the sample covariance of the flattened images + ``ridge`` · I, as a
  :class:`CholeskyCovariance` (d × d memory, so d ≤ :data:`DENSE_LIMIT`);
- ``"stationary"``: per channel, the power spectrum of the images around the mean
  (:func:`power_spectrum`) + ``ridge``, as a :class:`FourierCovariance` (O(d) memory, any d).

:meth:`GaussianStatistics.to_config` writes it as plain lists (``{"mean", "spectrum"}`` —
with ``"spatial_dims"`` when it is not 2 — or ``{"mean", "factor"}``) so a config records it
and :meth:`~GaussianStatistics.from_config` rebuilds it exactly.
"""

from __future__ import annotations

import math

import torch

from ..errors import InputError, InputTypeError
from .base import CovarianceOperator
from .cholesky import CholeskyCovariance
from .fourier import FourierCovariance, check_spatial_dims, power_spectrum

__all__ = ["DENSE_LIMIT", "GaussianStatistics"]

#: the largest event size d for which sdekit forms a dense d × d covariance or basis (a
#: dense :class:`GaussianStatistics`, :class:`~sdekit.sde.GaussianOracle`'s dense path)
DENSE_LIMIT = 4096

STRUCTURES = ("dense", "stationary")
MEANS = ("image", "channel")
F64 = torch.float64


class GaussianStatistics:
    """A Gaussian N(μ, C): ``mean`` μ (float64, the event shape) and ``covariance`` C, a
    :class:`CovarianceOperator` over that shape.

    Build it from images with :meth:`from_images`, or from a config record with
    :meth:`from_config`.
    """

    def __init__(self, mean, covariance: CovarianceOperator):
        if not isinstance(covariance, CovarianceOperator):
            raise InputTypeError(
                f"covariance must be a CovarianceOperator, got {type(covariance).__name__}"
            )
        shape = tuple(covariance.event_shape)
        mu = torch.as_tensor(mean, dtype=F64)
        if mu.numel() != 1 and tuple(mu.shape) != shape:
            raise InputError(
                f"mean must be a scalar or have the covariance's event shape {shape}, "
                f"got {tuple(mu.shape)}"
            )
        self.mean = mu.expand(shape).clone() if mu.numel() == 1 else mu
        self.covariance = covariance

    @property
    def event_shape(self) -> tuple[int, ...]:
        return tuple(self.covariance.event_shape)

    @classmethod
    def from_images(
        cls,
        images,
        structure: str,
        *,
        ridge: float = 1e-6,
        mean: str = "image",
        spatial_dims: int = 2,
    ) -> GaussianStatistics:
        """The Gaussian of ``images`` ``(n ≥ 2, *event_shape)`` (float64, on the images'
        device).

        **Arguments:**
        - ``structure``: ``"dense"``, the sample covariance (1/(n − 1)) Σᵢ (xᵢ − μ)(xᵢ − μ)ᵀ
          + ``ridge`` · I (refused for d > :data:`DENSE_LIMIT`), or ``"stationary"``, the
          per-channel power spectrum of x − μ (:func:`power_spectrum`, uncentred) +
          ``ridge`` on the full frequency grid (images ``(n, C, H, W)``; with
          ``spatial_dims`` 1 or 3, signals ``(n, C, L)`` or volumes ``(n, C, D, H, W)``).
        - ``ridge``: ≥ 0, added to the covariance's eigenvalues so it is positive definite
          (a dense sample covariance of n ≤ d images is singular without it).
        - ``mean``: ``"image"``, μ the mean image (the default), or ``"channel"``
          (stationary only): each channel's mean over images and pixels, the mean a
          stationary Gaussian has (the spectrum's DC term is then the variance of each
          image's mean brightness, as in :func:`power_spectrum`'s ``center=True``).
        """
        if structure not in STRUCTURES:
            raise InputError(f"structure must be one of {STRUCTURES}, got {structure!r}")
        if mean not in MEANS:
            raise InputError(f"mean must be one of {MEANS}, got {mean!r}")
        ridge = float(ridge)
        if not (math.isfinite(ridge) and ridge >= 0):
            raise InputError(f"ridge must be a finite number >= 0, got {ridge}")
        x = torch.as_tensor(images)
        if not x.is_floating_point() or x.ndim < 2 or x.shape[0] < 2:
            raise InputError(
                f"images must be a float tensor (n >= 2, *event_shape), got {x.dtype} of "
                f"shape {tuple(x.shape)}"
            )
        x = x.to(F64)
        shape = tuple(x.shape[1:])
        if structure == "dense":
            d = math.prod(shape)
            if d > DENSE_LIMIT:
                raise InputError(
                    f"structure='dense' forms a d × d covariance and is limited to "
                    f"d <= {DENSE_LIMIT} (got d={d}); use structure='stationary'"
                )
            if mean != "image":
                raise InputError("mean='channel' is for structure='stationary'")
            mu = x.mean(0)
            xc = (x - mu).reshape(len(x), d)
            cov = xc.T @ xc / (len(x) - 1) + ridge * torch.eye(d, dtype=F64, device=x.device)
            return cls(mu, CholeskyCovariance(cov, shape))
        k = check_spatial_dims(spatial_dims)
        if x.ndim != 2 + k:
            layout = ("(n, C, L)", "(n, C, H, W)", "(n, C, D, H, W)")[k - 1]
            raise InputError(
                f"structure='stationary' with spatial_dims={k} needs images {layout}, got "
                f"shape {tuple(x.shape)}"
            )
        pixels = (0, *range(2, x.ndim))
        mu = x.mean(0) if mean == "image" else x.mean(dim=pixels, keepdim=True)
        power = power_spectrum(x - mu, center=False, spatial_dims=k).to(x.device) + ridge
        mu = mu.expand(x.shape).select(0, 0) if mean == "channel" else mu
        return cls(mu.clone(), FourierCovariance(power, shape, spatial_dims=k))

    # ------------------------------------------------------------- records
    def to_config(self) -> dict:
        """Plain lists for a config: ``{"mean", "spectrum"}`` for a
        :class:`FourierCovariance` (its eigenvalues), ``{"mean", "factor"}`` for a
        :class:`CholeskyCovariance` (its lower factor, so the record rebuilds it exactly);
        other operators have no record (``InputError``)."""
        cov = self.covariance
        mean = self.mean.cpu().tolist()
        if isinstance(cov, FourierCovariance):
            record = {"mean": mean, "spectrum": cov.eigenvalues.to("cpu", F64).tolist()}
            if cov.spatial_dims != 2:  # records of images keep their old form
                record["spatial_dims"] = cov.spatial_dims
            return record
        if isinstance(cov, CholeskyCovariance):
            return {"mean": mean, "factor": cov.factor.to("cpu", F64).tolist()}
        raise InputError(
            f"a {type(cov).__name__} has no config record (FourierCovariance or "
            "CholeskyCovariance have)"
        )

    @classmethod
    def from_config(cls, record: dict) -> GaussianStatistics:
        """The Gaussian of a :meth:`to_config` record (float64, CPU)."""
        if not isinstance(record, dict) or "mean" not in record:
            raise InputError(
                "a Gaussian record must be a dict with 'mean' and 'spectrum' or 'factor', "
                f"got {record!r:.80}"
            )
        mean = torch.tensor(record["mean"], dtype=F64)
        if "spectrum" in record:
            power = torch.tensor(record["spectrum"], dtype=F64)
            k = record.get("spatial_dims", 2)
            return cls(mean, FourierCovariance(power, tuple(mean.shape), spatial_dims=k))
        if "factor" in record:
            factor = torch.tensor(record["factor"], dtype=F64)
            return cls(mean, CholeskyCovariance.from_factor(factor, tuple(mean.shape)))
        raise InputError(
            f"a Gaussian record needs 'spectrum' or 'factor' beside 'mean', got keys "
            f"{sorted(record)}"
        )

    def to(self, device=None) -> GaussianStatistics:
        """A copy with μ and C on ``device``."""
        return type(self)(self.mean.to(device), self.covariance.to(device=device))

    def __repr__(self) -> str:
        return (
            f"GaussianStatistics(event_shape={self.event_shape}, "
            f"covariance={type(self.covariance).__name__})"
        )
