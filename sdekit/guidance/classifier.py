"""Classifier guidance (Dhariwal & Nichol 2021) with a noise-conditional classifier, in the
non-isotropic form.

The score of p_t(x | c) ∝ p_t(x) p(c | x_t) is ∇log p_t(x) + ∇ₓ log p(c | x_t), and sdekit's
whitened prediction relates to the score by ∇log p_t = −L⁻ᵀ ε̂ / σ_t (DESIGN.md), so a
gradient term g(x) enters the prediction as ε̂ − σ_t Lᵀ g:

    ε̂'(x, t, c) = ε̂(x, t) − s σ_t Lᵀ ∇ₓ log p(c | x_t, t),

with Lᵀ = ``covariance.sqrt_apply_t`` (L itself for the symmetric square roots of the
spectral covariances). For Σ = I this is guided-diffusion's ε̂ − s √(1 − ᾱ) ∇ log p; writing
ε̂ − s σ_t ∇ (the isotropic formula) when Σ ≠ I is wrong. At s = 1 with the exact classifier
of the data the result is the exact conditional prediction (tests/test_guidance.py checks it
under GFF noise).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import InputError, InputTypeError
from ..models.conditioning import check_model_kwargs, network_passes
from ..models.labels import check_labels, model_num_classes
from ..sde import SDE, batch_time, expand_to
from ._validation import finite_number
from .interval import check_interval, inside

__all__ = ["ClassifierGuidance", "classifier"]


class ClassifierGuidance:
    """``g(x, t, y=labels)``: ``model`` guided by a noise-conditional classifier (module
    docstring); build it with :func:`classifier`."""

    def __init__(self, model, log_prob, scale, *, sde, num_classes, interval=None):
        for name, f in (("model", model), ("log_prob", log_prob)):
            if not callable(f):
                raise InputTypeError(f"{name} must be callable, got {type(f).__name__}")
        if not isinstance(sde, SDE):
            raise InputTypeError(f"sde must be an sdekit SDE, got {type(sde).__name__}")
        if not (isinstance(num_classes, int) and not isinstance(num_classes, bool)
                and num_classes >= 1):  # fmt: skip
            raise InputError(f"num_classes must be the classifier's classes, an int >= 1, "
                             f"got {num_classes!r}")  # fmt: skip
        self.model, self.log_prob, self.sde, self.num_classes = model, log_prob, sde, num_classes
        self.scale = finite_number(scale, "scale (the guidance scale)")
        self.interval = check_interval(interval)
        #: a conditional model gets the labels too (e.g. guiding a conditional U-Net)
        self.model_is_conditional = model_num_classes(model) > 0

    @property
    def passes_per_call(self) -> int:
        """Network passes of the diffusion model per evaluation (the classifier's forward
        and backward pass are not counted)."""
        return getattr(self.model, "passes_per_call", 1)

    def passes(self, t) -> int:
        return network_passes(self.model, t)

    def gradient(self, x: Tensor, t: Tensor, y: Tensor) -> Tensor:
        """∇ₓ log p(y | x_t, t) per sample (kept in the autograd graph when x requires grad,
        as the likelihood's divergence needs)."""
        with torch.enable_grad():
            xg = x if x.requires_grad else x.detach().requires_grad_(True)
            lp = self.log_prob(xg, t, y)
            if not isinstance(lp, Tensor) or lp.shape != (x.shape[0],):
                got = tuple(lp.shape) if isinstance(lp, Tensor) else type(lp).__name__
                raise InputError(
                    f"log_prob(x, t, y) must return log p(y | x_t) per sample, shape "
                    f"({x.shape[0]},), got {got}"
                )
            (grad,) = torch.autograd.grad(lp.sum(), xg, create_graph=x.requires_grad)
        return grad

    def __call__(self, x: Tensor, t, y=None, **model_kwargs) -> Tensor:
        n = x.shape[0]
        if y is None:
            raise InputError(
                "classifier guidance needs the labels to guide towards: call "
                "g(x, t, y=labels) (model_kwargs={'y': labels} when sampling)"
            )
        y = check_labels(y, n, self.num_classes, name="y", allow_null=False).to(x.device)
        kwargs = check_model_kwargs(model_kwargs, n)
        if self.model_is_conditional:
            kwargs["y"] = y
        eps = self.model(x, t, **kwargs)
        tvec = batch_time(t, x)
        guided = inside(self.interval, tvec)
        if self.scale == 0.0 or not bool(guided.any()):
            return eps
        sigma = expand_to(self.sde.marginal(tvec)[1], x)
        term = sigma * self.sde.covariance.sqrt_apply_t(self.gradient(x, tvec, y))
        return eps - self.scale * expand_to(guided, x).to(x.dtype) * term

    def __repr__(self) -> str:
        return f"ClassifierGuidance(scale={self.scale:g}, interval={self.interval})"


def classifier(model, log_prob, scale: float, *, sde: SDE, num_classes: int, interval=None):
    """Classifier guidance in NI form: ε̂' = ε̂ − s σ_t Lᵀ ∇ₓ log p(c | x_t, t) (module
    docstring).

    **Arguments:**
    - ``model``: ``model(x, t) -> ε̂`` (an unconditional model), or a conditional one
      ``model(x, t, y=labels)`` (``num_classes`` > 0: it is given the labels too).
    - ``log_prob``: the noise-conditional classifier, ``log_prob(x, t, y) -> (n,)``:
      log p(y | x_t = x) at per-sample times t (log-softmax of logits, picked at y);
      differentiable in x.
    - ``scale``: s (0: no guidance; 1: the exact conditional for the exact classifier).
    - ``sde``: the SDE sampled (σ_t, and L of its noise covariance).
    - ``num_classes``: the classifier's classes (labels are checked against it).
    - ``interval``: ``(t_lo, t_hi)`` in SDE time: guide only there.

    **Returns:** a :class:`ClassifierGuidance`, called ``g(x, t, y=labels)``.
    """
    return ClassifierGuidance(
        model, log_prob, scale, sde=sde, num_classes=num_classes, interval=interval
    )
