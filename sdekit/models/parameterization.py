"""What a network predicts, in non-isotropic (NI) form, and the loss that trains it.

sdekit's samplers take ``model(x, t) -> ε̂``, the *whitened* noise of
x_t = α_t x₀ + σ_t L ε, ε ~ N(0, I). Write y = L⁻¹ x (whitened coordinates), so
y_t = α_t y₀ + σ_t ε with y₀ = L⁻¹ x₀, and s_t = σ_t / α_t. A
:class:`Parameterization` says what the raw network output regresses to and how ε̂
follows from it:

==============  ============================  ===================================  ============
name            raw target                    ε̂ from the output ``out``            J(t)
==============  ============================  ===================================  ============
``whitened``    ε (the paper's eq. 16)        out                                  1
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
ε − ε̂_G, so a zero output (the U-Net's initialisation) is already the exact denoiser of
that Gaussian — the best *affine* denoiser of the data only when C is its dense covariance
(``gaussian_structure="dense"``); the default stationary C (power spectrum) is a weaker
baseline for non-stationary data. At high noise the exact ε̂ equals the dense Gaussian's to
first order in the SNR, so there the network's job is to output ≈ 0 (with the dense
structure) or the stationary Gaussian's shortfall. The loss is the paper's whitened ε loss
unchanged.

Each row is one class registered under its name (:data:`PARAMETERIZATIONS`; the name is a
config's ``model.target``, and the old name ``eps`` still reads as ``whitened``,
:data:`TARGET_ALIASES`). A class says what a config records for it
(:meth:`Parameterization.to_config` / :meth:`~Parameterization.from_config`), whether it
must measure statistics of the training set first (:meth:`~Parameterization.needs_data`,
:meth:`~Parameterization.from_data`: σ_d for ``edm``, the data's Gaussian for
``gaussian-residual``) and how a network becomes ``model(x, t) -> ε̂``
(:meth:`~Parameterization.wrap`).
"""

from __future__ import annotations

import abc
import copy
import math

import torch
from torch import Tensor, nn

from ..covariance import CovarianceOperator, GaussianStatistics, power_spectrum
from ..covariance.fourier import spatial_dims_of
from ..errors import InputError
from ..sde import SDE, GaussianOracle, expand_to, fourier_eigenvalues
from ..sde.parameterization import v_to_eps
from .labels import model_num_classes

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
    "TARGET_ALIASES",
    "DEFAULT_TARGET",
    "register_parameterization",
    "canonical_target",
    "make_parameterization",
    "parameterization_from_config",
    "ParameterizedModel",
    "CorrelatedNoiseModel",
    "whitened_data_std",
]

#: every parameterisation by its canonical name (a config's ``model.target``)
PARAMETERIZATIONS: dict[str, type[Parameterization]] = {}
#: old target names → canonical ones, applied wherever a name is read
TARGET_ALIASES = {"eps": "whitened"}
#: what a model config without a ``target`` means: configs from before the key was
#: written trained L ε, so they rebuild as trained
DEFAULT_TARGET = "correlated"


def _coefficients(sde: SDE, t: Tensor, like: Tensor) -> tuple[Tensor, Tensor]:
    alpha, sigma = sde.marginal(t)
    return expand_to(alpha, like), expand_to(sigma, like)


