"""What a network predicts, in non-isotropic (NI) form, and the loss that trains it.

sdekit's samplers take ``model(x, t) -> ε̂``, the *whitened* noise of
x_t = α_t x₀ + σ_t L ε, ε ~ N(0, I). Write y = L⁻¹ x (whitened coordinates), so
y_t = α_t y₀ + σ_t ε with y₀ = L⁻¹ x₀, and s_t = σ_t / α_t. A
:class:`Parameterization` says what the raw network output regresses to and how ε̂
follows from it:

==============  ============================  ===================================  ============
name            raw target                    ε̂ from the output ``out``            J(t)
==============  ============================  ===================================  ============
``eps``         ε (the paper's eq. 16)        out                                  1
``correlated``  L ε (the noise as added)      L⁻¹ out                              1 (in L)
``x0``          x₀ (pixels)                   L⁻¹ (x − α out) / σ                  s (in L)
``v``           v = α ε − σ y₀                (σ y + α out) / (α² + σ²)            (α²+σ²)/α
``edm``         F = (y₀ − c_skip ỹ) / c_out   (ỹ − c_skip ỹ − c_out out) / s       √(s²+σ_d²)/σ_d
``gaussian-     ε − ε̂_G(x_t, t)               ε̂_G(x, t) + out                      1
residual``
==============  ============================  ===================================  ============

Every target is affine in (x₀, ε) for fixed x_t, so out − target = ±J(t) · (ε̂ − ε),
measured in whitened coordinates, or through L for the rows marked "in L". Hence

    w(t) ‖out − target‖² = w(t) J(t)² ‖ε̂ − ε‖²   (whitened, or ‖L(ε̂ − ε)‖²),

and the loss-minimising output, the conditional mean E[target | x_t], maps to the exact
ε̂ = E[ε | x_t] for every row: all six are the same estimator, trained with different
weights over time (and, for ``correlated`` / ``x0``, over Fourier modes: mode k of
L(ε̂ − ε) carries weight λ_k). :meth:`Parameterization.eps_loss_weight` gives w J², so
:func:`sdekit.training.denoising_loss` trains every row through one code path.

``edm`` is Karras et al. (2022)'s preconditioning in whitened, variance-exploding
coordinates ỹ = y / α = y₀ + s ε: the network sees c_in ỹ and c_noise = ¼ log s,
D = c_skip ỹ + c_out F estimates y₀, with c_skip = σ_d²/(s² + σ_d²),
c_out = s σ_d/√(s² + σ_d²), c_in = 1/√(s² + σ_d²) and the loss weight
λ(s) c_out² = 1 on F (λ = 1/c_out², their eq. 8 and Table 1). σ_d is the standard
deviation of the *whitened* data, √(mean_k P_k / λ_k) for a Fourier-diagonal Σ
(:func:`whitened_data_std`).

``gaussian-residual`` is a skip connection to the exact denoiser of a Gaussian
approximation N(μ, C) of the data (:class:`~sdekit.sde.GaussianOracle`; for
Fourier-diagonal C and Σ per mode k of the whitened spectrum c_k = P_k / λ_k,
ε̂_G = σ (α² c_k + σ²)⁻¹ (y − α ν)_k): the network predicts only the residual
ε − ε̂_G, so a zero output (the U-Net's initialisation) is already the best *linear*
denoiser, and at high noise, where the exact ε̂ equals ε̂_G to first order in the SNR,
the network's job is to output ≈ 0. The loss is the paper's whitened ε loss unchanged.
"""

from __future__ import annotations

import abc
import copy
import math

import torch
from torch import Tensor, nn

from ..covariance import CovarianceOperator, IdentityCovariance
from ..errors import InputError
from ..sde import SDE, GaussianOracle, expand_to
from ..sde.parameterization import v_to_eps

