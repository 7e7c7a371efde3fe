"""The guidance interval (Kynkäänniemi et al. 2024, "Applying Guidance in a Limited Interval
Improves Sample and Distribution Quality in Diffusion Models"): guide only at times
t_lo ≤ t ≤ t_hi of the SDE, and use the conditional prediction elsewhere.

The interval is in the SDE's own time t (explicit, and the same for every schedule); the
paper's noise levels σ̃ = σ/α convert with ``sde.t_of_log_snr(-2 log σ̃)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import InputError

__all__ = ["check_interval", "inside"]


def check_interval(interval, name: str = "interval") -> tuple[float, float] | None:
    """``interval`` as ``(t_lo, t_hi)`` with finite t_lo ≤ t_hi, or ``None`` (guide always)."""
    if interval is None:
        return None
    pair = tuple(interval) if isinstance(interval, (list, tuple)) else ()
    ok = len(pair) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in pair
    )
    if not ok or pair[0] > pair[1]:
        raise InputError(
            f"{name} must be None or (t_lo, t_hi), two finite times of the SDE with "
            f"t_lo <= t_hi, got {interval!r}"
        )
    return float(pair[0]), float(pair[1])


def inside(interval: tuple[float, float] | None, t: Tensor) -> Tensor:
    """Which of the per-sample times ``t`` (n,) lie in ``interval`` (all of them if None)."""
    if interval is None:
        return torch.ones_like(t, dtype=torch.bool)
    lo, hi = interval
    return (t >= lo) & (t <= hi)
