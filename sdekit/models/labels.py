"""Class labels of a conditional network: ``net(x, t, y=labels)`` (guided-diffusion's name).

A conditional net with ``num_classes`` = K classes takes labels 0 … K−1, and the *null
label* K: the unconditional branch that label dropout trains and classifier-free
guidance calls (:func:`sdekit.guidance.classifier_free`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import InputError, InputTypeError

__all__ = ["check_labels", "class_labels", "model_num_classes", "null_label"]


def check_labels(y, batch: int, num_classes: int, *, name: str = "y", allow_null: bool = True):
    """``y`` as a long tensor of shape ``(batch,)`` with values in [0, K] (K = the null
    label, where ``allow_null``), else an :class:`~sdekit.errors.InputError` naming
    ``name`` and what was expected."""
    if not isinstance(y, Tensor):
        raise InputTypeError(f"{name} must be a tensor of class labels, got {type(y).__name__}")
    if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
        raise InputTypeError(f"{name} must hold integer class labels, got dtype {y.dtype}")
    if y.shape != (batch,):
        raise InputError(f"{name} must have shape ({batch},) (one label per image), "
                         f"got {tuple(y.shape)}")  # fmt: skip
    top = num_classes if allow_null else num_classes - 1
    if batch and (int(y.min()) < 0 or int(y.max()) > top):
        null = f", or {num_classes} (the null label)" if allow_null else ""
        what = f"0 … {num_classes - 1}{null}"
        raise InputError(
            f"{name} must hold labels in {what}; got values in "
            f"[{int(y.min())}, {int(y.max())}]"
        )
    return y.long()


def model_num_classes(model) -> int:
    """The number of classes of a (wrapped) conditional network, 0 for an unconditional one:
    ``model.num_classes``, looked up through ``.net`` / ``.module`` wrappers."""
    seen = 0
    while model is not None and seen < 8:
        k = getattr(model, "num_classes", None)
        if isinstance(k, int):
            return k
        model = getattr(model, "net", None) or getattr(model, "module", None)
        seen += 1
    return 0


def null_label(model) -> int:
    """The null label (K) of a conditional network; an error for an unconditional one."""
    k = model_num_classes(model)
    if k < 1:
        raise InputError("the model is unconditional (num_classes = 0): it has no null label")
    return k


def class_labels(classes, n: int, num_classes: int, *, name: str = "classes") -> Tensor:
    """The labels of ``n`` samples asked for as ``classes``: one label (an int), a list of
    them, or ``"all"`` (0 … K−1). With m classes the samples come in m contiguous blocks of
    nearly equal size, class ``classes[j]`` for rows ``j·n/m`` … (a row per class when
    ``n`` = m × the row length): label_i = classes[⌊i·m/n⌋], shape ``(n,)``, long."""
    if num_classes < 1:
        raise InputError(
            f"{name}: the model is unconditional (num_classes = 0): it takes no class labels; "
            "sample it without classes, or train a conditional model (num_classes > 0)"
        )
    if classes == "all":
        classes = tuple(range(num_classes))
    many = isinstance(classes, (list, tuple))
    values = tuple(classes) if many else (classes,)
    ok = all(isinstance(c, int) and not isinstance(c, bool) for c in values)
    if not values or not ok or not all(0 <= c < num_classes for c in values):
        raise InputError(
            f"{name} must be a label in 0 … {num_classes - 1}, a non-empty list of them, or "
            f"'all', got {classes!r}"
        )
    table = torch.tensor(values, dtype=torch.long)
    return table[torch.arange(n) * len(values) // n]
