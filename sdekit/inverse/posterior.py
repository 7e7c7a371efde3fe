"""Posterior models: a prior ε-model turned into a model of p(x_t | y) for y = A x + n, so
every sampler, SDE and backend samples the posterior unchanged.

The posterior score is ∇log p_t(x | y) = ∇log p_t(x) + ∇ₓ log p(y | x_t = x), and the
whitened prediction relates to a score by ∇log p_t = −L⁻ᵀ ε̂ / σ_t (sdekit.sde), so

    ε̂_post(x, t) = ε̂(x, t) − σ_t Lᵀ ∇ₓ log p(y | x_t = x)

— Lᵀ, not I: the isotropic formula ε̂ − σ_t ∇ is wrong when Σ ≠ I (the same form as
:func:`sdekit.guidance.classifier`). The methods differ in how they approximate the
intractable p(y | x_t) = ∫ p(y | x₀) p(x₀ | x_t) dx₀. With x̂₀ = E[x₀ | x_t] (Tweedie:
(x − σ_t L ε̂)/α_t), J = ∂x̂₀/∂x_t and the residual r = y − A x̂₀:

- ``"dps"`` (Chung et al. 2023): p(x₀ | x_t) ≈ δ(x₀ − x̂₀), so
  ∇log p(y | x_t) ≈ s · Jᵀ Aᵀ Σ_y⁻¹ r. With ``normalize=True``, DPS's step-size rule
  ζ_t = ζ / ‖y − A x̂₀‖ (their Algorithm 1, in the Σ_y⁻¹ norm): the term becomes
  s · Jᵀ Aᵀ Σ_y⁻¹ r / ‖r‖_{Σ_y⁻¹}, the gradient of −s‖r‖_{Σ_y⁻¹}.
- ``"pigdm"`` (ΠGDM, Song et al. 2023): p(x₀ | x_t) ≈ N(x̂₀, Cov), so
  p(y | x_t) ≈ N(A x̂₀, A Cov Aᵀ + Σ_y) and
  ∇log p(y | x_t) ≈ s · Jᵀ Aᵀ (A Cov Aᵀ + Σ_y)⁻¹ r (Cov held fixed in x_t), with
  ``covariance="isotropic"``: Cov = r_t² Σ, r_t² = σ_t² / (α_t² + σ_t²) (the posterior
  covariance for data N(0, Σ); ΠGDM's r_t² = σ_t²/(1 + σ_t²) for Σ = I, α = 1), or
  ``covariance="tweedie"``: Cov[x₀ | x_t] = (σ_t² / α_t) J Σ, Tweedie's second-order
  formula (as in TMPD, Boys et al. 2023, and Peng et al. 2024), applied by vector-Jacobian
  products (J Σ is symmetric, so A J Σ Aᵀ u = A Σ Jᵀ Aᵀ u) inside conjugate gradients.
  For Gaussian data J and Cov are exact and constant, so this *is* the posterior score.
- ``weight`` (``dps`` and ``pigdm``): ``"none"`` (default) uses the approximate likelihood
  score as it is; ``"alpha"`` multiplies it by α_t, ΠGDM's practical weight (their
  Algorithm 1 adds √ᾱ_t · g to the DDIM update; DDPM's √ᾱ_t is sdekit's α_t). With a trained
  network J = (I − σ_t L ∂ε̂/∂x)/α_t carries the network's Jacobian error amplified by 1/α_t,
  which near t = T (α_T ≈ 0.006 on the DDPM chain) makes the unweighted term explode; α_t
  cancels that factor. It is a heuristic: for Gaussian data the unweighted Tweedie ΠGDM is
  the exact posterior score and the weighted one is not.
- ``"projection"`` (DDNM, Wang et al. 2023): exact data consistency of the denoised image,
  x̂₀' = x̂₀ + λ A⁺ (y − A x̂₀) (λ = 1: A x̂₀' = y), and the ε̂ that x̂₀' implies,
  ε̂' = L⁻¹(x − α_t x̂₀')/σ_t. It ignores the measurement noise (λ < 1 damps it) and needs
  a pseudo-inverse A⁺.

Network passes per evaluation (``passes(t)``, reported as ``info.network_passes``):
projection 1; dps and isotropic ΠGDM 2 (a forward pass and one vector-Jacobian product);
Tweedie ΠGDM 2 + its conjugate-gradient iterations.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._cg import conjugate_gradients
from ..errors import InputError, InputTypeError
from ..models.labels import model_num_classes
from ..sde import SDE, batch_time, expand_to
from .measurement import Measurement

__all__ = ["METHODS", "WEIGHTS", "PosteriorModel", "posterior_model"]

#: the time weights of the likelihood term (``weight`` option of dps and pigdm)
WEIGHTS = ("none", "alpha")


class PosteriorModel:
    """``model(x, t, **model_kwargs) -> ε̂_post`` of p(x_t | y) (module docstring); build it
    with :func:`posterior_model`."""

    method: str = ""
    options: dict = {}

    def __init__(self, sde: SDE, model, measurement: Measurement, y: Tensor, **options):
        if not isinstance(sde, SDE):
            raise InputTypeError(f"sde must be an sdekit SDE, got {type(sde).__name__}")
        if not callable(model):
            raise InputTypeError(
                f"model must be callable as model(x, t), got {type(model).__name__}"
            )
        if not isinstance(measurement, Measurement):
            raise InputTypeError(
                "measurement must be an sdekit.inverse.Measurement, got "
                f"{type(measurement).__name__}"
            )
        if tuple(measurement.event_shape) != tuple(sde.event_shape):
            raise InputError(
                f"the measurement acts on events of shape {measurement.event_shape} but the SDE's "
                f"are {tuple(sde.event_shape)}"
            )
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise InputError(
                f"method {self.method!r} takes the options {sorted(self.options)}, got {unknown}"
            )
        self.sde, self.model, self.measurement = sde, model, measurement
        self.y = measurement.check_y(y)
        self.config = {**self.options, **options}
        self._check_options()
        self.num_classes = model_num_classes(model)
        self.last_passes = 1
        self._cast: dict = {}

    def _measurement_for(self, x: Tensor) -> Measurement:
        """The measurement in x's dtype and device (cast once per dtype / device)."""
        key = (x.dtype, x.device)
        if key not in self._cast:
            m = self.measurement
            same = m.dtype == x.dtype and all(
                v.device == x.device for v in vars(m.operator).values() if isinstance(v, Tensor)
            )
            self._cast[key] = m if same else m.to(device=x.device, dtype=x.dtype)
        return self._cast[key]

    def _check_options(self) -> None:
        scale = self.config.get("scale")
        if scale is not None and not (isinstance(scale, (int, float)) and scale > 0):
            raise InputError(f"scale (the guidance step size) must be a number > 0, got {scale!r}")
        weight = self.config.get("weight", "none")
        if weight not in WEIGHTS:
            raise InputError(f"weight must be one of {WEIGHTS}, got {weight!r}")

    # --------------------------------------------------------------- shared parts
    def _y_for(self, x: Tensor) -> Tensor:
        y = self.measurement.check_y(self.y, x.shape[0]).to(dtype=x.dtype, device=x.device)
        return (
            y.expand(x.shape[0], *self.measurement.y_shape)
            if y.ndim == len(self.measurement.y_shape)
            else y
        )

    def _coefs(self, t: Tensor, x: Tensor):
        alpha, sigma = self.sde.marginal(t)
        return expand_to(alpha, x), expand_to(sigma, x)

    def _denoise(self, x: Tensor, t: Tensor, kwargs: dict, grad: bool):
        """(ε̂, x̂₀, the input x̂₀ is a function of) — with the graph kept when ``grad``."""
        xg = x.detach().requires_grad_(grad)
        with torch.set_grad_enabled(grad):
            eps = self.model(xg, t, **kwargs)
            x0 = self.sde.eps_to_x0(eps, xg, t)
        return eps, x0, xg

    def _score_term(self, x: Tensor, t: Tensor, eps: Tensor, grad_log_lik: Tensor) -> Tensor:
        """ε̂ − w_t σ_t Lᵀ ∇ₓ log p(y | x_t), w_t = 1 or α_t (the ``weight`` option)."""
        alpha, sigma = self._coefs(t, x)
        if self.config.get("weight", "none") == "alpha":
            sigma = alpha * sigma
        return (eps - sigma * self.sde.covariance.sqrt_apply_t(grad_log_lik)).detach()

    def passes(self, t) -> int:
        """Network passes of the last evaluation (forward passes and vector-Jacobian
        products, each counted once)."""
        return self.last_passes

    def __call__(self, x: Tensor, t, **model_kwargs) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"posterior_model(method={self.method!r}, {opts})"


