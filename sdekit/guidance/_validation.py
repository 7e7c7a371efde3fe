"""Checks shared by the guidance wrappers."""

from __future__ import annotations

import math

from ..errors import InputError


def finite_number(value, name: str, lo: float | None = None, hi: float | None = None) -> float:
    """``value`` as a float, finite (and in [lo, hi] where given), else an ``InputError``."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (lo is not None and value < lo) or (hi is not None and value > hi):
        if hi is not None:
            bounds = f" in [{lo:g}, {hi:g}]"
        else:
            bounds = f" >= {lo:g}" if lo is not None else ""
        raise InputError(f"{name} must be a finite number{bounds}, got {value!r}")
    return float(value)
