"""The analytic Gaussian oracle: exact ε, score, denoiser, log-density and PF-ODE flow
for Gaussian data x₀ ~ N(μ, C) under any sdekit SDE with noise Σ = L Lᵀ.

Everything is diagonal in one basis. In whitened coordinates w = L⁻¹x,

    w₀ ~ N(ν, C̃),  ν = L⁻¹μ,  C̃ = L⁻¹ C L⁻ᵀ = U diag(c) Uᵀ,
    w_t ~ N(α_t ν, U diag(k_t) Uᵀ),  k_t = α_t² c + σ_t²,

so with r = w - α_t ν:

    ε̂(x, t)   = E[ε | x_t = x] = U diag(σ_t / k_t) Uᵀ r
    log p_t(x) = log N(r; 0, U diag(k_t) Uᵀ) - ½ log det Σ
    flow       x_s - α_s μ = L U diag(sqrt(k_s / k_t)) Uᵀ L⁻¹ (x_t - α_t μ)   (exact PF ODE)

The last line holds because on each mode the PF ODE reads dr/dt = (f + g²/(2k)) r
and dk/dt = 2 f k + g², so r/√k is constant. Two paths share these formulas:

* dense — U from an eigendecomposition of C̃ (any C, any Σ; small d);
* spectral — when C and Σ are both Fourier-diagonal on the same grid (both have a
  :meth:`~sdekit.covariance.CovarianceOperator.fourier_spectrum`: white noise,
  :class:`FourierCovariance`, :class:`GFFCovariance`, …), U is the orthonormal DFT over
  their shared trailing spatial dims (1-D signals, 2-D images, 3-D volumes) and
  c = spectrum(C) / spectrum(Σ); O(d log d).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..covariance import CholeskyCovariance, CovarianceOperator, statistics
from ..covariance.fourier import fourier_filter, fourier_transform, shared_spatial_dims
from ..errors import InputError, InputTypeError
from .base import SDE, as_time

__all__ = ["GaussianOracle"]


class GaussianOracle:
    """Exact model and densities for Gaussian data N(μ, C) under ``sde``.

    **Arguments:**
    - ``sde``: any sdekit SDE; its covariance is the noise Σ.
    - ``mean``: μ, a tensor of the event shape (or a scalar).
    - ``data_covariance``: C, a :class:`CovarianceOperator` over the event shape
      or a dense ``(d, d)`` SPD matrix.
    - ``path``: ``"auto"`` (spectral when possible), ``"spectral"`` or ``"dense"``.

    The oracle is itself an ε-prediction model: ``oracle(x, t)``. It computes in
    float64 and returns the dtype of ``x``.
    """

    def __init__(self, sde: SDE, mean, data_covariance, path: str = "auto"):
        if not isinstance(sde, SDE):
            raise InputTypeError(f"sde must be an sdekit SDE, got {type(sde).__name__}")
        self.sde = sde
        shape = tuple(sde.event_shape)
        self.event_shape, self.dim = shape, sde.covariance.dim
        noise = sde.covariance.to(dtype=torch.float64)
        if not isinstance(data_covariance, CovarianceOperator):
            data_covariance = CholeskyCovariance(
                torch.as_tensor(data_covariance, dtype=torch.float64), shape
            )
        if tuple(data_covariance.event_shape) != shape:
            raise InputError(
                f"data_covariance has event_shape {data_covariance.event_shape}, "
                f"expected the SDE's {shape}"
            )
        data = data_covariance.to(dtype=torch.float64)
        self.noise, self.data = noise, data
        self.mean = torch.as_tensor(mean, dtype=torch.float64).expand(shape).clone()
        self.nu = noise.inv_sqrt_apply(self.mean)  # ν = L⁻¹ μ
        self.logdet_noise = float(noise.logdet())

        self.spatial_dims = shared_spatial_dims((noise, data), shape)
        spectral_ok = self.spatial_dims is not None
        if path not in ("auto", "spectral", "dense"):
            raise InputError(f"path must be 'auto', 'spectral' or 'dense', got {path!r}")
        if path == "spectral" and not spectral_ok:
            raise InputError(
                "the spectral path needs Fourier-diagonal data and noise covariances, "
                "diagonal in one DFT (a fourier_spectrum() over the same spatial_dims: "
                "FourierCovariance, GFFCovariance or IdentityCovariance)"
            )
        self.path = "spectral" if (spectral_ok and path != "dense") else "dense"
        if self.path == "spectral":
            lam_noise, lam_data = noise.fourier_spectrum(), data.fourier_spectrum()
            c = lam_data.to(torch.float64) / lam_noise.to(torch.float64)
            self.c_full = c  # c on the full grid, event shape
            self.c = c[..., : shape[-1] // 2 + 1]  # on the rfft half-grid
        else:
            limit = statistics.DENSE_LIMIT  # the one dense limit (read here: tests patch it)
            if self.dim > limit:
                raise InputError(
                    f"the dense oracle path is limited to d <= {limit} (got d={self.dim}); "
                    "use Fourier-diagonal covariances for the spectral path"
                )
            Linv = noise.inv_sqrt_apply(
                torch.eye(self.dim, dtype=torch.float64).reshape(-1, *shape)
            )
            Linv = Linv.reshape(self.dim, self.dim).T  # columns L⁻¹ e_i
            C = data.to_dense()
            Ct = Linv @ C @ Linv.T
            c, U = torch.linalg.eigh(0.5 * (Ct + Ct.T))
            self.c, self.U = c.clamp_min(0), U
            self.c_full = self.c

    # ----------------------------------------------------------- the basis
    def _filter(self, w: Tensor, gain: Tensor) -> Tensor:
        """U diag(gain) Uᵀ w for w of shape (n, *event); gain per mode, optionally per sample."""
        if self.path == "spectral":
            return fourier_filter(w, gain, self.spatial_dims)
        flat = w.reshape(w.shape[0], -1)
        out = ((flat @ self.U) * gain) @ self.U.T
        return out.reshape(w.shape)

    def _coef(self, t, n: int):
        """α_t, σ_t as float64 tensors broadcastable against per-mode gains (n, 1, ...)."""
        t = self.sde.check_time(as_time(t))
        alpha, sigma = self.sde.marginal(t)
        alpha, sigma = alpha.to(torch.float64), sigma.to(torch.float64)
        if alpha.ndim == 0:
            alpha, sigma = alpha.expand(n), sigma.expand(n)
        extra = self.c.ndim
        return alpha.reshape(n, *([1] * extra)), sigma.reshape(n, *([1] * extra))

    def _residual(self, x: Tensor, alpha: Tensor) -> Tensor:
        """r = L⁻¹x - α ν in float64."""
        w = self.noise.inv_sqrt_apply(x.to(torch.float64))
        a = alpha.reshape(alpha.shape[0], *([1] * len(self.event_shape)))
        return w - a * self.nu

    def _k(self, alpha, sigma, c=None):
        c = self.c if c is None else c
        return alpha**2 * c + sigma**2

    # -------------------------------------------------------------- public
    def eps(self, x: Tensor, t) -> Tensor:
        """The exact ε-prediction E[ε | x_t = x]."""
        self.noise.check_input(x.to(torch.float64), "x")
        alpha, sigma = self._coef(t, x.shape[0])
        r = self._residual(x, alpha)
        return self._filter(r, sigma / self._k(alpha, sigma)).to(x.dtype)

    __call__ = eps

    def score(self, x: Tensor, t) -> Tensor:
        """∇log p_t(x) = -L⁻ᵀ ε̂ / σ_t."""
        sigma = self.sde.marginal(as_time(t))[1].to(torch.float64)
        s = sigma.reshape(-1, *([1] * len(self.event_shape))) if sigma.ndim else sigma
        return (-self.noise.inv_sqrt_apply_t(self.eps(x, t).to(torch.float64)) / s).to(x.dtype)

    def denoise(self, x: Tensor, t) -> Tensor:
        """E[x₀ | x_t = x] = (x - σ_t L ε̂) / α_t."""
        return self.sde.eps_to_x0(self.eps(x, t).to(torch.float64), x.to(torch.float64), t).to(
            x.dtype
        )

    def log_prob(self, x: Tensor, t) -> Tensor:
        """The exact marginal log-density log p_t(x), shape ``(n,)``."""
        n = x.shape[0]
        alpha, sigma = self._coef(t, n)
        k = self._k(alpha, sigma)
        z = self._filter(self._residual(x, alpha), k.rsqrt())
        quad = z.square().reshape(n, -1).sum(-1)
        kf = self._k(alpha, sigma, self.c_full)
        logdet = kf.log().expand(n, *self.c_full.shape).reshape(n, -1).sum(-1)
        return -0.5 * (quad + logdet + self.dim * math.log(2 * math.pi)) - 0.5 * self.logdet_noise

    def log_prob_data(self, x: Tensor) -> Tensor:
        """log N(x; μ, C), the data density."""
        w = self.noise.inv_sqrt_apply(x.to(torch.float64)) - self.nu
        z = self._filter(w, self.c.rsqrt().expand(w.shape[0], *self.c.shape))
        quad = z.square().reshape(x.shape[0], -1).sum(-1)
        logdet = self.c_full.log().sum()
        return -0.5 * (quad + logdet + self.dim * math.log(2 * math.pi)) - 0.5 * self.logdet_noise

    def sample_data(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """x₀ ~ N(μ, C) (float64)."""
        z = torch.randn((n, *self.event_shape), generator=generator, dtype=torch.float64)
        w = self.nu + self._filter(z, self.c.sqrt().expand(n, *self.c.shape))
        return self.noise.sqrt_apply(w)

    def sample_marginal(self, n: int, t, generator: torch.Generator | None = None) -> Tensor:
        """x_t ~ p_t = N(α_t μ, α_t² C + σ_t² Σ) (float64)."""
        alpha, sigma = self._coef(t, n)
        z = torch.randn((n, *self.event_shape), generator=generator, dtype=torch.float64)
        a = alpha.reshape(n, *([1] * len(self.event_shape)))
        w = a * self.nu + self._filter(z, self._k(alpha, sigma).sqrt())
        return self.noise.sqrt_apply(w)

    def flow(self, x: Tensor, t_from, t_to) -> Tensor:
        """The exact probability-flow ODE map x_{t_from} ↦ x_{t_to} (float64)."""
        n = x.shape[0]
        a0, s0 = self._coef(t_from, n)
        a1, s1 = self._coef(t_to, n)
        r = self._residual(x, a0)
        r1 = self._filter(r, (self._k(a1, s1) / self._k(a0, s0)).sqrt())
        a = a1.reshape(n, *([1] * len(self.event_shape)))
        return self.noise.sqrt_apply(a * self.nu + r1)

    def standardize(self, x: Tensor, t=None) -> Tensor:
        """Map samples to coordinates that are N(0, I) under p_t (under the data if t is None).

        Dense path: the eigen-coordinates diag(k^{-1/2}) Uᵀ r, shape (n, d).
        Spectral path: the white field U diag(k^{-1/2}) Uᵀ r, shape (n, *event_shape).
        """
        n = x.shape[0]
        if t is None:
            alpha = torch.ones(n, *([1] * self.c.ndim), dtype=torch.float64)
            k = self.c.expand(n, *self.c.shape)
        else:
            alpha, sigma = self._coef(t, n)
            k = self._k(alpha, sigma)
        r = self._residual(x, alpha)
        if self.path == "dense":
            return (r.reshape(n, -1) @ self.U) * k.reshape(n, -1).rsqrt()
        return self._filter(r, k.rsqrt())

    def kl_per_dim(self, x: Tensor, t=None) -> float:
        """KL(N(m̂, v̂) ‖ N(0, 1)) averaged over modes, from the per-mode sample mean m̂
        and variance v̂ of :meth:`standardize` (a spectral, moment-matched divergence
        between the samples' distribution and p_t; ≈ (mode count)/(2n)-biased)."""
        z = self.standardize(x, t)
        if self.path == "spectral":
            z = fourier_transform(z, self.spatial_dims)
        m = z.mean(0)
        v = (z - m).abs().square().mean(0)
        kl = 0.5 * (v + m.abs().square() - 1 - v.log())
        return float(kl.mean())

    def affine_kl_per_dim(
        self, run, t=None, prior_scale: float | None = None, seed: int = 0, reference=None
    ) -> float:
        """The exact KL(q ‖ p) / d of a deterministic sampler, without sampling noise.

        ``run(x_T) -> x`` must be affine and Fourier-diagonal — true of every
        deterministic sampler driven by this oracle on the spectral path, since each
        step combines x and L ε̂ with scalar weights. q is the law of ``run(x_T)`` for
        x_T ~ N(0, s² Σ) (s = ``prior_scale``, default σ_T); p is the law of
        ``reference(x_T)`` for the same x_T when ``reference`` (another affine map, e.g. the
        exact PF-ODE flow over the sampler's own time span) is given, else p_t, or the data
        distribution N(μ, C) if ``t`` is None. Two calls of each map (batch of 2) give the
        offset and every mode's gain; in the Fourier basis both laws are diagonal:

            KL = ½ Σ_k [v_q/v_p - 1 - log(v_q/v_p) + |m_q - m_p|²/v_p].
        """
        if self.path != "spectral":
            raise InputError("affine_kl_per_dim needs the spectral path")
        s = self.sde.prior_scale if prior_scale is None else float(prior_scale)
        g = torch.Generator().manual_seed(seed)
        z = s * torch.randn((1, *self.event_shape), generator=g, dtype=torch.float64)
        x_T = self.noise.sqrt_apply(torch.cat([torch.zeros_like(z), z]))
        fft = lambda v: fourier_transform(v, self.spatial_dims)  # noqa: E731

        def law(fn):
            out = fn(x_T.to(self.noise.dtype or torch.float64)).to(torch.float64)
            w = self.noise.inv_sqrt_apply(out)
            gain = (fft(w[1] - w[0]) / fft(z[0])).real
            return fft(w[0]), gain.square() * s**2

        m_q, v_q = law(run)
        if reference is not None:
            m_p, v_p = law(reference)
        elif t is None:
            m_p, v_p = fft(self.nu), self.c_full
        else:
            alpha, sigma = self.sde.marginal(as_time(t))
            m_p, v_p = (
                fft(float(alpha) * self.nu),
                float(alpha) ** 2 * self.c_full + float(sigma) ** 2,
            )
        ratio = v_q / v_p
        kl = 0.5 * (ratio - 1 - ratio.log() + (m_q - m_p).abs().square() / v_p)
        return float(kl.sum()) / self.dim

    def exact_sampler(self, t_start, t_end, denoise: bool):
        """The map a perfect deterministic solver delivers: the exact PF-ODE flow from
        ``t_start`` to ``t_end``, then (``denoise``) the final denoising step x̂₀ = E[x₀ | x]."""

        def run(x_T: Tensor) -> Tensor:
            x = self.flow(x_T, t_start, t_end)
            return self.denoise(x, t_end) if denoise else x

        return run

    def __repr__(self) -> str:
        return f"GaussianOracle(sde={self.sde!r}, path={self.path!r})"