def _vjp(x0: Tensor, xg: Tensor, v: Tensor, retain: bool = False) -> Tensor:
    (g,) = torch.autograd.grad(x0, xg, v, retain_graph=retain)
    return g


class DPS(PosteriorModel):
    """Diffusion posterior sampling (module docstring): s · Jᵀ Aᵀ Σ_y⁻¹ r, normalised by
    ‖r‖_{Σ_y⁻¹} when ``normalize``."""

    method = "dps"
    options = {"scale": 1.0, "normalize": False, "weight": "none"}

    def __call__(self, x: Tensor, t, **model_kwargs) -> Tensor:
        t = batch_time(t, x)
        eps, x0, xg = self._denoise(x, t, model_kwargs, grad=True)
        meas = self._measurement_for(x)
        noise = meas._noise_for(x)
        resid = self._y_for(x) - meas.forward(x0.detach())
        weighted = noise.solve(resid)  # Σ_y⁻¹ r
        grad = _vjp(x0, xg, meas.adjoint(weighted))
        if self.config["normalize"]:
            norm = (resid * weighted).reshape(x.shape[0], -1).sum(1).clamp_min(1e-300).sqrt()
            grad = grad / expand_to(norm, grad)
        self.last_passes = 2
        return self._score_term(x, t, eps, self.config["scale"] * grad)


