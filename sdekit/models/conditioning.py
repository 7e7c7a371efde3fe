"""``model_kwargs``: the condition a model is called with, bound to a batch once.

Every path that evaluates a model — each sampler, both backends, the likelihood,
:func:`~sdekit.optimize_grid` — calls ``model(x, t)``. :func:`bind_model_kwargs` turns
``model(x, t, **model_kwargs)`` into that callable, once per draw, so no sampler handles
conditioning itself (guided-diffusion's ``model_kwargs``, k-diffusion's ``extra_args``):

- a tensor with at least one dimension is *per sample*: its first dimension is the batch of
  x (checked: an :class:`~sdekit.errors.InputError` naming ``model_kwargs['y']`` and the
  expected first dimension), and it travels with x's rows (:func:`take_rows`,
  :func:`repeat_rows` when a wrapper evaluates a subset or several copies of the batch);
- anything else (a 0-d tensor, a number, a string, an object) passes unchanged;
- a class-conditional model (:func:`~sdekit.models.labels.model_num_classes` > 0) must be
  given ``y``, checked by :func:`~sdekit.models.labels.check_labels`.

:func:`network_passes` says how many passes of the network one evaluation of a model makes
(2 for classifier-free guidance with both branches, :mod:`sdekit.guidance`): a model may
declare it with a ``passes(t)`` method; otherwise it is 1.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from ..errors import InputError, InputTypeError
from .labels import check_labels, model_num_classes

__all__ = [
    "BoundModel",
    "bind_model_kwargs",
    "check_model_kwargs",
    "network_passes",
    "repeat_rows",
    "take_rows",
]


def _per_sample(value) -> bool:
    return isinstance(value, Tensor) and value.ndim >= 1


def check_model_kwargs(model_kwargs, batch: int, *, name: str = "model_kwargs") -> dict:
    """``model_kwargs`` as a dict (``None``: empty), its per-sample tensors checked to have
    ``batch`` rows."""
    if model_kwargs is None:
        return {}
    if not isinstance(model_kwargs, Mapping):
        raise InputTypeError(
            f"{name} must be a dict of keyword arguments for model(x, t, **{name}), "
            f"got {type(model_kwargs).__name__}"
        )
    for key, value in model_kwargs.items():
        if not isinstance(key, str):
            raise InputTypeError(f"{name}: keys must be argument names (str), got {key!r}")
        if _per_sample(value) and value.shape[0] != batch:
            raise InputError(
                f"{name}[{key!r}] must have first dimension {batch} (one row per sample, the "
                f"batch of x), got shape {tuple(value.shape)}"
            )
    return dict(model_kwargs)


def take_rows(model_kwargs: Mapping, rows) -> dict:
    """The kwargs of the samples ``rows`` (an index or a boolean mask of x's rows):
    per-sample tensors indexed, everything else unchanged."""
    return {k: v[rows] if _per_sample(v) else v for k, v in model_kwargs.items()}


def repeat_rows(model_kwargs: Mapping, times: int) -> dict:
    """The kwargs of ``times`` copies of the batch stacked along the rows (``torch.cat``
    of x ``times`` times): per-sample tensors repeated along dim 0."""
    return {
        k: v.repeat(times, *([1] * (v.ndim - 1))) if _per_sample(v) else v
        for k, v in model_kwargs.items()
    }


def network_passes(model, t) -> int:
    """Passes of the network one evaluation ``model(x, t)`` makes: ``model.passes(t)`` when
    the model declares it (guidance wrappers), else 1."""
    passes = getattr(model, "passes", None)
    return int(passes(t)) if callable(passes) else 1


class BoundModel:
    """``model(x, t, **model_kwargs)`` called as ``bound(x, t)`` on the bound batch."""

    def __init__(self, model, model_kwargs: dict, batch: int, name: str):
        self.model, self.model_kwargs, self.batch, self.name = model, model_kwargs, batch, name

    def __call__(self, x: Tensor, t) -> Tensor:
        if x.shape[0] != self.batch:
            raise InputError(
                f"{self.name} were bound to a batch of {self.batch} samples, but the model "
                f"was called on {x.shape[0]}: evaluate a subset with take_rows"
            )
        return self.model(x, t, **self.model_kwargs)

    def passes(self, t) -> int:
        return network_passes(self.model, t)

    def __repr__(self) -> str:
        return f"BoundModel({self.model!r}, keys={sorted(self.model_kwargs)}, batch={self.batch})"


def bind_model_kwargs(model, model_kwargs, batch: int, *, name: str = "model_kwargs"):
    """``model`` called as ``model(x, t, **model_kwargs)`` for a batch of ``batch`` samples.

    **Arguments:**
    - ``model``: ``model(x, t, **model_kwargs) -> ε̂``.
    - ``model_kwargs``: a dict or ``None`` (module docstring: per-sample tensors have
      ``batch`` rows); a class-conditional model must be given ``y`` (labels 0 … K−1, or
      K, its null label).
    - ``batch``: the number of samples x holds.

    **Returns:** a callable ``bound(x, t)`` (``model`` itself when there is nothing to
    bind). **Raises:** :class:`~sdekit.errors.InputError` for kwargs of another batch, a
    conditional model without labels, labels of the wrong shape, dtype or range.
    """
    if not callable(model):
        raise InputTypeError(f"model must be callable as model(x, t), got {type(model).__name__}")
    kwargs = check_model_kwargs(model_kwargs, batch, name=name)
    k = model_num_classes(model)
    if k > 0:
        if "y" not in kwargs:
            raise InputError(
                f"the model is class-conditional ({k} classes): give its labels, "
                f"{name}={{'y': labels}} with labels of shape ({batch},) in 0 … {k - 1} "
                f"({k}: the null label, unconditional)"
            )
        kwargs["y"] = check_labels(kwargs["y"], batch, k, name=f"{name}['y']")
    return BoundModel(model, kwargs, batch, name) if kwargs else model