class Parameterization(abc.ABC):
    """One row of the module table. Subclasses set ``name`` and ``space``, implement
    :meth:`target`, :meth:`to_eps` and :meth:`eps_error_scale`, and are registered with
    :func:`register_parameterization`. One that records statistics in a config lists their
    keys in ``config_keys`` and overrides the config methods below."""

    name: str
    #: where ε-errors are measured: ``"whitened"`` (ε̂ − ε) or ``"correlated"`` (L(ε̂ − ε))
    space: str = "whitened"
    #: the keys of a model config this target reads besides ``target``
    config_keys: tuple[str, ...] = ()
    #: model-config keys that choose how :meth:`from_data` measures (passed as keywords)
    data_options: tuple[str, ...] = ()

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

    def prepare(self, sde: SDE, device: torch.device) -> None:
        """Build what this parameterisation caches for ``sde`` on ``device``; called by
        :class:`ParameterizedModel` when it is built or moved, so its forward builds nothing
        (nothing, unless a subclass caches)."""
        return None

    # ------------------------------------------------------------- configs
    @classmethod
    def needs_data(cls, model_cfg: dict) -> bool:
        """Whether ``model_cfg`` (a config's ``model`` section) lacks statistics that
        :meth:`from_data` measures from the training set (False: nothing to measure)."""
        return any(key not in model_cfg for key in cls.config_keys)

    @classmethod
    def from_data(cls, images: Tensor, covariance: CovarianceOperator) -> Parameterization:
        """The parameterisation with its statistics measured from training ``images``
        ``(n, C, H, W)`` under the noise ``covariance`` Σ (none: the plain one)."""
        return cls()

    @classmethod
    def from_config(cls, model_cfg: dict) -> Parameterization:
        """The parameterisation a config's ``model`` section records (:meth:`to_config`);
        keys that belong to the network are ignored."""
        return cls()

    def to_config(self) -> dict:
        """What a config's ``model`` section records: ``{"target": name, ...}`` plus the
        statistics in :attr:`config_keys`, as plain numbers and lists."""
        return {"target": self.name}

    def wrap(self, net: nn.Module, sde: SDE) -> nn.Module:
        """``model(x, t) -> ε̂`` for a ``net`` whose output follows this parameterisation
        (a :class:`ParameterizedModel`)."""
        return ParameterizedModel(net, self, sde)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def as_float(t) -> Tensor:
    t = torch.as_tensor(t)
    return t if t.is_floating_point() else t.to(torch.float64)


def register_parameterization(cls: type[Parameterization]) -> type[Parameterization]:
    """Class decorator: add ``cls`` to :data:`PARAMETERIZATIONS` under ``cls.name``."""
    if cls.name in PARAMETERIZATIONS or cls.name in TARGET_ALIASES:
        raise InputError(f"a parameterization named {cls.name!r} is already registered")
    PARAMETERIZATIONS[cls.name] = cls
    return cls


@register_parameterization
class EpsilonParameterization(Parameterization):
    """The network predicts the whitened ε (Voleti et al., eq. 16; DDPM for Σ = I)."""

    name = "whitened"

    def target(self, sde, x0, noise, t):
        return noise

    def to_eps(self, sde, out, x, t):
        return out

    def eps_error_scale(self, sde, t):
        return torch.ones_like(as_float(t))

    def wrap(self, net, sde):
        """The net itself: its output is ε̂ already (and a trained run's weights keep
        their names, ``net.``-free)."""
        return net


@register_parameterization
class CorrelatedEpsilonParameterization(Parameterization):
    """The network predicts the noise as added, L ε (easy for a conv net: at high noise
    L ε ≈ x_t / σ); ε̂ = L⁻¹ out, computed in Σ's dtype. Its loss weights Fourier mode k
    by λ_k. It reads only the SDE's ``covariance``."""

    name = "correlated"
    space = "correlated"

    def target(self, sde, x0, noise, t):
        return sde.covariance.sqrt_apply(noise)

    def to_eps(self, sde, out, x, t):
        cov = sde.covariance
        return cov.inv_sqrt_apply(out.to(cov.dtype or out.dtype)).to(out.dtype)

    def eps_error_scale(self, sde, t):
        return torch.ones_like(as_float(t))

    def wrap(self, net, sde):
        return CorrelatedNoiseModel(net, sde.covariance)


@register_parameterization
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


@register_parameterization
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