class PiGDM(PosteriorModel):
    """ΠGDM (module docstring): s · Jᵀ Aᵀ (A Cov Aᵀ + Σ_y)⁻¹ r with the isotropic or the
    Tweedie covariance; the linear system by conjugate gradients."""

    method = "pigdm"
    options = {"scale": 1.0, "covariance": "tweedie", "cg_rtol": 1e-6, "cg_max_iter": 100,
               "weight": "none"}  # fmt: skip

    def _check_options(self) -> None:
        super()._check_options()
        c = self.config
        if c["covariance"] not in ("tweedie", "isotropic"):
            raise InputError(
                f"covariance must be 'tweedie' or 'isotropic', got {c['covariance']!r}"
            )
        if not (isinstance(c["cg_rtol"], float) and 0 < c["cg_rtol"] < 1):
            raise InputError(f"cg_rtol must be a float in (0, 1), got {c['cg_rtol']!r}")
        it = c["cg_max_iter"]
        if not (isinstance(it, int) and not isinstance(it, bool) and it >= 1):
            raise InputError(f"cg_max_iter must be an int >= 1, got {it!r}")

    def __call__(self, x: Tensor, t, **model_kwargs) -> Tensor:
        t = batch_time(t, x)
        eps, x0, xg = self._denoise(x, t, model_kwargs, grad=True)
        meas, cov = self._measurement_for(x), self.sde.covariance
        noise = meas._noise_for(x)
        alpha, sigma = self._coefs(t, x)
        resid = self._y_for(x) - meas.forward(x0.detach())
        if self.config["covariance"] == "isotropic":
            r2 = sigma.square() / (alpha.square() + sigma.square())

            def prior_part(u):  # A r_t² Σ Aᵀ u
                return meas.forward(r2 * cov.apply(meas.adjoint(u)))
        else:
            c = sigma.square() / alpha

            def prior_part(u):  # A (σ²/α) J Σ Aᵀ u = A (σ²/α) Σ Jᵀ Aᵀ u
                return meas.forward(c * cov.apply(_vjp(x0, xg, meas.adjoint(u), retain=True)))

        try:
            solved = conjugate_gradients(
                lambda u: prior_part(u) + noise.apply(u),
                resid,
                rtol=self.config["cg_rtol"],
                max_iter=self.config["cg_max_iter"],
            )
        except InputError as err:
            raise InputError(
                f"{err} (ΠGDM's Tweedie covariance: the model's denoiser Jacobian is far from "
                "symmetric positive semi-definite here; use covariance='isotropic')"
            ) from None
        grad = _vjp(x0, xg, meas.adjoint(solved.solution))
        extra = solved.iterations if self.config["covariance"] == "tweedie" else 0
        self.last_passes = 2 + extra
        self.last_cg = solved
        return self._score_term(x, t, eps, self.config["scale"] * grad)


