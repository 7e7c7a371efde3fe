"""Argument checks shared by the covariance constructors (clear, named errors)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import InputError, InputTypeError


def as_event_shape(event_shape, name: str = "event_shape") -> tuple[int, ...]:
    """Validate a shape: a non-empty sequence of positive ints."""
    if isinstance(event_shape, int):
        event_shape = (event_shape,)
    try:
        shape = tuple(event_shape)
    except TypeError:
        raise InputTypeError(
            f"{name} must be a tuple of positive ints, got {event_shape!r}"
        ) from None
    if not shape or not all(
        isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape
    ):
        raise InputError(f"{name} must be a non-empty tuple of positive ints, got {event_shape!r}")
    return shape


def check_float_dtype(dtype, name: str = "dtype") -> None:
    """``InputTypeError`` unless ``dtype`` is None, float32 or float64: the FFTs and
    factorisations behind the operators need one of those (not half precision, not
    complex)."""
    if dtype is not None and dtype not in (torch.float32, torch.float64):
        raise InputTypeError(
            f"{name} must be torch.float32 or torch.float64 (or None for torch's default), "
            f"got {dtype!r}"
        )


def as_float_tensor(value, name: str, dtype=None, device=None) -> Tensor:
    """Convert to a floating tensor; integer and bool input becomes the default float dtype."""
    if isinstance(value, Tensor):
        t = value
    else:
        try:
            t = torch.as_tensor(value)
        except (TypeError, ValueError, RuntimeError) as err:
            raise InputTypeError(
                f"{name} must be a tensor or array-like of numbers: {err}"
            ) from None
    if t.is_complex():
        raise InputTypeError(f"{name} must be real, got complex dtype {t.dtype}")
    if not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    return t.to(device=device, dtype=dtype) if (dtype or device) else t


def check_positive(t: Tensor, name: str, what: str = "values") -> None:
    """Raise ValueError unless every entry of ``t`` is finite and > 0."""
    bad = ~(torch.isfinite(t) & (t > 0))
    if bool(bad.any()):
        idx = tuple(int(i) for i in bad.nonzero()[0])
        raise InputError(
            f"{name} must contain finite, strictly positive {what}; "
            f"found {float(t[idx]):.6g} at index {idx} ({int(bad.sum())} bad entries)"
        )


def symmetry_tolerance(dtype: torch.dtype) -> float:
    """Relative tolerance for symmetry checks: a few hundred ulps of ``dtype``."""
    return 256 * torch.finfo(dtype).eps