@register_parameterization
class EDMParameterization(Parameterization):
    """Karras et al. (2022) preconditioning in whitened VE coordinates (module docstring).

    **Arguments:** ``sigma_data``: σ_d, the standard deviation of the whitened data
    (:func:`whitened_data_std`, :meth:`from_data`; 0.5 is EDM's value for images in
    [-1, 1] under Σ = I). A config records it as ``model.sigma_data``.
    """

    name = "edm"
    config_keys = ("sigma_data",)

    def __init__(self, sigma_data: float = 0.5):
        if not (math.isfinite(sigma_data) and sigma_data > 0):
            raise InputError(f"sigma_data must be finite and > 0, got {sigma_data}")
        self.sigma_data = float(sigma_data)

    @classmethod
    def from_data(cls, images, covariance):
        """σ_d = :func:`whitened_data_std` of the images' power spectrum under Σ's
        Fourier eigenvalues (Σ must be Fourier-diagonal)."""
        power = power_spectrum(images, spatial_dims=spatial_dims_of(covariance))
        return cls(whitened_data_std(power, fourier_eigenvalues(covariance)))

    @classmethod
    def from_config(cls, model_cfg):
        if "sigma_data" not in model_cfg:
            raise InputError(
                "model target 'edm' needs model.sigma_data (EDMParameterization.from_data "
                "measures it; experiments.complete_from_data records it)"
            )
        return cls(model_cfg["sigma_data"])

    def to_config(self):
        return {"target": self.name, "sigma_data": self.sigma_data}

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


@register_parameterization
class GaussianResidualParameterization(Parameterization):
    """ε̂ = ε̂_G(x, t) + out: the network predicts the residual of the exact ε̂ of Gaussian
    data N(μ, C) (module docstring); trained on the whitened ε loss (J = 1).

    **Arguments:**
    - ``mean``: μ, a tensor of the event shape (or a scalar).
    - ``covariance``: C, a :class:`~sdekit.covariance.CovarianceOperator` or a dense SPD
      ``(d, d)`` matrix; Fourier-diagonal C under Fourier-diagonal noise (GFF, white,
      ``FourierCovariance``) costs two FFTs per call, otherwise a dense d × d basis.

    Any Gaussian leaves the loss optimum at the exact E[ε | x_t]; the data's own mean and
    dense covariance make the network's starting point and high-noise target the best
    affine denoiser (a stationary C: the best one among stationary Gaussians only).
    :meth:`from_data` fits the training set's stationary Gaussian
    (:class:`~sdekit.covariance.GaussianStatistics`); a config records it as
    ``model.gaussian`` (:meth:`~sdekit.covariance.GaussianStatistics.to_config`).
    """

    name = "gaussian-residual"
    config_keys = ("gaussian",)
    data_options = ("gaussian_structure",)

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

    @classmethod
    def from_statistics(cls, gaussian: GaussianStatistics) -> GaussianResidualParameterization:
        """The residual of a :class:`~sdekit.covariance.GaussianStatistics`' denoiser."""
        return cls(gaussian.mean, gaussian.covariance)

    @classmethod
    def from_data(
        cls, images, covariance=None, ridge: float = 1e-6, gaussian_structure: str = "stationary"
    ):
        """The Gaussian of ``images`` ``(n, C, H, W)`` (:meth:`GaussianStatistics.from_images`):
        ``gaussian_structure="stationary"`` (the default), the mean image and the per-channel
        power spectrum around it + ``ridge`` — FFT-cheap, but for non-stationary data not
        the best linear denoiser; ``"dense"``, the mean image and the dense sample covariance
        + ``ridge`` · I — the best affine denoiser, a d × d basis per call (d ≤
        :data:`~sdekit.covariance.DENSE_LIMIT`). A config records the choice as
        ``model.gaussian_structure`` and the statistics as ``model.gaussian`` (``spectrum``
        or ``factor``). The noise ``covariance`` is not needed."""
        return cls.from_statistics(
            GaussianStatistics.from_images(images, gaussian_structure, ridge=ridge)
        )

    @classmethod
    def from_config(cls, model_cfg):
        if "gaussian" not in model_cfg:
            raise InputError(
                "model target 'gaussian-residual' needs model.gaussian "
                "(GaussianResidualParameterization.from_data measures it; "
                "experiments.complete_from_data records it)"
            )
        return cls.from_statistics(GaussianStatistics.from_config(model_cfg["gaussian"]))

    def statistics(self) -> GaussianStatistics:
        """N(μ, C) as a :class:`~sdekit.covariance.GaussianStatistics` (a dense matrix C
        as its Cholesky operator)."""
        cov = self.covariance
        if not isinstance(cov, CovarianceOperator):
            from ..covariance import CholeskyCovariance

            cov = CholeskyCovariance(cov)
            mean = self.mean if self.mean.numel() == 1 else self.mean.reshape(cov.event_shape)
            return GaussianStatistics(mean, cov)
        return GaussianStatistics(self.mean, cov)

    def to_config(self):
        gaussian = self.statistics()
        structure = "stationary" if gaussian.covariance.fourier_spectrum() is not None else "dense"
        return {"target": self.name, "gaussian": gaussian.to_config(),
                "gaussian_structure": structure}  # fmt: skip

    def oracle(self, sde: SDE, device=None) -> GaussianOracle:
        """The :class:`~sdekit.sde.GaussianOracle` of N(μ, C) under ``sde`` on ``device``
        (built once per SDE object and device)."""
        device = torch.device("cpu") if device is None else torch.device(device)
        if self._cache is None or self._cache[0] is not sde or self._cache[1] != device:
            cov = self.covariance
            cov = cov.to(device=device) if isinstance(cov, CovarianceOperator) else cov.to(device)
            self._cache = (sde, device, GaussianOracle(sde, self.mean.to(device), cov))
        return self._cache[2]

    def prepare(self, sde, device):
        self.oracle(sde, device)

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
    """The record ``{"mean": μ, "spectrum": P}`` (plain lists) of the stationary Gaussian
    of ``images`` ``(n, C, H, W)`` that :meth:`GaussianResidualParameterization.from_data`
    fits (kept for older callers: that method, or
    :meth:`~sdekit.covariance.GaussianStatistics.from_images`, is the one place)."""
    x = torch.as_tensor(images)
    if x.ndim != 4 or x.shape[0] < 2 or not x.is_floating_point():
        raise InputError(f"images must be a float tensor (n >= 2, C, H, W), got {tuple(x.shape)}")
    if not (math.isfinite(ridge) and ridge > 0):
        raise InputError(f"ridge must be a finite number > 0, got {ridge}")
    return GaussianResidualParameterization.from_data(x, ridge=ridge).statistics().to_config()