class Projection(PosteriorModel):
    """DDNM's range–null-space projection (module docstring): x̂₀' = x̂₀ + λ A⁺(y − A x̂₀)."""

    method = "projection"
    options = {"strength": 1.0}

    def _check_options(self) -> None:
        lam = self.config["strength"]
        if not (isinstance(lam, (int, float)) and not isinstance(lam, bool) and 0 < lam <= 1):
            raise InputError(f"strength (λ of x̂₀ + λ A⁺(y − A x̂₀)) must be in (0, 1], got {lam!r}")
        if not self.measurement.has_pinv:
            raise InputError(
                "method 'projection' needs a measurement with a pseudo-inverse A⁺: "
                "Measurement.matrix / .inpainting / .blur / .downsample, or "
                "Measurement(..., pinv=...); or use method 'pigdm' or 'dps'"
            )

    def __call__(self, x: Tensor, t, **model_kwargs) -> Tensor:
        t = batch_time(t, x)
        with torch.no_grad():
            eps = self.model(x, t, **model_kwargs)
            x0 = self.sde.eps_to_x0(eps, x, t)
            meas = self._measurement_for(x)
            x0 = x0 + self.config["strength"] * meas.pinv(self._y_for(x) - meas.forward(x0))
            self.last_passes = 1
            return self.sde.x0_to_eps(x0, x, t)


#: method name → its class
METHODS: dict[str, type[PosteriorModel]] = {"dps": DPS, "pigdm": PiGDM, "projection": Projection}


def posterior_model(
    sde: SDE, model, measurement: Measurement, y: Tensor, method: str = "pigdm", **options
) -> PosteriorModel:
    """A model of p(x_t | y): ``model(x, t, **model_kwargs) -> ε̂_post`` for every sampler.

    **Arguments:**
    - ``sde``: the SDE the prior model was trained with (σ_t, α_t, and L of its Σ).
    - ``model``: the prior ε-model, ``model(x, t, **model_kwargs)``; differentiable in x
      for ``"dps"`` and ``"pigdm"``.
    - ``measurement``: a :class:`~sdekit.inverse.Measurement` on the SDE's event shape.
    - ``y``: the measurement, shape ``measurement.y_shape`` (one y for every sample) or
      ``(n, *y_shape)`` (one per sample; n must then be the batch sampled).
    - ``method``: ``"dps"``, ``"pigdm"`` or ``"projection"`` (module docstring).
    - ``options``: ``dps``: ``scale`` (s, default 1), ``normalize`` (DPS's step-size rule,
      default False), ``weight`` (``"none"`` or ``"alpha"``, module docstring); ``pigdm``:
      ``scale`` (1), ``weight``, ``covariance`` (``"tweedie"`` or
      ``"isotropic"``), ``cg_rtol`` (1e-6), ``cg_max_iter`` (100); ``projection``:
      ``strength`` (λ in (0, 1], default 1).

    **Returns:** a :class:`PosteriorModel`. Its outputs are detached: the posterior model is
    for sampling, not for a likelihood (which would differentiate it again).
    """
    if method not in METHODS:
        raise InputError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    return METHODS[method](sde, model, measurement, y, **options)