__all__ = [
    "Parameterization",
    "EpsilonParameterization",
    "CorrelatedEpsilonParameterization",
    "DataParameterization",
    "VelocityParameterization",
    "EDMParameterization",
    "GaussianResidualParameterization",
    "gaussian_residual",
    "gaussian_residual_from_data",
    "PARAMETERIZATIONS",
    "make_parameterization",
    "ParameterizedModel",
    "CorrelatedNoiseModel",
    "whitened_data_std",
]


def _coefficients(sde: SDE, t: Tensor, like: Tensor) -> tuple[Tensor, Tensor]:
    alpha, sigma = sde.marginal(t)
    return expand_to(alpha, like), expand_to(sigma, like)


class Parameterization(abc.ABC):
    """One row of the module table. Subclasses set ``name`` and ``space`` and implement
    :meth:`target`, :meth:`to_eps` and :meth:`eps_error_scale`."""

    name: str
    #: where ε-errors are measured: ``"whitened"`` (ε̂ − ε) or ``"correlated"`` (L(ε̂ − ε))
    space: str = "whitened"

    def network_input(self, sde: SDE, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """What the network sees: ``(x_in, t_in)``; (x_t, t) unless preconditioned."""
        return x, t

    @abc.abstractmethod
    def target(self, sde: SDE, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """The raw output's regression target for x_t = α x₀ + σ L ``noise``."""

    @abc.abstractmethod
    def to_eps(self, sde: SDE, out: Tensor, x: Tensor, t: Tensor) -> Tensor:
        """ε̂ from the network's raw output ``out`` at (x_t, t)."""

    @abc.abstractmethod
    def eps_error_scale(self, sde: SDE, t: Tensor) -> Tensor:
        """J(t), per sample: |out − target| = J |ε̂ − ε| in :attr:`space`."""

    def loss_weight(self, sde: SDE, t: Tensor) -> Tensor:
        """w(t) of the raw loss w ‖out − target‖² (1 unless a subclass says otherwise)."""
        return torch.ones_like(as_float(t))

    def eps_loss_weight(self, sde: SDE, t: Tensor) -> Tensor:
        """w(t) J(t)²: the same loss written on ε̂ − ε (see the module docstring)."""
        return self.loss_weight(sde, t) * self.eps_error_scale(sde, t).square()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def as_float(t) -> Tensor:
    t = torch.as_tensor(t)
    return t if t.is_floating_point() else t.to(torch.float64)


class EpsilonParameterization(Parameterization):
    """The network predicts the whitened ε (Voleti et al., eq. 16; DDPM for Σ = I)."""

    name = "eps"

    def target(self, sde, x0, noise, t):
        return noise

    def to_eps(self, sde, out, x, t):
        return out

    def eps_error_scale(self, sde, t):
        return torch.ones_like(as_float(t))


class CorrelatedEpsilonParameterization(Parameterization):
    """The network predicts the noise as added, L ε (easy for a conv net: at high noise
    L ε ≈ x_t / σ); ε̂ = L⁻¹ out. Its loss weights Fourier mode k by λ_k."""

    name = "correlated"
    space = "correlated"

    def target(self, sde, x0, noise, t):
        return sde.covariance.sqrt_apply(noise)

    def to_eps(self, sde, out, x, t):
        return sde.covariance.inv_sqrt_apply(out)

    def eps_error_scale(self, sde, t):
        return torch.ones_like(as_float(t))


class DataParameterization(Parameterization):
    """The network predicts the clean image x₀ (in pixels); ε̂ = L⁻¹(x − α x̂₀)/σ."""

    name = "x0"
    space = "correlated"

    def target(self, sde, x0, noise, t):
        return x0

    def to_eps(self, sde, out, x, t):
        return sde.x0_to_eps(out, x, t)

    def eps_error_scale(self, sde, t):
        alpha, sigma = sde.marginal(t)
        return sigma / alpha


class VelocityParameterization(Parameterization):
    """v-prediction (Salimans & Ho 2022) in whitened coordinates: v = α ε − σ L⁻¹x₀."""

    name = "v"

    def target(self, sde, x0, noise, t):
        alpha, sigma = _coefficients(sde, t, noise)
        return alpha * noise - sigma * sde.covariance.inv_sqrt_apply(x0)

    def to_eps(self, sde, out, x, t):
        return v_to_eps(sde, out, x, t)

    def eps_error_scale(self, sde, t):
        alpha, sigma = sde.marginal(t)
        return (alpha.square() + sigma.square()) / alpha


class EDMParameterization(Parameterization):
    """Karras et al. (2022) preconditioning in whitened VE coordinates (module docstring).

    **Arguments:** ``sigma_data``: σ_d, the standard deviation of the whitened data
    (:func:`whitened_data_std`; 0.5 is EDM's value for images in [-1, 1] under Σ = I).
    """

    name = "edm"

    def __init__(self, sigma_data: float = 0.5):
        if not (math.isfinite(sigma_data) and sigma_data > 0):
            raise InputError(f"sigma_data must be finite and > 0, got {sigma_data}")
        self.sigma_data = float(sigma_data)

    def _scales(self, sde, t, like):
        """(s, c_skip, c_out, c_in), shaped to broadcast over ``like``."""
        alpha, sigma = sde.marginal(t)
        s = expand_to(sigma / alpha, like)
        sd2 = self.sigma_data**2
        norm = (s.square() + sd2).sqrt()
        return s, sd2 / norm.square(), s * self.sigma_data / norm, 1.0 / norm

    def network_input(self, sde, x, t):
        alpha, sigma = sde.marginal(t)
        _, _, _, c_in = self._scales(sde, t, x)
        y_ve = sde.covariance.inv_sqrt_apply(x) / expand_to(alpha, x)
        c_noise = 0.25 * torch.log(sigma / alpha)
        return c_in * y_ve, c_noise.expand(x.shape[0]) if c_noise.ndim == 0 else c_noise

    def target(self, sde, x0, noise, t):
        s, c_skip, c_out, _ = self._scales(sde, t, noise)
        y0 = sde.covariance.inv_sqrt_apply(x0)
        return (y0 - c_skip * (y0 + s * noise)) / c_out

    def to_eps(self, sde, out, x, t):
        alpha = expand_to(sde.marginal(t)[0], out)
        s, c_skip, c_out, _ = self._scales(sde, t, out)
        y_ve = sde.covariance.inv_sqrt_apply(x) / alpha
        return ((1 - c_skip) * y_ve - c_out * out) / s

    def eps_error_scale(self, sde, t):
        alpha, sigma = sde.marginal(t)
        s = sigma / alpha
        return (s.square() + self.sigma_data**2).sqrt() / self.sigma_data

    def __repr__(self) -> str:
        return f"EDMParameterization(sigma_data={self.sigma_data:g})"


class GaussianResidualParameterization(Parameterization):
    """ε̂ = ε̂_G(x, t) + out: the network predicts the residual of the exact ε̂ of Gaussian
    data N(μ, C) (module docstring); trained on the whitened ε loss (J = 1).

    **Arguments:**
    - ``mean``: μ, a tensor of the event shape (or a scalar).
    - ``covariance``: C, a :class:`~sdekit.covariance.CovarianceOperator` or a dense SPD
      ``(d, d)`` matrix; Fourier-diagonal C under Fourier-diagonal noise (GFF, white,
      ``FourierCovariance``) costs two FFTs per call, otherwise a dense d × d basis.

    Any Gaussian leaves the loss optimum at the exact E[ε | x_t]; the data's own mean and
    covariance make the network's starting point and high-noise target the best linear
    denoiser. :func:`gaussian_residual_from_data` fits a stationary one to images.
    """

    name = "gaussian-residual"

    def __init__(self, mean, covariance):
        if not isinstance(covariance, CovarianceOperator):
            covariance = torch.as_tensor(covariance, dtype=torch.float64)
        self.mean = torch.as_tensor(mean, dtype=torch.float64)
        if isinstance(covariance, CovarianceOperator):
            shape, dim = tuple(covariance.event_shape), covariance.dim
        elif covariance.ndim == 2 and covariance.shape[0] == covariance.shape[1]:
            shape, dim = None, covariance.shape[0]
        else:
            raise InputError(
                f"covariance must be a CovarianceOperator or a square (d, d) matrix, "
                f"got shape {tuple(covariance.shape)}"
            )
        if self.mean.numel() != 1 and (
            self.mean.numel() != dim or (shape is not None and tuple(self.mean.shape) != shape)
        ):
            raise InputError(
                f"mean must be a scalar or have the covariance's event shape "
                f"{shape if shape is not None else (dim,)}, got {tuple(self.mean.shape)}"
            )
        self.covariance = covariance
        self._cache: tuple | None = None  # (sde, device, oracle)

    def oracle(self, sde: SDE, device=None) -> GaussianOracle:
        """The :class:`~sdekit.sde.GaussianOracle` of N(μ, C) under ``sde`` on ``device``
        (built once per SDE object and device)."""
        device = torch.device("cpu") if device is None else torch.device(device)
        if self._cache is None or self._cache[0] is not sde or self._cache[1] != device:
            cov = self.covariance
            cov = cov.to(device=device) if isinstance(cov, CovarianceOperator) else cov.to(device)
            self._cache = (sde, device, GaussianOracle(sde, self.mean.to(device), cov))
        return self._cache[2]

    def gaussian_eps(self, sde, x, t) -> Tensor:
        """ε̂_G(x, t), the exact ε-prediction for the Gaussian data, in ``x``'s dtype."""
        return self.oracle(sde, x.device).eps(x, t)

    def target(self, sde, x0, noise, t):
        xt, _ = sde.perturb(x0, t, noise=noise)
        return noise - self.gaussian_eps(sde, xt, t).to(noise.dtype)

    def to_eps(self, sde, out, x, t):
        return out + self.gaussian_eps(sde, x, t).to(out.dtype)

    def eps_error_scale(self, sde, t):
        return torch.ones_like(as_float(t))

    def __repr__(self) -> str:
        kind = type(self.covariance).__name__
        return f"GaussianResidualParameterization(mean={tuple(self.mean.shape)}, covariance={kind})"


def gaussian_residual_from_data(images: Tensor, ridge: float = 1e-6) -> dict:
    """A stationary Gaussian of ``images`` ``(n, C, H, W)`` for
    :class:`GaussianResidualParameterization`: ``{"mean": μ, "spectrum": P}`` with μ the mean
    image and P = :func:`~sdekit.covariance.power_spectrum` of x − μ (per channel, full
    frequency grid) + ``ridge``; ``FourierCovariance(P, μ.shape)`` is C. Plain lists, so a
    config records them."""
    from ..covariance import power_spectrum

    x = torch.as_tensor(images)
    if x.ndim != 4 or x.shape[0] < 2 or not x.is_floating_point():
        raise InputError(f"images must be a float tensor (n >= 2, C, H, W), got {tuple(x.shape)}")
    if not (math.isfinite(ridge) and ridge > 0):
        raise InputError(f"ridge must be a finite number > 0, got {ridge}")
    mean = x.to(torch.float64).mean(0)
    power = power_spectrum(x.to(torch.float64) - mean, center=False) + ridge
    return {"mean": mean.tolist(), "spectrum": power.tolist()}


def gaussian_residual(params: dict) -> GaussianResidualParameterization:
    """The parameterisation of a :func:`gaussian_residual_from_data` record."""
    from ..covariance import FourierCovariance

    mean = torch.tensor(params["mean"], dtype=torch.float64)
    power = torch.tensor(params["spectrum"], dtype=torch.float64)
    return GaussianResidualParameterization(mean, FourierCovariance(power, tuple(mean.shape)))


PARAMETERIZATIONS: dict[str, type[Parameterization]] = {
    cls.name: cls
    for cls in (
        EpsilonParameterization,
        CorrelatedEpsilonParameterization,
        DataParameterization,
        VelocityParameterization,
        EDMParameterization,
        GaussianResidualParameterization,
    )
}


def make_parameterization(name: str, **params) -> Parameterization:
    """The parameterisation ``name`` (``eps``, ``correlated``, ``x0``, ``v``, ``edm``,
    ``gaussian-residual``) with its keyword ``params``."""
    if name not in PARAMETERIZATIONS:
        valid = ", ".join(PARAMETERIZATIONS)
        raise InputError(f"unknown parameterization {name!r}; valid: {valid}")
    return PARAMETERIZATIONS[name](**params)


def whitened_data_std(data_variances, noise_variances) -> float:
    """σ_d for :class:`EDMParameterization`: √(mean_k P_k / λ_k), the per-coordinate
    standard deviation of y₀ = L⁻¹x₀ for data with per-mode variances P (e.g.
    :func:`sdekit.covariance.power_spectrum`) under noise eigenvalues λ."""
    p = torch.as_tensor(data_variances, dtype=torch.float64)
    lam = torch.as_tensor(noise_variances, dtype=torch.float64)
    if not (bool((p >= 0).all()) and bool((lam > 0).all()) and p.numel() > 0):
        raise InputError("data_variances must be >= 0 and noise_variances > 0 (one per mode)")
    return float((p / lam).mean().sqrt())


class ParameterizedModel(nn.Module):
    """``model(x, t) -> ε̂`` from a ``net`` whose output follows ``parameterization``.

    ``raw(x, t)`` is the network's own output. The trainer reads :attr:`loss_space` and
    :meth:`eps_loss_weight` from a model that has them, so the net trains on its own
    parameterisation's loss (see the module docstring).
    """

    def __init__(self, net: nn.Module, parameterization: Parameterization, sde: SDE):
        super().__init__()
        self.net = net
        self.parameterization = parameterization
        self.sde = sde

    @property
    def loss_space(self) -> str:
        return self.parameterization.space

    def _sde_on(self, device) -> SDE:
        cov = self.sde.covariance
        if cov.device is not None and cov.device != device:
            self.sde = copy.copy(self.sde)
            self.sde.covariance = cov.to(device=device)
        return self.sde

    def raw(self, x: Tensor, t: Tensor) -> Tensor:
        sde = self._sde_on(x.device)
        x_in, t_in = self.parameterization.network_input(sde, x, t)
        return self.net(x_in.to(x.dtype), t_in.to(x.dtype))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        out = self.raw(x, t)
        return self.parameterization.to_eps(self._sde_on(x.device), out, x, t).to(x.dtype)

    def eps_loss_weight(self, t: Tensor) -> Tensor:
        return self.parameterization.eps_loss_weight(self.sde, t)


class CorrelatedNoiseModel(nn.Module):
    """ε̂(x, t) = L⁻¹ net(x, t) for a ``net`` that predicts the correlated noise L ε
    (the ``correlated`` row of the module table, needing only the covariance).

    The covariance is not a parameter; with ``IdentityCovariance`` this is ``net``.
    """

    loss_space = "correlated"

    def __init__(self, net: nn.Module, covariance: CovarianceOperator):
        super().__init__()
        self.net = net
        self.covariance = covariance

    def correlated(self, x: Tensor, t: Tensor) -> Tensor:
        """The network's own output, L ε̂."""
        return self.net(x, t)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        out = self.net(x, t)
        if isinstance(self.covariance, IdentityCovariance):
            return out
        cov = self.covariance
        if cov.device is not None and cov.device != out.device:
            cov = self.covariance = cov.to(device=out.device)
        return cov.inv_sqrt_apply(out.to(cov.dtype or out.dtype)).to(out.dtype)
