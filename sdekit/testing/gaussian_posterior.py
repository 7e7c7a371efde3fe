"""The exact referee for posterior samplers: Gaussian data and a linear-Gaussian measurement.

For data x ~ N(μ, C) and y = A x + n, n ~ N(0, Σ_y), the posterior is Gaussian,

    C_post = (C⁻¹ + Aᵀ Σ_y⁻¹ A)⁻¹ = C − C Aᵀ (A C Aᵀ + Σ_y)⁻¹ A C,
    μ_post = μ + C Aᵀ (A C Aᵀ + Σ_y)⁻¹ (y − A μ)

(the second forms, by Woodbury, need no C⁻¹). With the exact prior model (the
:class:`~sdekit.sde.GaussianOracle`, linear in x_t) a deterministic sampler driven by a
posterior model that is affine in x_t — ΠGDM with either covariance, DPS without step
normalisation, the projection — is affine in its prior draw x_T = σ_T L z: its output is
m + G z, exactly N(m, G Gᵀ), read off d + 1 runs (x_T = 0 and σ_T L e_i). Its KL to the
posterior is then exact:

    KL(N(m, S) ‖ N(μ_post, C_post)) = ½ [tr(C_post⁻¹ S) − d + ‖m − μ_post‖²_{C_post⁻¹}
                                         + log det C_post − log det S].

A stochastic sampler, or DPS with its normalised step (not affine), is scored by the same
formula on the sample mean and covariance of n draws (Monte Carlo: biased by about
d(d + 1)/(4n) per d at the truth).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import InputError, InputTypeError
from ..inverse import Measurement, posterior_model
from ..sampling import resolve_sampler, sample
from ..sde.gaussian_oracle import GaussianOracle

__all__ = ["GaussianPosterior", "MEASUREMENT_KINDS", "posterior_kl", "referee_measurements"]

F64 = torch.float64


def _dense_operator(measurement: Measurement) -> Tensor:
    """A as a dense (m, d) matrix, column j = A e_j."""
    d = measurement.operator.event_shape
    n = int(torch.tensor(d).prod())
    basis = torch.eye(n, dtype=F64).reshape(n, *d)
    return measurement.to(dtype=F64).forward(basis).reshape(n, -1).T


class GaussianPosterior:
    """The exact posterior of an oracle's Gaussian data given ``y`` (module docstring).

    **Arguments:**
    - ``oracle``: the :class:`GaussianOracle` of the data N(μ, C) (its ``sde`` is the prior's).
    - ``measurement``: the :class:`~sdekit.inverse.Measurement` y = A x + n.
    - ``y``: one measurement, shape ``measurement.y_shape``.

    Attributes ``mean`` (event shape) and ``covariance`` (d × d), float64.
    """

    def __init__(self, oracle: GaussianOracle, measurement: Measurement, y: Tensor):
        if not isinstance(oracle, GaussianOracle):
            raise InputTypeError(f"oracle must be a GaussianOracle, got {type(oracle).__name__}")
        if tuple(measurement.event_shape) != tuple(oracle.event_shape):
            raise InputError(
                f"the measurement's event_shape {measurement.event_shape} is not the "
                f"oracle's {oracle.event_shape}"
            )
        y = measurement.check_y(y).to(F64)
        self.oracle, self.measurement, self.y = oracle, measurement, y
        self.event_shape, self.dim = oracle.event_shape, oracle.dim
        C = oracle.data.to_dense().to(F64)
        A = _dense_operator(measurement)
        Sy = measurement.noise.to(dtype=F64).to_dense()
        mu = oracle.mean.reshape(-1)
        K = torch.linalg.cholesky(A @ C @ A.T + Sy)  # A C Aᵀ + Σ_y
        gain = torch.cholesky_solve(A @ C, K).T  # C Aᵀ (A C Aᵀ + Σ_y)⁻¹
        cov = C - gain @ A @ C
        self.covariance = 0.5 * (cov + cov.T)
        self.mean = (mu + gain @ (y.reshape(-1) - A @ mu)).reshape(self.event_shape)
        self._chol = torch.linalg.cholesky(self.covariance)

    def kl_per_dim(self, mean: Tensor, covariance: Tensor) -> float:
        """KL(N(mean, covariance) ‖ posterior) / d for a Gaussian given by its moments."""
        d = self.dim
        m = mean.to(F64).reshape(-1) - self.mean.reshape(-1)
        S = covariance.to(F64)
        sol = torch.cholesky_solve(torch.cat([S, m[:, None]], 1), self._chol)
        trace = sol[:, :d].diagonal().sum()
        maha = m @ sol[:, d]
        logdet_p = 2 * self._chol.diagonal().log().sum()
        sign, logdet_q = torch.linalg.slogdet(S)
        if sign <= 0:
            return float("inf")
        return float(0.5 * (trace - d + maha + logdet_p - logdet_q)) / d

    def affine_kl_per_dim(self, run, prior_scale: float | None = None) -> float:
        """The exact KL / d of ``run(x_T) -> x``, affine in x_T, for x_T ~ N(0, s² Σ)
        (s = ``prior_scale``, default σ_T; Σ the oracle's noise): d + 1 runs in one batch."""
        noise, d = self.oracle.noise, self.dim
        s = self.oracle.sde.prior_scale if prior_scale is None else float(prior_scale)
        basis = torch.cat([torch.zeros(1, d, dtype=F64), s * torch.eye(d, dtype=F64)])
        x_T = noise.sqrt_apply(basis.reshape(d + 1, *self.event_shape))
        out = run(x_T).to(F64).reshape(d + 1, d)
        G = (out[1:] - out[:1]).T  # column i = G e_i
        return self.kl_per_dim(out[0], G @ G.T)

    def sample_kl_per_dim(self, samples: Tensor) -> float:
        """KL / d of the Gaussian with the samples' mean and covariance (Monte Carlo)."""
        flat = samples.to(F64).reshape(samples.shape[0], -1)
        if flat.shape[0] <= self.dim:
            raise InputError(
                f"need more than d = {self.dim} samples for their covariance, got {flat.shape[0]}"
            )
        return self.kl_per_dim(flat.mean(0), torch.cov(flat.T))

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n exact posterior draws (float64)."""
        z = torch.randn(n, self.dim, generator=generator, dtype=F64)
        return (self.mean.reshape(-1) + z @ self._chol.T).reshape(n, *self.event_shape)


def posterior_kl(
    posterior: GaussianPosterior,
    *,
    method: str,
    sampler: str | None = None,
    steps: int = 50,
    samples: int = 4096,
    seed: int = 0,
    method_options: dict | None = None,
    **sample_options,
) -> tuple[float, int]:
    """(KL / d of a posterior sampler's output law to the exact posterior, NFE).

    ``method`` and ``method_options`` build :func:`~sdekit.inverse.posterior_model` on the
    oracle; ``sampler``, ``steps`` and ``sample_options`` go to :func:`sdekit.sample`
    (default: sample()'s default sampler). Exact (:meth:`GaussianPosterior.affine_kl_per_dim`)
    for a deterministic sampler with an affine method; otherwise Monte Carlo over
    ``samples`` draws seeded by ``seed``.
    """
    oracle = posterior.oracle
    model = posterior_model(
        oracle.sde, oracle, posterior.measurement, posterior.y, method, **(method_options or {})
    )
    affine = not (method == "dps" and (method_options or {}).get("normalize", False))
    deterministic = sampler is None or not resolve_sampler(sampler).stochastic
    info = {}

    def run(x_T: Tensor | None = None, n: int | None = None) -> Tensor:
        g = torch.Generator().manual_seed(seed)
        kw = {"sampler": sampler} if sampler is not None else {}
        x, i = sample(
            oracle.sde,
            model,
            x_T=x_T,
            n=n,
            steps=steps,
            generator=g,
            dtype=F64 if x_T is None else None,
            return_info=True,
            **kw,
            **sample_options,
        )
        info["nfe"] = i.nfe
        return x

    if affine and deterministic:
        kl = posterior.affine_kl_per_dim(lambda x_T: run(x_T=x_T))
    else:
        kl = posterior.sample_kl_per_dim(run(n=samples))
    return kl, info["nfe"]


#: the four measurement kinds of docs/inverse.md's table
MEASUREMENT_KINDS = ("matrix", "inpainting", "blur", "downsample")


def referee_measurements(
    shape=(1, 8, 8), noise: str = "white", std: float = 0.1, seed: int = 0
) -> dict[str, Measurement]:
    """The referee's four measurements of events ``shape`` (C, H, W), float64: a random
    Gaussian matrix to half as many values (y of shape (C, H/2, W)), inpainting of the central
    H/2 × W/2 box, a Gaussian blur (std 1 pixel) and 2× average-pool downsampling; with
    measurement noise of standard deviation ``std``, ``noise="white"`` or ``"gff"`` (a GFF
    field with unit-mean eigenvalues on y's grid; for inpainting, the GFF over the image
    restricted to the observed pixels)."""
    from ..covariance import GFFCovariance, ScaledCovariance
    from ..inverse import gaussian_kernel

    if noise not in ("white", "gff"):
        raise InputError(f"noise must be 'white' or 'gff', got {noise!r}")
    c, h, w = shape

    def level(y_shape):
        return std if noise == "white" else ScaledCovariance(GFFCovariance(y_shape, dtype=F64), std)

    g = torch.Generator().manual_seed(seed)
    d, half = c * h * w, (c, h // 2, w)
    A = torch.randn(d // 2, d, generator=g, dtype=F64) / d**0.5
    mask = torch.ones(shape, dtype=torch.bool)
    mask[:, h // 4 : h // 4 + h // 2, w // 4 : w // 4 + w // 2] = False
    return {
        "matrix": Measurement.matrix(A, noise=level(half), event_shape=shape, y_shape=half),
        "inpainting": Measurement.inpainting(mask, noise=level(shape)),
        "blur": Measurement.blur(gaussian_kernel(1.0), noise=level(shape), event_shape=shape),
        "downsample": Measurement.downsample(
            2, noise=level((c, h // 2, w // 2)), event_shape=shape
        ),
    }