def gaussian_residual(params: dict) -> GaussianResidualParameterization:
    """The parameterisation of a :func:`gaussian_residual_from_data` record."""
    return GaussianResidualParameterization.from_config({"gaussian": params})


def canonical_target(name: str) -> str:
    """The registered name of a target: ``name`` itself, or the new name of an old one
    (:data:`TARGET_ALIASES`, e.g. ``eps`` → ``whitened``)."""
    name = TARGET_ALIASES.get(name, name)
    if name not in PARAMETERIZATIONS:
        valid = ", ".join(PARAMETERIZATIONS)
        raise InputError(f"unknown parameterization {name!r}; valid: {valid}")
    return name


def make_parameterization(name: str, **params) -> Parameterization:
    """The parameterisation ``name`` (``whitened``, ``correlated``, ``x0``, ``v``, ``edm``,
    ``gaussian-residual``; old names per :data:`TARGET_ALIASES`) with its keyword
    ``params``."""
    return PARAMETERIZATIONS[canonical_target(name)](**params)


def parameterization_from_config(model_cfg: dict) -> Parameterization:
    """The parameterisation a config's ``model`` section records: its ``target`` (default
    :data:`DEFAULT_TARGET`, old names mapped) rebuilt by the class's
    :meth:`~Parameterization.from_config`."""
    target = canonical_target(model_cfg.get("target", DEFAULT_TARGET))
    return PARAMETERIZATIONS[target].from_config(model_cfg)


