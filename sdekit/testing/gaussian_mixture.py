"""Exact class-conditional and unconditional predictions for Gaussian class-conditionals.

Data: class c ∈ {0 … K−1} with prior π_c, and x₀ | c ~ N(μ_c, C_c). Under any sdekit SDE
each class is a :class:`~sdekit.sde.GaussianOracle` (exact ε̂_c, log p_t(x | c)), and the
data are the mixture p_t(x) = Σ_c π_c p_t(x | c). Since ε̂ = −σ_t Lᵀ ∇log p_t is linear in
the score,

    ε̂(x, t)       = Σ_c w_c(x, t) ε̂_c(x, t),   w_c = p(c | x_t) = π_c p_t(x | c) / p_t(x),
    log p(c | x_t) = log π_c + log p_t(x | c) − log Σ_c' π_c' p_t(x | c').

:class:`GaussianMixtureOracle` is a class-conditional model with the null label K:
``oracle(x, t, y=labels)`` is ε̂_{y_i} on row i, and the mixture's ε̂ where y_i = K — what a
perfectly trained conditional network with label dropout predicts. :meth:`log_posterior` is
the exact noise-conditional classifier.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ..errors import InputError
from ..models.labels import check_labels
from ..sde import SDE, GaussianOracle

__all__ = ["GaussianMixtureOracle"]


class GaussianMixtureOracle:
    """Exact ε̂ of Gaussian class-conditionals and of their mixture (module docstring).

    **Arguments:**
    - ``sde``: the SDE (its covariance is the noise Σ).
    - ``means``, ``covariances``: μ_c and C_c per class (as for
      :class:`~sdekit.sde.GaussianOracle`: tensors of the event shape; covariance operators
      or dense matrices).
    - ``priors``: π_c (default uniform), positive, summing to 1.

    Attributes: ``num_classes`` (K), ``components`` (the K class oracles).
    """

    def __init__(self, sde: SDE, means: Sequence, covariances: Sequence, priors=None):
        if len(means) != len(covariances) or len(means) < 1:
            raise InputError(
                f"give one mean and one covariance per class, got {len(means)} means and "
                f"{len(covariances)} covariances"
            )
        self.sde = sde
        pairs = zip(means, covariances, strict=True)
        self.components = [GaussianOracle(sde, m, c) for m, c in pairs]
        k = len(self.components)
        priors = torch.full((k,), 1.0 / k, dtype=torch.float64) if priors is None else priors
        priors = torch.as_tensor(priors, dtype=torch.float64)
        positive = priors.shape == (k,) and bool((priors > 0).all())
        if not positive or abs(float(priors.sum()) - 1) > 1e-6:
            raise InputError(f"priors must be {k} positive numbers summing to 1, got {priors}")
        self.num_classes, self.log_priors = k, priors.log()

    def log_joint(self, x: Tensor, t) -> Tensor:
        """log π_c + log p_t(x | c), shape ``(n, K)`` (float64, differentiable in x)."""
        return torch.stack([c.log_prob(x, t) for c in self.components], -1) + self.log_priors

    def log_posterior(self, x: Tensor, t) -> Tensor:
        """The exact noise-conditional classifier log p(c | x_t = x), shape ``(n, K)``."""
        joint = self.log_joint(x, t)
        return joint - joint.logsumexp(-1, keepdim=True)

    def log_prob(self, x: Tensor, t) -> Tensor:
        """The mixture's marginal log p_t(x), shape ``(n,)``."""
        return self.log_joint(x, t).logsumexp(-1)

    def classifier(self, x: Tensor, t, y: Tensor) -> Tensor:
        """log p(y_i | x_t = x_i) per row, shape ``(n,)``: the ``log_prob`` of
        :func:`sdekit.guidance.classifier`."""
        y = check_labels(y, x.shape[0], self.num_classes, name="y", allow_null=False)
        return self.log_posterior(x, t).gather(-1, y[:, None].to(x.device))[:, 0]

    def unconditional(self, x: Tensor, t) -> Tensor:
        """The mixture's ε̂ = Σ_c p(c | x_t) ε̂_c (dtype of x)."""
        w = self.log_posterior(x, t).exp()  # (n, K)
        eps = torch.stack([c.eps(x, t).to(torch.float64) for c in self.components], 1)
        w = w.reshape(*w.shape, *([1] * (eps.ndim - 2)))
        return (w * eps).sum(1).to(x.dtype)

    def __call__(self, x: Tensor, t, y: Tensor | None = None) -> Tensor:
        """ε̂_{y_i} on row i (the mixture's where y_i = K, the null label); the mixture's
        without ``y``."""
        if y is None:
            return self.unconditional(x, t)
        y = check_labels(y, x.shape[0], self.num_classes, name="y")
        t = torch.as_tensor(t, dtype=torch.float64)
        out = torch.empty_like(x)
        for c in y.unique().tolist():
            rows = y == c
            tc = t if t.ndim == 0 else t[rows]
            model = self.unconditional if c == self.num_classes else self.components[c].eps
            out[rows] = model(x[rows], tc)
        return out

    def __repr__(self) -> str:
        priors = ", ".join(f"{math.exp(p):.3g}" for p in self.log_priors.tolist())
        return f"GaussianMixtureOracle(K={self.num_classes}, priors=[{priors}])"
