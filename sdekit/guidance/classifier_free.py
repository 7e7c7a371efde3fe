"""Classifier-free guidance (Ho & Salimans 2022) as a model wrapper, in diffusers' convention:

    ε̂ = ε̂_u + s (ε̂_c − ε̂_u),   ε̂_c = ε̂(x, t, y),  ε̂_u = ε̂(x, t, null label),

s = 1 is the conditional model, s = 0 the unconditional one. ε̂ is sdekit's whitened noise
prediction (the network predicts ε of x_t = α x₀ + σ L ε), so this ε-space combination
carries over to any noise covariance Σ unchanged: it is linear, and L is linear.

Both branches run in one batched call of the network (x twice, labels then null labels:
the cost of one pass on 2n samples). Options:

- ``interval = (t_lo, t_hi)``: guide only at SDE times t_lo ≤ t ≤ t_hi; outside, the
  conditional prediction ε̂_c (one pass) — Kynkäänniemi et al. 2024
  (:mod:`sdekit.guidance.interval`);
- ``rescale = φ`` (Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps are
  Flawed", eq. 15–16): ε̂_r = ε̂ · std(ε̂_c)/std(ε̂), then φ ε̂_r + (1 − φ) ε̂, with the
  standard deviation of each sample over all its dimensions, taken on the *whitened*
  prediction (in whitened coordinates y = L⁻¹x the problem is isotropic; the std of L ε̂
  would weigh Fourier modes by Σ's eigenvalues).

s = 1, and s = 0 without rescale, need one pass only; :meth:`ClassifierFreeGuidance.passes`
says how many a call at time t makes (``sample()`` reports the total as
``info.network_passes``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import InputError, InputTypeError
from ..models.conditioning import check_model_kwargs, repeat_rows
from ..models.labels import check_labels, model_num_classes
from ..sde import batch_time
from ._validation import finite_number
from .interval import check_interval, inside

__all__ = ["ClassifierFreeGuidance", "classifier_free", "rescale_guided"]


def rescale_guided(guided: Tensor, eps_c: Tensor, phi: float) -> Tensor:
    """CFG-rescale: φ · guided · std(ε̂_c)/std(guided) + (1 − φ) · guided, the standard
    deviations per sample over all other dimensions, of the whitened predictions."""
    dims = tuple(range(1, guided.ndim))
    ratio = eps_c.std(dim=dims, keepdim=True) / guided.std(dim=dims, keepdim=True)
    return phi * guided * ratio + (1 - phi) * guided


class ClassifierFreeGuidance:
    """``g(x, t, y=labels)``: classifier-free guidance of a class-conditional model (module
    docstring); build it with :func:`classifier_free`."""

    def __init__(self, model, scale, *, null_label, interval=None, rescale=0.0):
        if not callable(model):
            raise InputTypeError(
                f"model must be callable as model(x, t, y=labels), got {type(model).__name__}"
            )
        k = model_num_classes(model)
        if k < 1:
            raise InputError(
                "classifier-free guidance needs a class-conditional model (num_classes > 0, "
                "called as model(x, t, y=labels), with a null label for the unconditional "
                "branch); this model is unconditional: sample it without guidance, or train "
                "one with num_classes > 0 and label dropout"
            )
        if not (isinstance(null_label, int) and not isinstance(null_label, bool)
                and 0 <= null_label <= k):  # fmt: skip
            raise InputError(
                f"null_label must be the model's unconditional label, an int in 0 … {k} "
                f"(sdekit's U-Net: {k}), got {null_label!r}"
            )
        self.model, self.num_classes, self.null_label = model, k, null_label
        self.scale = finite_number(scale, "scale (the guidance scale)")
        self.interval = check_interval(interval)
        self.rescale = finite_number(rescale, "rescale (φ of CFG-rescale)", 0.0, 1.0)

    @property
    def passes_per_call(self) -> int:
        """Network passes of one evaluation inside the interval (1 for s = 1, and for
        s = 0 without rescale; else 2: both branches)."""
        one = self.scale == 1.0 or (self.scale == 0.0 and self.rescale == 0.0)
        return 1 if one else 2

    def _branches(self, guided: Tensor) -> str:
        """'c' (conditional only), 'u' (unconditional only) or 'cu' (both) for the rows
        ``guided`` (a boolean mask: inside the interval)."""
        if not bool(guided.any()) or self.scale == 1.0:
            return "c"
        if bool(guided.all()) and self.passes_per_call == 1:
            return "u"
        return "cu"

    def passes(self, t) -> int:
        """Network passes of one evaluation at the per-sample times ``t``."""
        t = torch.as_tensor(t, dtype=torch.float64).reshape(-1)
        return len(self._branches(inside(self.interval, t)))

    def __call__(self, x: Tensor, t, y=None, **model_kwargs) -> Tensor:
        n = x.shape[0]
        if y is None:
            raise InputError(
                "classifier-free guidance needs the labels to guide towards: call "
                "g(x, t, y=labels) (model_kwargs={'y': labels} when sampling)"
            )
        y = check_labels(y, n, self.num_classes, name="y").to(x.device)
        kwargs = check_model_kwargs(model_kwargs, n)
        tvec = batch_time(t, x)
        guided = inside(self.interval, tvec)
        branches = self._branches(guided)
        if branches == "c":
            return self.model(x, t, y=y, **kwargs)
        null = torch.full_like(y, self.null_label)
        if branches == "u":
            return self.model(x, t, y=null, **kwargs)
        both = self.model(
            torch.cat([x, x]), torch.cat([tvec, tvec]), y=torch.cat([y, null]),
            **repeat_rows(kwargs, 2),
        )  # fmt: skip
        if not isinstance(both, Tensor) or both.shape != (2 * n, *x.shape[1:]):
            got = tuple(both.shape) if isinstance(both, Tensor) else type(both).__name__
            raise InputError(f"model(x, t, y) must return ε̂ of x's shape, got {got}")
        eps_c, eps_u = both[:n], both[n:]
        out = eps_u + self.scale * (eps_c - eps_u)
        if self.rescale:
            out = rescale_guided(out, eps_c, self.rescale)
        return torch.where(guided.reshape(n, *([1] * (x.ndim - 1))), out, eps_c)

    def __repr__(self) -> str:
        return (
            f"ClassifierFreeGuidance(scale={self.scale:g}, null_label={self.null_label}, "
            f"interval={self.interval}, rescale={self.rescale:g})"
        )


def classifier_free(model, scale: float, *, null_label: int, interval=None, rescale=0.0):
    """Classifier-free guidance of a class-conditional ``model`` (module docstring):
    ε̂ = ε̂_u + s (ε̂_c − ε̂_u), diffusers' convention (s = 1: the conditional model).

    **Arguments:**
    - ``model``: ``model(x, t, y=labels) -> ε̂`` with ``num_classes`` K > 0 (sdekit's U-Net,
      a :class:`~sdekit.models.ParameterizedModel` around one, or any model declaring
      ``num_classes``).
    - ``scale``: s, a finite number.
    - ``null_label``: the label of the unconditional branch
      (:func:`sdekit.models.null_label`: K for sdekit's U-Net).
    - ``interval``: ``(t_lo, t_hi)`` in SDE time: guide only there, elsewhere ε̂_c.
    - ``rescale``: φ ∈ [0, 1] of CFG-rescale, on whitened standard deviations (0: off).

    **Returns:** a :class:`ClassifierFreeGuidance`, called ``g(x, t, y=labels)``; sample it
    with ``sdekit.sample(sde, g, ..., model_kwargs={"y": labels})``.
    """
    return ClassifierFreeGuidance(
        model, scale, null_label=null_label, interval=interval, rescale=rescale
    )