def whitened_data_std(data_variances, noise_variances) -> float:
    """σ_d for :class:`EDMParameterization`: √(mean_k P_k / λ_k), the per-coordinate
    standard deviation of y₀ = L⁻¹x₀ for data with per-mode variances P (e.g.
    :func:`sdekit.covariance.power_spectrum`) under noise eigenvalues λ."""
    p = torch.as_tensor(data_variances, dtype=torch.float64)
    lam = torch.as_tensor(noise_variances, dtype=torch.float64)
    if not (bool((p >= 0).all()) and bool((lam > 0).all()) and p.numel() > 0):
        raise InputError("data_variances must be >= 0 and noise_variances > 0 (one per mode)")
    return float((p / lam).mean().sqrt())


def _module_device(module: nn.Module) -> torch.device | None:
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return None


class ParameterizedModel(nn.Module):
    """``model(x, t) -> ε̂`` from a ``net`` whose output follows ``parameterization``.

    ``raw(x, t)`` is the network's own output. The trainer reads :attr:`loss_space` and
    :meth:`eps_loss_weight`, so the net trains on its own parameterisation's loss (see the
    module docstring). The SDE's covariance (and what the parameterisation caches) follows
    the module: it is moved with the net by ``.to()`` / ``.cuda()``, never in ``forward``.
    It is not a parameter or buffer, so the state dict holds the net's weights only
    (``net.*``).
    """

    def __init__(self, net: nn.Module, parameterization: Parameterization, sde: SDE):
        super().__init__()
        self.net = net
        self.parameterization = parameterization
        self.sde = sde
        device = _module_device(net) or sde.covariance.device or torch.device("cpu")
        self._follow(device)

    @property
    def loss_space(self) -> str:
        return self.parameterization.space

    def _follow(self, device: torch.device) -> None:
        """Put the SDE's covariance and the parameterisation's cache on ``device``."""
        cov = self.sde.covariance
        if cov.device is not None and cov.device != device:
            sde = copy.copy(self.sde)  # the caller's SDE keeps its covariance where it was
            sde.covariance = cov.to(device=device)
            self.sde = sde
        self._device = device
        self.parameterization.prepare(self.sde, device)

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        # where this move (.to, .cuda, .cpu, ...) sends tensors; dtype casts leave Σ alone
        device = fn(torch.empty(0, device=self._device)).device
        if device != self._device:
            self._follow(device)
        return self

    @property
    def num_classes(self) -> int:
        """The net's number of classes (0: unconditional; see :mod:`sdekit.models.labels`)."""
        return model_num_classes(self.net)

    def raw(self, x: Tensor, t: Tensor, **model_kwargs) -> Tensor:
        """The network's own output; ``model_kwargs`` (e.g. ``y=labels``) go to the net."""
        x_in, t_in = self.parameterization.network_input(self.sde, x, t)
        return self.net(x_in.to(x.dtype), t_in.to(x.dtype), **model_kwargs)

    def forward(self, x: Tensor, t: Tensor, **model_kwargs) -> Tensor:
        out = self.raw(x, t, **model_kwargs)
        return self.parameterization.to_eps(self.sde, out, x, t).to(x.dtype)

    def eps_loss_weight(self, t: Tensor) -> Tensor:
        return self.parameterization.eps_loss_weight(self.sde, t)


class _NoiseOnly:
    """The part of an SDE that the ``correlated`` target reads: its noise covariance."""

    def __init__(self, covariance: CovarianceOperator):
        self.covariance = covariance


class CorrelatedNoiseModel(ParameterizedModel):
    """ε̂(x, t) = L⁻¹ net(x, t) for a ``net`` that predicts the correlated noise L ε: the
    ``correlated`` row of the module table (:class:`CorrelatedEpsilonParameterization` in a
    :class:`ParameterizedModel`), built from the noise covariance alone.

    The covariance is not a parameter; with ``IdentityCovariance`` this is ``net``.
    """

    def __init__(self, net: nn.Module, covariance: CovarianceOperator):
        super().__init__(net, CorrelatedEpsilonParameterization(), _NoiseOnly(covariance))

    @property
    def covariance(self) -> CovarianceOperator:
        return self.sde.covariance

    def correlated(self, x: Tensor, t: Tensor, **model_kwargs) -> Tensor:
        """The network's own output, L ε̂."""
        return self.raw(x, t, **model_kwargs)
